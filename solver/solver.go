package solver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/builder-dev/builder/fsutil"
	"github.com/builder-dev/builder/fsutil/statcache"
	"github.com/builder-dev/builder/runner"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/solver/graph"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
	"github.com/builder-dev/builder/store/meta"
)

// Runner runs one container; runner.Run in production, a counting wrapper
// in tests.
type Runner interface {
	Run(ctx context.Context, spec runner.Spec, stdio runner.Stdio) error
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context, spec runner.Spec, stdio runner.Stdio) error

func (f RunnerFunc) Run(ctx context.Context, spec runner.Spec, stdio runner.Stdio) error {
	return f(ctx, spec, stdio)
}

// Solver builds definitions against one store.
type Solver struct {
	Store    *store.Store
	Snap     *snapshot.Snapshotter
	Runner   Runner
	Reporter Reporter
}

// Options are the per-build inputs that are not in the definition.
type Options struct {
	// ContextDir is the build context's directory: an absolute, clean
	// path. The caller resolves what the user typed once, so that every
	// spelling of one directory names the same stat-cache.
	ContextDir string
	// Dockerfile is the Dockerfile's absolute path: with the stage and step
	// position it names a step across builds, for explaining misses.
	Dockerfile string
	// Ignore is the .dockerignore patterns of the context.
	Ignore  []string
	NoCache bool
	// Explain makes the solver say, for the first missed step of each
	// stage, what changed against the closest earlier record of it.
	Explain bool
	// MaxParallelism bounds how many steps run at once; 0 is no bound, as
	// in BuildKit. Not the number of CPUs: a RUN that waits (a download, a
	// sleep) holds none, and a cap by cores would only queue the waits.
	MaxParallelism int
}

// Result is a solved stage: its layers and final image configuration.
type Result struct {
	Layers []ocispec.Descriptor
	Config dockerspec.DockerOCIImage
	// Chain is the snapshot of the result; it may not be unpacked yet.
	Chain snapshot.Committed
	// Explanations say why steps missed the cache (with Options.Explain).
	Explanations []Explanation
}

// state is a stage's position while its steps run: the cache key so far and
// the layers so far. Layers are not unpacked until a step needs them.
type state struct {
	// hit is true while every step so far came from the cache: the first
	// miss after it is the one worth explaining.
	hit     bool
	key     digest.Digest
	layers  []ocispec.Descriptor
	diffIDs []digest.Digest
}

type stageFuture struct {
	done chan struct{}
	st   state
	cfg  dockerspec.DockerOCIImage
	err  error
}

// build is one Solve call.
type build struct {
	s          *Solver
	def        *graph.Definition
	opt        Options
	prog       *progress
	stages     []*stageFuture
	vertexN    int
	vmu        sync.Mutex
	filterOnce sync.Once
	ignore     *fsutil.IgnoreMatcher
	ignoreErr  error
	stat       *statcache.Cache // nil when no step reads the context

	mu       sync.Mutex
	hits     []digest.Digest // keys to mark used when the build ends
	inflight map[digest.Digest]*call
	explain  []Explanation
	sem      chan struct{} // bounds concurrently running steps; nil: no bound
	records  *recorder
}

// call is one step execution other stages with the same key wait for.
type call struct {
	done chan struct{}
	st   state
	at   time.Time
	err  error
}

