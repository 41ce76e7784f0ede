package ops

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/builder-dev/builder/fsutil"
	"github.com/builder-dev/builder/fsutil/statcache"
	"github.com/builder-dev/builder/runner"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/graph"
	"github.com/builder-dev/builder/source"
	"github.com/builder-dev/builder/store"
)

// Runner runs one container; a runner.Pool in production, a counting
// wrapper in tests.
type Runner interface {
	Run(ctx context.Context, spec runner.Spec, stdio runner.Stdio) error
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context, spec runner.Spec, stdio runner.Stdio) error

func (f RunnerFunc) Run(ctx context.Context, spec runner.Spec, stdio runner.Stdio) error {
	return f(ctx, spec, stdio)
}

// Config is what the ops of one build work with.
type Config struct {
	Store  *store.Store
	Snap   *snapshot.Snapshotter
	Runner Runner
	// ContextDir is the build context's directory: an absolute, clean
	// path, "" for none. The caller resolves what the user typed once, so
	// that every spelling of one directory names the same stat-cache.
	ContextDir string
	// Ignore is the .dockerignore patterns of the context.
	Ignore []string
	// Images finds the images FROM and COPY --from name (pulling them
	// when missing); nil looks in the store only.
	Images *source.Resolver
}

// Resolver binds the graph's ops of one build; it is the solver's
// OpResolver and ImageResolver. Close it after the build.
type Resolver struct {
	cfg Config

	ignoreOnce sync.Once
	ignore     *fsutil.IgnoreMatcher
	ignoreErr  error

	statOnce sync.Once
	stat     *statcache.Cache // nil until a context copy is bound
}

var (
	_ solver.OpResolver    = (*Resolver)(nil)
	_ solver.ImageResolver = (*Resolver)(nil)
)

// New returns the Resolver of one build.
func New(cfg Config) (*Resolver, error) {
	if cfg.ContextDir != "" && (!filepath.IsAbs(cfg.ContextDir) || filepath.Clean(cfg.ContextDir) != cfg.ContextDir) {
		return nil, fmt.Errorf("solve: context directory %q is not an absolute, clean path", cfg.ContextDir)
	}
	return &Resolver{cfg: cfg}, nil
}

// ResolveOp binds op. Binding the first copy from the context opens the
// context's stat-cache under ctx: the solver binds before any stage starts,
// so the cache's records load in the background while the stages start,
// and the load lasts until Close, after every stage has ended (and the
// stages' ctx with them).
func (r *Resolver) ResolveOp(ctx context.Context, op graph.Op) (solver.Op, error) {
	switch op := op.(type) {
	case *graph.Exec:
		return &execOp{r: r, op: op}, nil
	case *graph.Copy:
		if op.From.Context {
			r.openStat(ctx)
		}
		return &copyOp{r: r, op: op}, nil
	case *graph.Mkdir:
		return &mkdirOp{r: r, op: op}, nil
	default:
		return nil, fmt.Errorf("unknown op %T", op)
	}
}

// openStat opens the context's stat-cache once. A cache that cannot be
// opened only costs reading every file.
func (r *Resolver) openStat(ctx context.Context) {
	r.statOnce.Do(func() {
		if r.cfg.ContextDir != "" {
			r.stat, _ = statcache.Open(ctx, r.cfg.Store.Meta(), r.cfg.ContextDir)
		}
	})
}

// ResolveImage looks an image up through Config.Images, else in the store.
func (r *Resolver) ResolveImage(ctx context.Context, ref string) (solver.Chain, error) {
	images := r.cfg.Images
	if images == nil {
		images = &source.Resolver{Store: r.cfg.Store}
	}
	img, err := images.Lookup(ctx, ref)
	if err != nil {
		return solver.Chain{}, err
	}
	return solver.Chain{Key: img.Descriptor.Digest, Layers: img.Layers, DiffIDs: img.DiffIDs}, nil
}

// Close writes the context's stat-cache back, whether or not the build
// worked: the remembered sums stay valid either way.
func (r *Resolver) Close(ctx context.Context) error {
	if r.stat == nil {
		return nil
	}
	if err := r.stat.Flush(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("write context stat-cache: %w", err)
	}
	return nil
}
