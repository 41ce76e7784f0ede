package ops_test

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

	"github.com/builder-dev/builder/frontend/dockerfile"
	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/runner"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/ops"
	"github.com/builder-dev/builder/source"
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
	snap   *snapshot.Snapshotter
	runner ops.Runner
	report solver.Reporter
	runs   atomic.Int32
	mu     sync.Mutex
	events []solver.Event
	// ran is when each container ran, by its command line.
	ran map[string]span
}

type span struct{ from, to time.Time }

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
	if _, err := source.Import(ctx, st, rootfs, "base/busybox:1", ocispec.ImageConfig{Env: []string{source.DefaultPath}, Cmd: []string{"sh"}}); err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.New(st.SnapshotsDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, snap: sn, ran: map[string]span{}}
	e.runner = ops.RunnerFunc(func(ctx context.Context, spec runner.Spec, stdio runner.Stdio) error {
		e.runs.Add(1)
		from := time.Now()
		err := runner.Run(ctx, spec, stdio)
		e.mu.Lock()
		e.ran[strings.Join(spec.Args, " ")] = span{from, time.Now()}
		e.mu.Unlock()
		return err
	})
	e.report = func(ev solver.Event) {
		e.mu.Lock()
		e.events = append(e.events, ev)
		e.mu.Unlock()
	}
	return e
}

type buildOpts struct {
	args        map[string]string
	target      string
	explain     bool
	maxParallel int
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
			desc, err := e.store.Content().Resolve(ctx, ref)
			if err != nil {
				return img, err
			}
			m, _, err := e.store.Content().LoadImage(ctx, desc)
			if err != nil {
				return img, err
			}
			return img, e.store.Content().ReadJSON(ctx, m.Config.Digest, &img)
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.runs.Store(0)
	e.mu.Lock()
	e.events = nil
	e.mu.Unlock()
	r, err := ops.New(ops.Config{Store: e.store, Snap: e.snap, Runner: e.runner, ContextDir: dir})
	if err != nil {
		e.t.Fatal(err)
	}
	s := &solver.Solver{Store: e.store, Ops: r, Images: r, Reporter: e.report}
	res, err := s.Solve(ctx, def, solver.Options{Dockerfile: filepath.Join(dir, "Dockerfile"), Explain: o.explain, MaxParallelism: o.maxParallel})
	if cerr := r.Close(ctx); err == nil {
		err = cerr
	}
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
	// Three stages, more than this machine's CPUs and than most CI
	// runners': steps are not throttled by cores.
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM base/busybox:1 AS a
RUN sleep 1 && echo a > /a
FROM base/busybox:1 AS b
RUN sleep 1 && echo b > /b
FROM base/busybox:1 AS c
RUN sleep 1 && echo c > /c
FROM base/busybox:1 AS unrelated
RUN exit 9
FROM base/busybox:1
COPY --from=a /a /a
COPY --from=b /b /b
COPY --from=c /c /c
`})
	e.build(dir, buildOpts{})
	e.mu.Lock()
	defer e.mu.Unlock()
	sleeps := map[string]span{}
	for cmd, s := range e.ran {
		if strings.Contains(cmd, "sleep") {
			sleeps[cmd] = s
		}
	}
	if len(sleeps) != 3 {
		t.Fatalf("ran %v", e.ran)
	}
	// Overlap: each container started before every other one ended.
	for a, sa := range sleeps {
		for b, sb := range sleeps {
			if a != b && !sa.from.Before(sb.to) {
				t.Errorf("%q started after %q ended: %v", a, b, sleeps)
			}
		}
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

// A step starts when its inputs are ready: the COPY --from a slow stage
// reports its start after that stage's RUN is done, so its time is the
// copy's alone (the order of events, not a duration, shows it).
func TestStepStartsAfterItsInputs(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM base/busybox:1 AS slow
RUN sleep 1 && echo x > /x
FROM base/busybox:1
COPY --from=slow /x /x
`})
	e.build(dir, buildOpts{})
	e.mu.Lock()
	defer e.mu.Unlock()
	runDone, copyStart := -1, -1
	for i, ev := range e.events {
		switch {
		case strings.Contains(ev.Name, "RUN sleep") && ev.Status == solver.StatusDone:
			runDone = i
		case strings.Contains(ev.Name, "COPY --from=slow") && ev.Status == solver.StatusStart:
			copyStart = i
		}
	}
	if runDone < 0 || copyStart < runDone {
		t.Errorf("the COPY started (event %d) before the stage it copies from was done (event %d)", copyStart, runDone)
	}
}

// With one slot, no two steps overlap, containers or progress: each step
// starts after the one before it is reported done, so that no step's time
// includes its wait for the slot.
func TestMaxParallelismOne(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM base/busybox:1 AS a
RUN sleep 0.3 && echo a > /a
FROM base/busybox:1 AS b
RUN sleep 0.3 && echo b > /b
FROM base/busybox:1
COPY --from=a /a /a
COPY --from=b /b /b
`})
	e.build(dir, buildOpts{maxParallel: 1})
	e.mu.Lock()
	defer e.mu.Unlock()
	running := 0
	for _, ev := range e.events {
		switch ev.Status {
		case solver.StatusStart:
			if running++; running > 1 {
				t.Errorf("%s started while another step ran", ev.Name)
			}
		case solver.StatusDone, solver.StatusCached, solver.StatusError:
			running--
		}
	}
	if len(e.ran) != 2 {
		t.Fatalf("ran %v", e.ran)
	}
	var spans []span
	for _, s := range e.ran {
		spans = append(spans, s)
	}
	if spans[0].from.Before(spans[1].to) && spans[1].from.Before(spans[0].to) {
		t.Errorf("the containers overlapped: %v", spans)
	}
}
