package solver_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/exporter"
	"github.com/builder-dev/builder/frontend/dockerfile"
	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/runner"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/store"
)

func TestMain(m *testing.M) {
	runner.Init() // RUN re-executes this test binary as container init
	os.Exit(m.Run())
}

// env is a store with a busybox base image and a solver whose runner counts
// the containers it starts.
type env struct {
	t      *testing.T
	store  *store.Store
	solver *solver.Solver
	runs   atomic.Int32
	mu     sync.Mutex
	events []solver.Event
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequiresRoot(t)
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	if _, err := exporter.Import(ctx, st, rootfs, "base/busybox:1", ocispec.ImageConfig{Env: []string{exporter.DefaultPath}, Cmd: []string{"sh"}}); err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.New(st.SnapshotsDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st}
	e.solver = &solver.Solver{Store: st, Snap: sn,
		Runner: solver.RunnerFunc(func(ctx context.Context, spec runner.Spec, stdio runner.Stdio) error {
			e.runs.Add(1)
			return runner.Run(ctx, spec, stdio)
		}),
		Reporter: func(ev solver.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
	}
	return e
}

type buildOpts struct {
	args    map[string]string
	target  string
	explain bool
}

// build converts and solves the Dockerfile in dir and returns the result and
// how many containers ran.
func (e *env) build(dir string, o buildOpts) (*solver.Result, int) {
	e.t.Helper()
	ctx := context.Background()
	src, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		e.t.Fatal(err)
	}
	def, err := dockerfile.Convert(ctx, src, dockerfile.Options{
		File: filepath.Join(dir, "Dockerfile"), BuildArgs: o.args, Target: o.target,
		ResolveImage: func(ctx context.Context, ref string) (dockerspec.DockerOCIImage, error) {
			var img dockerspec.DockerOCIImage
			desc, err := e.store.Resolve(ctx, ref)
			if err != nil {
				return img, err
			}
			m, _, err := e.store.LoadImage(ctx, desc)
			if err != nil {
				return img, err
			}
			return img, e.store.ReadJSON(ctx, m.Config.Digest, &img)
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.runs.Store(0)
	e.mu.Lock()
	e.events = nil
	e.mu.Unlock()
	res, err := e.solver.Solve(ctx, def, solver.Options{ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), Explain: o.explain})
	if err != nil {
		e.t.Fatal(err)
	}
	return res, int(e.runs.Load())
}

// missed lists the names of the steps that did not come from the cache.
func (e *env) missed() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		if ev.Status == solver.StatusDone {
			out = append(out, ev.Name[strings.Index(ev.Name, "] ")+2:])
		}
	}
	return out
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const chain = `FROM base/busybox:1
RUN date +%s%N > /first
COPY a.txt /a.txt
RUN cat /a.txt > /after-a
COPY b.txt /b.txt
RUN cat /b.txt > /after-b
`

func TestIdenticalRebuildRunsNothing(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": chain, "a.txt": "a", "b.txt": "b"})
	first, runs := e.build(dir, buildOpts{})
	if runs != 3 {
		t.Fatalf("first build ran %d containers, want 3", runs)
	}
	second, runs := e.build(dir, buildOpts{})
	if runs != 0 || len(e.missed()) != 0 {
		t.Fatalf("identical rebuild ran %d containers, missed %v", runs, e.missed())
	}
	// A re-run of `date` would have made another layer.
	if first.Config.RootFS.DiffIDs[1] != second.Config.RootFS.DiffIDs[1] {
		t.Error("rebuild produced a different first layer")
	}
}

func TestOneByteChangeRerunsFromThatCopy(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": chain, "a.txt": "a", "b.txt": "b"})
	e.build(dir, buildOpts{})
	writeFiles(t, dir, map[string]string{"b.txt": "c"}) // same size, one byte
	_, runs := e.build(dir, buildOpts{explain: true})
	if got := strings.Join(e.missed(), "|"); got != "COPY b.txt /b.txt|RUN cat /b.txt > /after-b" || runs != 1 {
		t.Errorf("after changing b.txt: missed %q, %d runs", got, runs)
	}
	// The explanation names the file.
	res, _ := e.build(dir, buildOpts{explain: true})
	if len(res.Explanations) != 0 {
		t.Errorf("cached build explained misses: %+v", res.Explanations)
	}
	writeFiles(t, dir, map[string]string{"a.txt": "changed"})
	res, _ = e.build(dir, buildOpts{explain: true})
	if len(res.Explanations) != 1 || !strings.Contains(strings.Join(res.Explanations[0].Reasons, "\n"), "file changed: a.txt") {
		t.Errorf("explanation does not name a.txt: %+v", res.Explanations)
	}
}

func TestMtimeOnlyChangeRerunsNothing(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": chain, "a.txt": "a", "b.txt": "b"})
	e.build(dir, buildOpts{})
	later := time.Now().Add(time.Hour)
	for _, f := range []string{"a.txt", "b.txt"} {
		if err := os.Chtimes(filepath.Join(dir, f), later, later); err != nil {
			t.Fatal(err)
		}
	}
	if _, runs := e.build(dir, buildOpts{}); runs != 0 || len(e.missed()) != 0 {
		t.Errorf("mtime-only change re-ran %v", e.missed())
	}
}

func TestBuildArgInvalidatesOnlyStepsThatSeeIt(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM base/busybox:1
RUN echo before > /before
ARG V=1
RUN echo "$V" > /v
`})
	e.build(dir, buildOpts{args: map[string]string{"V": "1"}})
	if _, runs := e.build(dir, buildOpts{args: map[string]string{"V": "1", "UNUSED": "x"}}); runs != 0 {
		t.Errorf("an undeclared build arg re-ran %v", e.missed())
	}
	res, runs := e.build(dir, buildOpts{args: map[string]string{"V": "2"}, explain: true})
	if got := strings.Join(e.missed(), "|"); got != `RUN echo "$V" > /v` || runs != 1 {
		t.Errorf("changing V missed %q", got)
	}
	if len(res.Explanations) != 1 || !strings.Contains(strings.Join(res.Explanations[0].Reasons, "\n"), `variable V changed: "1" -> "2"`) {
		t.Errorf("explanation: %+v", res.Explanations)
	}
}

func TestParallelStagesOverlap(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM base/busybox:1 AS a
RUN sleep 1 && echo a > /a
FROM base/busybox:1 AS b
RUN sleep 1 && echo b > /b
FROM base/busybox:1 AS unrelated
RUN exit 9
FROM base/busybox:1
COPY --from=a /a /a
COPY --from=b /b /b
`})
	e.build(dir, buildOpts{})
	starts := map[string]time.Time{}
	ends := map[string]time.Time{}
	e.mu.Lock()
	for _, ev := range e.events {
		if !strings.Contains(ev.Name, "RUN sleep") {
			continue
		}
		switch ev.Status {
		case solver.StatusStart:
			starts[ev.Name] = ev.Time
		case solver.StatusDone:
			ends[ev.Name] = ev.Time
		}
	}
	e.mu.Unlock()
	if len(starts) != 2 || len(ends) != 2 {
		t.Fatalf("events: starts %v ends %v", starts, ends)
	}
	// Overlap: each started before the other ended.
	var names []string
	for n := range starts {
		names = append(names, n)
	}
	if !starts[names[0]].Before(ends[names[1]]) || !starts[names[1]].Before(ends[names[0]]) {
		t.Errorf("stages did not overlap: %v %v", starts, ends)
	}
}

func TestIdenticalStepsInTwoStagesRunOnce(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM base/busybox:1 AS a
RUN sleep 1 && date +%s%N > /stamp
FROM base/busybox:1 AS b
RUN sleep 1 && date +%s%N > /stamp
FROM base/busybox:1
COPY --from=a /stamp /a
COPY --from=b /stamp /b
RUN cmp /a /b
`})
	if _, runs := e.build(dir, buildOpts{}); runs != 2 { // the shared RUN once, then cmp
		t.Errorf("ran %d containers, want 2 (shared step once, then cmp)", runs)
	}
}