// Solve builds the target stage of def and everything it needs. The
// caller holds the store's build lock (store.LockBuild) from before Solve
// until the result is named by an image, so that no prune removes it.
func (s *Solver) Solve(ctx context.Context, def *graph.Definition, opt Options) (*Result, error) {
	if def.Target < 0 || def.Target >= len(def.Stages) {
		return nil, fmt.Errorf("solve: target stage %d out of range", def.Target)
	}
	if opt.ContextDir != "" && (!filepath.IsAbs(opt.ContextDir) || filepath.Clean(opt.ContextDir) != opt.ContextDir) {
		return nil, fmt.Errorf("solve: context directory %q is not an absolute, clean path", opt.ContextDir)
	}
	if opt.MaxParallelism < 0 {
		return nil, fmt.Errorf("solve: max parallelism %d is negative", opt.MaxParallelism)
	}
	b := &build{s: s, def: def, opt: opt, prog: &progress{report: s.Reporter},
		inflight: map[digest.Digest]*call{}, records: newRecorder(s.Store.Meta())}
	if opt.MaxParallelism > 0 {
		b.sem = make(chan struct{}, opt.MaxParallelism)
	}
	b.stages = make([]*stageFuture, len(def.Stages))
	for i := range b.stages {
		b.stages[i] = &stageFuture{done: make(chan struct{})}
	}
	needed := neededStages(def)
	if opt.ContextDir != "" && readsContext(def, needed) {
		// Opened under the build's ctx, not a stage's: its records load in
		// the background while the stages start, and the load must last
		// until Flush below, after every stage has ended (and the stages'
		// ctx with them). A cache that cannot be opened only costs reading
		// every file.
		b.stat, _ = statcache.Open(ctx, s.Store.Meta(), opt.ContextDir)
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range def.Stages {
		if !needed[i] {
			continue
		}
		g.Go(func() error {
			f := b.stages[i]
			defer close(f.done)
			f.st, f.cfg, f.err = b.solveStage(gctx, def.Stages[i])
			return f.err
		})
	}
	err := g.Wait()
	if rerr := b.records.wait(); err == nil && rerr != nil {
		err = fmt.Errorf("store layers and cache records: %w", rerr)
	}
	if b.stat != nil {
		// The remembered sums stay valid whether or not the build worked.
		if ferr := b.stat.Flush(context.WithoutCancel(ctx)); err == nil && ferr != nil {
			err = fmt.Errorf("write context stat-cache: %w", ferr)
		}
	}
	// Used records are marked even when the build failed: they were used.
	if terr := cache.Touch(context.WithoutCancel(ctx), s.Store.Meta().Lazy(), b.hits, time.Now().UTC()); err == nil && terr != nil {
		err = fmt.Errorf("mark cache records used: %w", terr)
	}
	if err != nil {
		return nil, err
	}
	f := b.stages[def.Target]
	res := &Result{Layers: f.st.layers, Config: f.cfg, Chain: snapshot.ChainOf(f.st.diffIDs), Explanations: b.explain}
	return res, nil
}

// neededStages marks the target and, transitively, every stage it starts
// from or copies from.
func neededStages(def *graph.Definition) []bool {
	needed := make([]bool, len(def.Stages))
	var visit func(i int)
	visit = func(i int) {
		if i < 0 || i >= len(def.Stages) || needed[i] {
			return
		}
		needed[i] = true
		st := def.Stages[i]
		if st.From.Stage >= 0 && st.From.Image == "" && !st.From.Scratch {
			visit(st.From.Stage)
		}
		for _, step := range st.Steps {
			if c, ok := step.Op.(*graph.Copy); ok && c.From.Stage >= 0 && !c.From.Context && c.From.Image == "" {
				visit(c.From.Stage)
			}
		}
	}
	visit(def.Target)
	return needed
}

// readsContext reports whether a needed stage copies from the context.
func readsContext(def *graph.Definition, needed []bool) bool {
	for i, st := range def.Stages {
		if !needed[i] {
			continue
		}
		for _, step := range st.Steps {
			if c, ok := step.Op.(*graph.Copy); ok && c.From.Context {
				return true
			}
		}
	}
	return false
}

// await returns the result of stage i once it is solved.
func (b *build) await(ctx context.Context, i int) (stageFuture, error) {
	f := b.stages[i]
	select {
	case <-f.done:
	case <-ctx.Done():
		return stageFuture{}, ctx.Err()
	}
	if f.err != nil {
		return stageFuture{}, fmt.Errorf("stage %d failed", i)
	}
	return *f, nil
}

func (b *build) nextVertex() int {
	b.vmu.Lock()
	defer b.vmu.Unlock()
	b.vertexN++
	return b.vertexN
}

func (b *build) stageLabel(st *graph.Stage) string {
	if st.Name != "" {
		return st.Name
	}
	return fmt.Sprintf("stage-%d", st.Index)
}

func (b *build) solveStage(ctx context.Context, st *graph.Stage) (state, dockerspec.DockerOCIImage, error) {
	cur, err := b.base(ctx, st)
	if err != nil {
		return state{}, dockerspec.DockerOCIImage{}, err
	}
	cfg := st.Config
	history := append([]ocispec.History(nil), st.Base.History...)
	// Timestamps come from the cache records, and a config-only step takes
	// the time of the entry before it, so a cached rebuild writes the very
	// same config and thus the same image ID, as BuildKit does.
	last := lastCreated(history)
	rd := &reader{store: b.s.Store}
	defer rd.close()
	for i, step := range st.Steps {
		h := step.History
		if step.Op == nil {
			cur.key = cacheKey(cur.key, "config", step.History.CreatedBy, "")
			h.Created, h.EmptyLayer = last, true
			history = append(history, h)
			continue
		}
		next, created, err := b.doStep(ctx, rd, cur, st, i)
		if err != nil {
			return state{}, dockerspec.DockerOCIImage{}, err
		}
		cur = next
		last = &created
		h.Created, h.EmptyLayer = last, false
		history = append(history, h)
	}
	cfg.Created = last
	cfg.History = history
	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: append([]digest.Digest{}, cur.diffIDs...)}
	return cur, cfg, nil
}

