package solver_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/graph"
	digest "github.com/opencontainers/go-digest"
)

// Two stages run at once: each one's op blocks until both have started.
func TestParallelStages(t *testing.T) {
	h := newHarness(t)
	startedCh := make(chan string, 2)
	both := make(chan struct{})
	for _, name := range []string{"a", "b"} {
		h.ops.hooks[name] = func(ctx context.Context) error {
			startedCh <- name
			select {
			case <-both:
				return nil
			case <-time.After(10 * time.Second):
				return fmt.Errorf("%s: the other stage never started", name)
			}
		}
	}
	d := def(2,
		stage(0, "a", scratch, run(2, "a")),
		stage(1, "b", scratch, run(4, "b")),
		stage(2, "", scratch, copyFrom(6, 0, "/f"), copyFrom(7, 1, "/f")))
	done := make(chan error, 1)
	go func() {
		_, err := h.solve(context.Background(), d, solver.Options{})
		done <- err
	}()
	within(t, startedCh, 10*time.Second, "first stage")
	within(t, startedCh, 10*time.Second, "second stage")
	close(both)
	if err := within(t, done, 10*time.Second, "solve"); err != nil {
		t.Fatal(err)
	}
}

// With one slot, no two ops ever run at once, and no step's progress
// overlaps another's.
func TestMaxParallelismOne(t *testing.T) {
	h := newHarness(t)
	for _, name := range []string{"a", "b", "c"} {
		h.ops.hooks[name] = func(ctx context.Context) error {
			time.Sleep(20 * time.Millisecond) // time for another to start, were it let
			return nil
		}
	}
	d := def(3,
		stage(0, "a", scratch, run(2, "a")),
		stage(1, "b", scratch, run(4, "b")),
		stage(2, "c", scratch, run(6, "c")),
		stage(3, "", scratch, copyFrom(8, 0, "/f"), copyFrom(9, 1, "/f"), copyFrom(10, 2, "/f")))
	h.mustSolve(d, solver.Options{MaxParallelism: 1})
	if h.ops.peak != 1 || h.ops.total() != 6 {
		t.Errorf("%d ops ran, at most %d at once; want 6, one at a time", h.ops.total(), h.ops.peak)
	}
	running := 0
	for _, e := range h.events {
		switch e.Status {
		case solver.StatusStart:
			if running++; running > 1 {
				t.Errorf("%s started while another step ran", e.Name)
			}
		case solver.StatusDone, solver.StatusCached, solver.StatusError:
			running--
		}
	}
	if _, err := h.solve(context.Background(), d, solver.Options{MaxParallelism: -1}); err == nil {
		t.Error("a negative MaxParallelism was accepted")
	}
}

// Stages the target does not need are neither bound nor run, even one
// that would fail.
func TestOnlyNeededStagesRun(t *testing.T) {
	h := newHarness(t)
	h.ops.hooks["unrelated"] = func(context.Context) error { return errors.New("must not run") }
	d := def(2,
		stage(0, "base", scratch, run(2, "base")),
		stage(1, "unrelated", scratch, run(4, "unrelated")),
		stage(2, "", fromStage(0), run(6, "final")))
	h.mustSolve(d, solver.Options{})
	if h.ops.count(h.ops.bound, "unrelated") != 0 || h.ops.count(h.ops.runs, "unrelated") != 0 {
		t.Error("an unneeded stage's op was bound or ran")
	}
	if h.ops.count(h.ops.runs, "base") != 1 || h.ops.count(h.ops.runs, "final") != 1 {
		t.Errorf("runs: %v", h.ops.runs)
	}
}

// The same step in two stages (same key) runs once, and both stages get
// its layer.
func TestIdenticalWorkInTwoStagesRunsOnce(t *testing.T) {
	h := newHarness(t)
	startedCh := make(chan string, 2)
	release := make(chan struct{})
	h.ops.hooks["shared"] = started(startedCh, "shared", release)
	d := def(2,
		stage(0, "a", scratch, run(2, "shared")),
		stage(1, "b", scratch, run(4, "shared")),
		stage(2, "", scratch, copyFrom(6, 0, "/a"), copyFrom(7, 1, "/b")))
	done := make(chan error, 1)
	go func() {
		_, err := h.solve(context.Background(), d, solver.Options{})
		done <- err
	}()
	within(t, startedCh, 10*time.Second, "shared step")
	// Both stages' steps have started (their progress says so) while the
	// one run blocks: the second waits for the first's.
	deadline := time.Now().Add(10 * time.Second)
	for h.startedSteps("RUN shared") < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if err := within(t, done, 10*time.Second, "solve"); err != nil {
		t.Fatal(err)
	}
	if n := h.ops.count(h.ops.runs, "shared"); n != 1 {
		t.Errorf("the shared step ran %d times, want 1", n)
	}
	// Both stages have the one layer the shared step made.
	a, b := h.ops.inputs["copy /a"], h.ops.inputs["copy /b"]
	if len(a) != 1 || len(b) != 1 || len(a[0].DiffIDs) != 1 || a[0].DiffIDs[0] != b[0].DiffIDs[0] {
		t.Errorf("the stages' results differ: %+v and %+v", a, b)
	}
}

