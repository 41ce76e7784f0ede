package solver_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/graph"
)

// chain is one stage of three layer-making steps around a config step;
// second is the second RUN's argument.
func chain(second string) *graph.Definition {
	return def(0, stage(0, "", scratch,
		run(2, "one"),
		&graph.Step{Location: graph.Location{File: "Dockerfile", Line: 3}, Text: "ENV A=b"},
		run(4, "two", second),
		run(5, "three")))
}

// A second identical solve runs nothing and makes the very same image.
func TestCacheHitOnSecondSolve(t *testing.T) {
	h := newHarness(t)
	first := h.mustSolve(chain("x"), solver.Options{})
	if h.ops.total() != 3 || len(h.records()) != 3 {
		t.Fatalf("first solve: %d runs, %d records; want 3 and 3", h.ops.total(), len(h.records()))
	}
	second := h.mustSolve(chain("x"), solver.Options{})
	if h.ops.total() != 0 {
		t.Errorf("the second solve ran %v", h.ops.runs)
	}
	for text, s := range h.statuses() {
		if s != solver.StatusCached {
			t.Errorf("%s: %s, want cached", text, s)
		}
	}
	// Every run makes a different layer, so equal diff IDs mean reuse.
	if !slices.Equal(first.DiffIDs, second.DiffIDs) || len(second.DiffIDs) != 3 {
		t.Errorf("diff IDs %v, then %v", first.DiffIDs, second.DiffIDs)
	}
	if !slices.Equal(second.Config.RootFS.DiffIDs, second.DiffIDs) || len(second.Config.History) != 4 {
		t.Errorf("config: rootfs %v, %d history entries", second.Config.RootFS.DiffIDs, len(second.Config.History))
	}
	// Cached steps keep their recorded times: the config does not change.
	if !first.Config.Created.Equal(*second.Config.Created) {
		t.Errorf("created %v, then %v", first.Config.Created, second.Config.Created)
	}
	// NoCache runs everything again.
	h.mustSolve(chain("x"), solver.Options{NoCache: true})
	if h.ops.total() != 3 {
		t.Errorf("NoCache ran %d ops, want 3", h.ops.total())
	}
}

// A changed op misses, and so does every step after it; the steps before
// it hit.
func TestChangedOpMissesItAndAfter(t *testing.T) {
	h := newHarness(t)
	h.mustSolve(chain("x"), solver.Options{})
	h.mustSolve(chain("y"), solver.Options{})
	got := h.statuses()
	want := map[string]solver.Status{"RUN one": solver.StatusCached, "RUN two y": solver.StatusDone, "RUN three": solver.StatusDone}
	for text, s := range want {
		if got[text] != s {
			t.Errorf("%s: %s, want %s", text, got[text], s)
		}
	}
	if h.ops.count(h.ops.runs, "one") != 0 || h.ops.count(h.ops.runs, "three") != 1 {
		t.Errorf("runs %v", h.ops.runs)
	}
}

// A changed input (a context file a COPY reads) misses that copy and what
// follows it, and explain names the file.
func TestChangedInputMissesAndIsExplained(t *testing.T) {
	h := newHarness(t)
	h.ops.context["a.txt"], h.ops.context["b.txt"] = "a", "b"
	d := def(0, stage(0, "", scratch, copyContext(2, "a.txt"), copyContext(3, "b.txt"), run(4, "after")))
	h.mustSolve(d, solver.Options{Explain: true})
	res := h.mustSolve(d, solver.Options{Explain: true})
	if h.ops.total() != 0 || len(res.Explanations) != 0 {
		t.Fatalf("an unchanged rebuild ran %v, explained %+v", h.ops.runs, res.Explanations)
	}
	h.ops.context["b.txt"] = "c"
	res = h.mustSolve(d, solver.Options{Explain: true})
	got := h.statuses()
	if got["COPY a.txt /"] != solver.StatusCached || got["COPY b.txt /"] != solver.StatusDone || got["RUN after"] != solver.StatusDone {
		t.Errorf("after changing b.txt: %v", got)
	}
	if len(res.Explanations) != 1 {
		t.Fatalf("explanations: %+v (want the first miss only)", res.Explanations)
	}
	if e := res.Explanations[0]; e.Step != "COPY b.txt /" || e.Line != 3 || !slices.Contains(e.Reasons, "file changed: b.txt") {
		t.Errorf("explanation: %+v", e)
	}
}

// Explain on a changed environment names the variable; on a step never
// built before, it says so.
func TestExplainMiss(t *testing.T) {
	h := newHarness(t)
	d := func(v string) *graph.Definition {
		return def(0, stage(0, "", scratch, runEnv(2, []string{"V=" + v}, "use-v")))
	}
	res := h.mustSolve(d("1"), solver.Options{Explain: true})
	if len(res.Explanations) != 1 || !strings.Contains(res.Explanations[0].Reasons[0], "never built before") {
		t.Errorf("first build: %+v", res.Explanations)
	}
	res = h.mustSolve(d("2"), solver.Options{Explain: true})
	if len(res.Explanations) != 1 || !slices.Contains(res.Explanations[0].Reasons, `variable V changed: "1" -> "2"`) {
		t.Errorf("changed V: %+v", res.Explanations)
	}
	if res = h.mustSolve(d("3"), solver.Options{}); len(res.Explanations) != 0 {
		t.Errorf("explained without Explain: %+v", res.Explanations)
	}
}

// Cancelling the build while an op works makes Solve return at once with
// context.Canceled, and nothing is recorded for the op.
func TestCancelWhileOpBlocks(t *testing.T) {
	h := newHarness(t)
	startedCh := make(chan string, 1)
	h.ops.hooks["block"] = started(startedCh, "block", nil) // until ctx ends
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := h.solve(ctx, def(0, stage(0, "", scratch, run(2, "before"), run(3, "block"))), solver.Options{})
		done <- err
	}()
	within(t, startedCh, 10*time.Second, "blocking op")
	cancel()
	err := within(t, done, 5*time.Second, "solve after cancel")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	recs := h.records()
	if _, ok := recs["RUN block"]; ok {
		t.Error("the cancelled op was recorded")
	}
	if _, ok := recs["RUN before"]; !ok {
		t.Error("the step that finished before the cancel was not recorded")
	}
}

// A failing op fails the build with its Dockerfile location, records
// nothing for it, and cancels the other stages.
func TestFailingOp(t *testing.T) {
	h := newHarness(t)
	startedCh := make(chan string, 1)
	h.ops.hooks["other"] = started(startedCh, "other", nil) // until cancelled
	h.ops.hooks["fail"] = func(ctx context.Context) error {
		<-startedCh // the other stage is working
		return errors.New("exit code: 3")
	}
	d := def(2,
		stage(0, "bad", scratch, run(2, "fail")),
		stage(1, "other", scratch, run(4, "other")),
		stage(2, "", scratch, copyFrom(6, 0, "/f"), copyFrom(7, 1, "/f")))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := h.solve(ctx, d, solver.Options{})
	var ge *graph.Error
	if !errors.As(err, &ge) || ge.Location.Line != 2 || err.Error() != "Dockerfile:2: RUN fail: exit code: 3" {
		t.Fatalf("err = %v, want the failing step's location and text", err)
	}
	if ctx.Err() != nil {
		t.Error("the other stage was not cancelled: the build ran until the test's timeout")
	}
	if len(h.records()) != 0 {
		t.Errorf("records after the failure: %v", h.records())
	}
	if h.ops.count(h.ops.runs, "copy /f") != 0 {
		t.Error("the target ran after a stage it needs failed")
	}
}
