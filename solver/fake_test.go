package solver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/graph"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
)

// The tests in this package run no container and mount nothing: fake ops
// make tiny tar layers staged in a temporary store, so that the scheduler
// and the cache are tested without root, as BuildKit's scheduler tests do
// with fake vertices.

// fakeOps binds graph ops to fake ones and counts what they do. An op is
// named by its instruction's arguments (see opName); hooks, by name, run
// inside the op's Exec (to block, fail or wait) and must not be changed
// while a build runs.
type fakeOps struct {
	st      *store.Store
	images  map[string]solver.Chain
	context map[string]string // the fake build context: path -> content
	hooks   map[string]func(ctx context.Context) error

	mu      sync.Mutex
	bound   map[string]int // ResolveOp calls, by name
	runs    map[string]int // Exec calls, by name
	running int
	peak    int      // most Execs at once
	trace   []string // "key NAME", "exec NAME", "done NAME", in order
	seq     int      // makes every run's layer different
	inputs  map[string][]solver.Chain
	// fetch, when set, is called for each parent layer blob the store
	// lacks before an Exec, as solver/ops does before it unpacks one.
	fetch func(ctx context.Context, d digest.Digest) error
}

func newFakeOps(st *store.Store) *fakeOps {
	return &fakeOps{st: st, images: map[string]solver.Chain{}, context: map[string]string{},
		hooks: map[string]func(context.Context) error{}}
}

// reset forgets the counts of the last build.
func (f *fakeOps) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bound, f.runs, f.inputs = map[string]int{}, map[string]int{}, map[string][]solver.Chain{}
	f.running, f.peak, f.trace = 0, 0, nil
}

func (f *fakeOps) note(event string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trace = append(f.trace, event)
}

// index is where event is in the trace, -1 when it is not.
func (f *fakeOps) index(event string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Index(f.trace, event)
}

func (f *fakeOps) count(m map[string]int, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[name]
}

func (f *fakeOps) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.runs {
		n += c
	}
	return n
}

func opName(op graph.Op) string {
	switch op := op.(type) {
	case *graph.Exec:
		return strings.Join(op.Args, " ")
	case *graph.Copy:
		return "copy " + strings.Join(op.Sources, " ")
	case *graph.Mkdir:
		return "mkdir " + op.Path
	}
	return fmt.Sprintf("%T", op)
}

func (f *fakeOps) ResolveOp(ctx context.Context, op graph.Op) (solver.Op, error) {
	name := opName(op)
	f.mu.Lock()
	f.bound[name]++
	f.mu.Unlock()
	return &fakeOp{f: f, op: op, name: name}, nil
}

func (f *fakeOps) ResolveImage(ctx context.Context, ref string) (solver.Chain, error) {
	img, ok := f.images[ref]
	if !ok {
		return solver.Chain{}, fmt.Errorf("image %q: not found", ref)
	}
	return img, nil
}

type fakeOp struct {
	f    *fakeOps
	op   graph.Op
	name string
}

// CacheMap covers what the real ops cover: the op's JSON, and for a copy
// the context files it selects or the key of the chain it reads.
func (o *fakeOp) CacheMap(ctx context.Context, inputs []solver.Chain) (solver.CacheMap, error) {
	o.f.note("key " + o.name)
	b, err := json.Marshal(o.op)
	if err != nil {
		return solver.CacheMap{}, err
	}
	cm := solver.CacheMap{Op: b}
	switch op := o.op.(type) {
	case *graph.Exec:
		cm.Kind = "exec"
	case *graph.Mkdir:
		cm.Kind = "mkdir"
	case *graph.Copy:
		cm.Kind = "copy"
		if !op.From.Context {
			if len(inputs) != 1 {
				return solver.CacheMap{}, fmt.Errorf("%d inputs", len(inputs))
			}
			cm.Input = inputs[0].Key
			break
		}
		var files []cache.File
		for _, p := range op.Sources {
			body, ok := o.f.context[p]
			if !ok {
				return solver.CacheMap{}, fmt.Errorf("%s: no such file in the context", p)
			}
			files = append(files, cache.File{Path: p, Digest: digest.FromString(body)})
		}
		list, _ := json.Marshal(files)
		cm.Input = digest.FromBytes(list)
		cm.Files = func() []cache.File { return files }
	}
	return cm, nil
}