// eventIndex is the position of the last build's event of step text with
// status st, -1 when there is none.
func (h *harness) eventIndex(text string, st solver.Status) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.IndexFunc(h.events, func(e solver.Event) bool {
		return e.Status == st && strings.HasSuffix(e.Name, "] "+text)
	})
}

func (h *harness) startedSteps(text string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.events {
		if e.Status == solver.StatusStart && strings.HasSuffix(e.Name, "] "+text) {
			n++
		}
	}
	return n
}

// A COPY --from a stage waits for that stage, and its key covers the
// stage's: a change in the stage makes the copy miss.
func TestCopyFromStageWaitsAndKeysOnIt(t *testing.T) {
	h := newHarness(t)
	startedCh := make(chan string, 1)
	release := make(chan struct{})
	h.ops.hooks["slow 1"] = started(startedCh, "slow", release)
	build := func(arg string) *graph.Definition {
		return def(1,
			stage(0, "slow", scratch, run(2, "slow", arg)),
			stage(1, "", scratch, run(4, "final"), copyFrom(5, 0, "/f")))
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.solve(context.Background(), build("1"), solver.Options{})
		done <- err
	}()
	within(t, startedCh, 10*time.Second, "slow stage")
	time.Sleep(50 * time.Millisecond) // the copy would have started by now, were it not waiting
	close(release)
	if err := within(t, done, 10*time.Second, "solve"); err != nil {
		t.Fatal(err)
	}
	if slow, cp := h.ops.index("done slow 1"), h.ops.index("key copy /f"); slow < 0 || cp < slow {
		t.Errorf("the copy's key was computed (trace %d) before the stage it reads was done (%d): %v", cp, slow, h.ops.trace)
	}
	// Its time is its own: it starts after the stage it reads is done.
	if done, start := h.eventIndex("RUN slow 1", solver.StatusDone), h.eventIndex("COPY --from=0 /f /", solver.StatusStart); done < 0 || start < done {
		t.Errorf("the copy started (event %d) before the stage it reads was done (event %d)", start, done)
	}
	recs := h.records()
	if got, want := recs["COPY --from=0 /f /"].Step.Input, recs["RUN slow 1"].Key; got != want {
		t.Errorf("the copy's input is %s, want the stage's key %s", got, want)
	}
	if in := h.ops.inputs["copy /f"]; len(in) != 1 || in[0].Key != recs["RUN slow 1"].Key || len(in[0].Layers) != 1 {
		t.Errorf("the copy read %+v, want the stage's one-layer chain", in)
	}

	delete(h.ops.hooks, "slow 1")
	h.mustSolve(build("2"), solver.Options{})
	if got := h.statuses(); got["RUN final"] != solver.StatusCached || got["COPY --from=0 /f /"] != solver.StatusDone {
		t.Errorf("after the stage changed: %v", got)
	}
}

// COPY --from an image keys on its ID (the chain's Key).
func TestCopyFromImageKeysOnItsID(t *testing.T) {
	h := newHarness(t)
	h.ops.images["img"] = solver.Chain{Key: digest.Digest("sha256:" + strings.Repeat("1", 64))}
	d := def(0, stage(0, "", scratch, copyImage(2, "img", "/f")))
	h.mustSolve(d, solver.Options{})
	if got := h.records()["COPY --from=img /f /"].Step.Input; got != h.ops.images["img"].Key {
		t.Errorf("input %s, want the manifest digest", got)
	}
	h.ops.images["img"] = solver.Chain{Key: digest.Digest("sha256:" + strings.Repeat("2", 64))}
	h.mustSolve(d, solver.Options{})
	if h.ops.total() != 1 {
		t.Error("a changed image did not make the copy miss")
	}
}