// doStep runs step i of st with its progress events. Its time is its
// work, not the wait for the stages it reads or for a free slot: it starts
// once it has both. The slot is kept until the step's last event, so that
// with one slot no two steps overlap, in the progress either.
func (b *build) doStep(ctx context.Context, rd *reader, cur state, st *graph.Stage, i int) (state, time.Time, error) {
	step := st.Steps[i]
	name := fmt.Sprintf("[%s %d/%d] %s", b.stageLabel(st), i+1, len(st.Steps), step.Text)
	if err := b.awaitInputs(ctx, rd, step.Op); err != nil {
		return state{}, time.Time{}, err
	}
	release, err := b.slot(ctx, rd)
	if err != nil {
		return state{}, time.Time{}, err
	}
	defer release()
	v := b.nextVertex()
	start := time.Now()
	b.prog.send(Event{Vertex: v, Name: name, Status: StatusStart, Time: start})
	next, created, cached, err := b.runStep(ctx, rd, cur, st, i, v, name)
	if err != nil {
		b.prog.send(Event{Vertex: v, Name: name, Status: StatusError, Error: err.Error(), Duration: time.Since(start)})
		var ge *graph.Error
		if errors.As(err, &ge) || errors.Is(err, context.Canceled) {
			return state{}, time.Time{}, err
		}
		return state{}, time.Time{}, &graph.Error{Location: step.Location, Err: fmt.Errorf("%s: %w", step.Text, err)}
	}
	status := StatusDone
	if cached {
		status = StatusCached
	}
	b.prog.send(Event{Vertex: v, Name: name, Status: status, Duration: time.Since(start)})
	return next, created, nil
}

// lastCreated is the newest creation time among history entries.
func lastCreated(history []ocispec.History) *time.Time {
	var last *time.Time
	for _, h := range history {
		if h.Created != nil && (last == nil || h.Created.After(*last)) {
			last = h.Created
		}
	}
	return last
}

// base returns the starting state of a stage.
func (b *build) base(ctx context.Context, st *graph.Stage) (state, error) {
	switch {
	case st.From.Scratch:
		return state{hit: true, key: cacheKey("", "scratch", nil, "")}, nil
	case st.From.Image != "":
		img, err := b.s.image(ctx, st.From.Image)
		if err != nil {
			return state{}, &graph.Error{Location: st.Location, Err: err}
		}
		return state{hit: true, key: cacheKey("", "image", nil, img.manifest.Digest), layers: img.layers, diffIDs: img.diffIDs}, nil
	default:
		f, err := b.await(ctx, st.From.Stage)
		if err != nil {
			return state{}, err
		}
		return f.st, nil
	}
}

// awaitInputs waits for the stages op copies from. The stage's read
// session is given up first: it is never held while waiting for another
// stage (see reader).
func (b *build) awaitInputs(ctx context.Context, rd *reader, op graph.Op) error {
	c, ok := op.(*graph.Copy)
	if !ok || c.From.Context || c.From.Image != "" {
		return nil
	}
	rd.close()
	_, err := b.await(ctx, c.From.Stage)
	return err
}