func (o *fakeOp) Exec(ctx context.Context, parent solver.Chain, inputs []solver.Chain, log io.Writer) (solver.Layer, error) {
	f := o.f
	f.mu.Lock()
	f.runs[o.name]++
	f.inputs[o.name] = inputs
	f.running++
	f.peak = max(f.peak, f.running)
	f.seq++
	body := fmt.Sprintf("%s #%d on %s", o.name, f.seq, parent.Key)
	f.trace = append(f.trace, "exec "+o.name)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.trace = append(f.trace, "done "+o.name)
		f.mu.Unlock()
	}()
	if hook := f.hooks[o.name]; hook != nil {
		if err := hook(ctx); err != nil {
			return solver.Layer{}, err
		}
	}
	for _, l := range parent.Layers {
		if f.fetch != nil && !f.st.Content().HasBlob(l.Digest) {
			if err := f.fetch(ctx, l.Digest); err != nil {
				return solver.Layer{}, err
			}
		}
	}
	fmt.Fprintf(log, "ran %s\n", o.name)
	blob, diffID, err := f.st.Content().StageLayer(ctx, bytes.NewReader(tarOf(body)))
	if err != nil {
		return solver.Layer{}, err
	}
	return solver.Layer{Blob: blob, DiffID: diffID}, nil
}

// tarOf is a layer with one file holding body.
func tarOf(body string) []byte {
	var buf bytes.Buffer
	w := testutil.NewTarWriter(&buf)
	_ = w.Add(testutil.TarEntry{Name: "f", Body: body, ModTime: time.Unix(0, 0)})
	_ = w.Close()
	return buf.Bytes()
}

// harness is a temporary store, fake ops and a solver over them.
type harness struct {
	t   *testing.T
	st  *store.Store
	ops *fakeOps

	mu     sync.Mutex
	events []solver.Event
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, st: st, ops: newFakeOps(st)}
}

// solve runs one build; its counts replace the last build's.
func (h *harness) solve(ctx context.Context, def *graph.Definition, opt solver.Options) (*solver.Result, error) {
	h.ops.reset()
	h.mu.Lock()
	h.events = nil
	h.mu.Unlock()
	if opt.Dockerfile == "" {
		opt.Dockerfile = "/ctx/Dockerfile"
	}
	s := &solver.Solver{Store: h.st, Ops: h.ops, Images: h.ops, Reporter: func(e solver.Event) {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	}}
	return s.Solve(ctx, def, opt)
}

// mustSolve is solve that fails the test on an error or after a minute.
func (h *harness) mustSolve(def *graph.Definition, opt solver.Options) *solver.Result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := h.solve(ctx, def, opt)
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

// statuses are the final statuses of the last build's steps, by text.
func (h *harness) statuses() map[string]solver.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]solver.Status{}
	for _, e := range h.events {
		if e.Status == solver.StatusStart || e.Status == solver.StatusLog {
			continue
		}
		out[e.Name[strings.Index(e.Name, "] ")+2:]] = e.Status
	}
	return out
}

// records are the store's cache records, by step text.
func (h *harness) records() map[string]cache.Record {
	h.t.Helper()
	list, err := cache.List(context.Background(), h.st.Meta())
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]cache.Record{}
	for _, r := range list {
		out[r.Step.Text] = r
	}
	return out
}

// Building definitions by hand: every stage starts from scratch unless
// from says otherwise; line numbers make locations.

var scratch = graph.From{Scratch: true, Stage: -1}

func fromStage(i int) graph.From { return graph.From{Stage: i} }

func stage(i int, name string, from graph.From, steps ...*graph.Step) *graph.Stage {
	return &graph.Stage{Index: i, Name: name, Location: graph.Location{File: "Dockerfile", Line: 1}, From: from, Steps: steps}
}

func def(target int, stages ...*graph.Stage) *graph.Definition {
	return &graph.Definition{Stages: stages, Target: target}
}

func run(line int, args ...string) *graph.Step {
	return step(line, "RUN "+strings.Join(args, " "), &graph.Exec{Args: args})
}

func runEnv(line int, env []string, args ...string) *graph.Step {
	return step(line, "RUN "+strings.Join(args, " "), &graph.Exec{Args: args, Env: env})
}

func copyFrom(line, from int, src string) *graph.Step {
	return step(line, fmt.Sprintf("COPY --from=%d %s /", from, src),
		&graph.Copy{From: graph.CopySource{Stage: from}, Sources: []string{src}, Dest: "/"})
}

func copyImage(line int, ref, src string) *graph.Step {
	return step(line, fmt.Sprintf("COPY --from=%s %s /", ref, src),
		&graph.Copy{From: graph.CopySource{Stage: -1, Image: ref}, Sources: []string{src}, Dest: "/"})
}

func copyContext(line int, srcs ...string) *graph.Step {
	return step(line, "COPY "+strings.Join(srcs, " ")+" /",
		&graph.Copy{From: graph.CopySource{Context: true, Stage: -1}, Sources: srcs, Dest: "/"})
}

func step(line int, text string, op graph.Op) *graph.Step {
	return &graph.Step{Location: graph.Location{File: "Dockerfile", Line: line}, Text: text, Op: op}
}

// started returns a hook that says it started on ch and then blocks until
// release is closed or ctx ends.
func started(ch chan<- string, name string, release <-chan struct{}) func(context.Context) error {
	return func(ctx context.Context) error {
		ch <- name
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// within fails the test unless ch delivers within d.
func within[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing after %v", what, d)
		panic("unreachable")
	}
}
