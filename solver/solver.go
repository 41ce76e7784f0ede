package solver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/builder-dev/builder/solver/graph"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
)

// Solver builds definitions against one store, running their ops through
// Ops and finding their images through Images.
type Solver struct {
	// Store holds the cache records and the build lock.
	Store    *store.Store
	Ops      OpResolver
	Images   ImageResolver
	Reporter Reporter
}

// Options are the per-build inputs that are not in the definition.
type Options struct {
	// Dockerfile is the Dockerfile's absolute path: with the stage and step
	// position it names a step across builds, for explaining misses.
	Dockerfile string
	NoCache    bool
	// Explain makes the solver say, for the first missed step of each
	// stage, what changed against the closest earlier record of it.
	Explain bool
	// MaxParallelism bounds how many steps run at once; 0 is no bound, as
	// in BuildKit. Not the number of CPUs: a RUN that waits (a download, a
	// sleep) holds none, and a cap by cores would only queue the waits.
	MaxParallelism int
	// Remote, when set, is consulted after a local miss: the records of
	// caches imported from elsewhere (--cache-from). Nil: none.
	Remote RemoteCache
}

// RemoteCache is a cache the build imported (a CI runner's registry or
// directory cache). Its records' layer blobs need not be in the store:
// whoever reads a layer fetches it first (solver/ops, and the command
// before it stores the image), so a hit costs no download. A remote
// record is reused on the same terms as a local one (Record.ParentChain).
type RemoteCache interface {
	// Lookup returns the record of key, or nil when there is none.
	Lookup(ctx context.Context, key digest.Digest) (*cache.Record, error)
}

// Result is a solved stage: its layers and final image configuration.
type Result struct {
	Layers []ocispec.Descriptor
	// DiffIDs are the layers' diff IDs, bottom first; snapshot.ChainOf
	// names their snapshot, which may not be unpacked yet.
	DiffIDs []digest.Digest
	Config  dockerspec.DockerOCIImage
	// Explanations say why steps missed the cache (with Options.Explain).
	Explanations []Explanation
	// Records are the records of every layer-making step of the stages
	// solved, whether it ran or came from a cache, each once, ordered by
	// key: what a cache export (--cache-to) writes.
	Records []cache.Record
}

type stageFuture struct {
	done chan struct{}
	st   state
	cfg  dockerspec.DockerOCIImage
	err  error
}

// build is one Solve call.
type build struct {
	s       *Solver
	def     *graph.Definition
	opt     Options
	prog    *progress
	stages  []*stageFuture
	ops     [][]Op // by stage and step; nil for config-only steps
	vertexN int
	vmu     sync.Mutex

	mu       sync.Mutex
	hits     []digest.Digest // keys to mark used when the build ends
	inflight map[digest.Digest]*call
	explain  []Explanation
	sem      chan struct{} // bounds concurrently running steps; nil: no bound
	records  *recorder
	used     map[digest.Digest]cache.Record // every step's record, by key: Result.Records
}

// Solve builds the target stage of def and everything it needs. The
// caller holds the store's build lock (store.LockBuild) from before Solve
// until the result is named by an image, so that no prune removes it.
func (s *Solver) Solve(ctx context.Context, def *graph.Definition, opt Options) (*Result, error) {
	if def.Target < 0 || def.Target >= len(def.Stages) {
		return nil, fmt.Errorf("solve: target stage %d out of range", def.Target)
	}
	if opt.MaxParallelism < 0 {
		return nil, fmt.Errorf("solve: max parallelism %d is negative", opt.MaxParallelism)
	}
	b := &build{s: s, def: def, opt: opt, prog: &progress{report: s.Reporter},
		inflight: map[digest.Digest]*call{}, records: newRecorder(s.Store.Meta()),
		used: map[digest.Digest]cache.Record{}}
	if opt.MaxParallelism > 0 {
		b.sem = make(chan struct{}, opt.MaxParallelism)
	}
	b.stages = make([]*stageFuture, len(def.Stages))
	for i := range b.stages {
		b.stages[i] = &stageFuture{done: make(chan struct{})}
	}
	needed := neededStages(def)
	// Bound under the build's ctx, not a stage's, before any stage starts:
	// an op may start work that must outlive the stages (solver/ops opens
	// the context's stat-cache when it binds a context copy).
	ops, err := b.bind(ctx, needed)
	if err != nil {
		return nil, err
	}
	b.ops = ops
	g, gctx := errgroup.WithContext(ctx)
	for i := range def.Stages {
		if !needed[i] {
			continue
		}
		g.Go(func() error {
			f := b.stages[i]
			defer close(f.done)
			f.st, f.cfg, f.err = b.solveStage(gctx, def.Stages[i], b.ops[i])
			return f.err
		})
	}
	err = g.Wait()
	if rerr := b.records.wait(); err == nil && rerr != nil {
		err = fmt.Errorf("store layers and cache records: %w", rerr)
	}
	// Used records are marked even when the build failed: they were used.
	if terr := s.touch(context.WithoutCancel(ctx), b.hits); err == nil && terr != nil {
		err = fmt.Errorf("mark cache records used: %w", terr)
	}
	if err != nil {
		return nil, err
	}
	f := b.stages[def.Target]
	return &Result{Layers: f.st.layers, DiffIDs: f.st.diffIDs, Config: f.cfg, Explanations: b.explain, Records: b.usedRecords()}, nil
}

// use notes rec as a record of this build (see Result.Records).
func (b *build) use(rec cache.Record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used[rec.Key] = rec
}

func (b *build) usedRecords() []cache.Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]cache.Record, 0, len(b.used))
	for _, r := range b.used {
		out = append(out, r)
	}
	slices.SortFunc(out, func(x, y cache.Record) int { return strings.Compare(string(x.Key), string(y.Key)) })
	return out
}

// bind resolves the ops of the needed stages' steps.
func (b *build) bind(ctx context.Context, needed []bool) ([][]Op, error) {
	ops := make([][]Op, len(b.def.Stages))
	for i, st := range b.def.Stages {
		if !needed[i] {
			continue
		}
		ops[i] = make([]Op, len(st.Steps))
		for j, step := range st.Steps {
			if step.Op == nil {
				continue
			}
			op, err := b.s.Ops.ResolveOp(ctx, step.Op)
			if err != nil {
				return nil, &graph.Error{Location: step.Location, Err: fmt.Errorf("%s: %w", step.Text, err)}
			}
			ops[i][j] = op
		}
	}
	return ops, nil
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