// slot waits for one of the MaxParallelism slots, giving the stage's read
// session up first if it must wait; release frees the slot.
func (b *build) slot(ctx context.Context, rd *reader) (release func(), err error) {
	if b.sem == nil {
		return func() {}, nil
	}
	select {
	case b.sem <- struct{}{}:
		return func() { <-b.sem }, nil
	default:
	}
	rd.close()
	select {
	case b.sem <- struct{}{}:
		return func() { <-b.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// runStep executes one layer-making step, or reuses its recorded layer.
func (b *build) runStep(ctx context.Context, rd *reader, cur state, st *graph.Stage, index int, v int, name string) (state, time.Time, bool, error) {
	step := st.Steps[index]
	info := cache.Step{Dockerfile: b.opt.Dockerfile, Stage: b.stageLabel(st), Index: index, Line: step.Location.Line, Text: step.Text, Parent: cur.key}
	var (
		exec    func(ctx context.Context, active *snapshot.Active) error
		entries fsutil.Entries // a context copy's, for info.Files on a miss
		err     error
	)
	switch op := step.Op.(type) {
	case *graph.Exec:
		info.Kind = "exec"
		exec = func(ctx context.Context, active *snapshot.Active) error {
			return b.exec(ctx, op, active, v, name)
		}
	case *graph.Copy:
		var src copySource
		info.Kind = "copy"
		src, info.Input, entries, err = b.copyInput(ctx, op)
		if err != nil {
			return state{}, time.Time{}, false, err
		}
		exec = func(ctx context.Context, active *snapshot.Active) error {
			return b.copy(ctx, op, src, active)
		}
	case *graph.Mkdir:
		info.Kind = "mkdir"
		exec = func(ctx context.Context, active *snapshot.Active) error {
			return b.mkdir(ctx, op, active)
		}
	default:
		return state{}, time.Time{}, false, fmt.Errorf("unknown op %T", step.Op)
	}
	if info.Op, err = json.Marshal(step.Op); err != nil {
		return state{}, time.Time{}, false, err
	}
	key := cacheKey(cur.key, info.Kind, info.Op, info.Input)
	// After a step of this stage ran, its new layers make a later hit all
	// but impossible (a record is only reused on the layers it was made
	// on), and a lookup would wait for the background record writes.
	if !b.opt.NoCache && cur.hit {
		rec, err := rd.lookup(ctx, key)
		if err != nil {
			return state{}, time.Time{}, false, err
		}
		if rec != nil && rec.ParentChain != cur.chainID() {
			rec = nil // made on other layers than these: see Record.ParentChain
		}
		if rec != nil {
			b.mu.Lock()
			b.hits = append(b.hits, key)
			b.mu.Unlock()
			return cur.with(key, rec.Layer, rec.DiffID), rec.Created, true, nil
		}
		// A miss means work: give the read lock up first (see reader).
		rd.close()
	}
	info.Files = cacheFiles(entries)
	if !b.opt.NoCache && cur.hit {
		b.explainMiss(ctx, info)
	}
	// Two stages running the very same step (same key) share one run.
	b.mu.Lock()
	if c, ok := b.inflight[key]; ok {
		b.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return state{}, time.Time{}, false, ctx.Err()
		}
		return c.st, c.at, true, c.err
	}
	c := &call{done: make(chan struct{})}
	b.inflight[key] = c
	b.mu.Unlock()
	defer close(c.done)
	c.st, c.at, c.err = b.execute(ctx, cur, key, info, exec)
	return c.st, c.at, false, c.err
}

// execute runs exec over a fresh snapshot of cur and records the layer.
func (b *build) execute(ctx context.Context, cur state, key digest.Digest, info cache.Step, exec func(context.Context, *snapshot.Active) error) (state, time.Time, error) {
	parent, err := b.s.Snap.Materialize(ctx, b.s.Store, cur.layers, cur.diffIDs)
	if err != nil {
		return state{}, time.Time{}, err
	}
	active, err := b.s.Snap.Prepare(ctx, parent)
	if err != nil {
		return state{}, time.Time{}, fmt.Errorf("prepare snapshot: %w", err)
	}
	if err := exec(ctx, active); err != nil {
		_ = active.Remove(context.WithoutCancel(ctx))
		return state{}, time.Time{}, err
	}
	blob, diffID, err := b.s.commit(ctx, parent, active)
	if err != nil {
		return state{}, time.Time{}, err
	}
	now := time.Now().UTC()
	rec := cache.Record{Key: key, ParentChain: cur.chainID(), Layer: blob.Desc, DiffID: diffID, Created: now, LastUsed: now, Step: info}
	b.records.add(ctx, blob, rec)
	next := cur.with(key, blob.Desc, diffID)
	next.hit = false
	return next, now, nil
}

// reader looks up cache records for one stage through a read session kept
// open across the stage's cached steps, instead of opening the database
// once per step; it is closed at the first miss, before any work, because
// the session's shared lock keeps writers waiting.
type reader struct {
	store *store.Store
	sess  *meta.ReadSession
}

// lookup returns the record of key when its layer is still in the store.
func (r *reader) lookup(ctx context.Context, key digest.Digest) (*cache.Record, error) {
	if r.sess == nil {
		sess, err := r.store.Meta().OpenReadSession(ctx)
		if err != nil {
			return nil, err
		}
		r.sess = sess
	}
	rec, err := cache.Get(ctx, r.sess, key)
	if err != nil || rec == nil {
		return nil, err
	}
	if !r.store.HasBlob(rec.Layer.Digest) {
		return nil, nil // pruned: a miss
	}
	return rec, nil
}

func (r *reader) close() {
	if r.sess != nil {
		_ = r.sess.Close()
		r.sess = nil
	}
}

// chainID is the chain ID of the state's layers ("" for none).
func (s state) chainID() digest.Digest {
	if len(s.diffIDs) == 0 {
		return ""
	}
	return identity.ChainID(s.diffIDs)
}

func (s state) with(key digest.Digest, layer ocispec.Descriptor, diffID digest.Digest) state {
	return state{
		hit:     true,
		key:     key,
		layers:  append(append([]ocispec.Descriptor(nil), s.layers...), layer),
		diffIDs: append(append([]digest.Digest(nil), s.diffIDs...), diffID),
	}
}

var _ io.Writer = (*logWriter)(nil)
