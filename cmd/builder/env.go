package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/graph"
	"github.com/builder-dev/builder/solver/ops"
	"github.com/builder-dev/builder/store"
)

// env is the opened store and what is wired on it.
type env struct {
	store *store.Store
	snap  *snapshot.Snapshotter
}

func (g *globalOptions) open(ctx context.Context) (*env, error) {
	root := g.root
	if root == "" {
		root = store.DefaultRoot()
	}
	st, err := store.Open(ctx, root)
	if err != nil {
		return nil, err // "open store ROOT: ..." already
	}
	sn, err := snapshot.New(st.SnapshotsDir())
	if err != nil {
		return nil, fmt.Errorf("open snapshots: %w", err)
	}
	return &env{store: st, snap: sn}, nil
}

// solve builds def with its ops bound to the store, the snapshotter and
// cfg's runner and build context.
func (e *env) solve(ctx context.Context, def *graph.Definition, cfg ops.Config, rep solver.Reporter, opt solver.Options) (*solver.Result, error) {
	cfg.Store, cfg.Snap = e.store, e.snap
	r, err := ops.New(cfg)
	if err != nil {
		return nil, err
	}
	s := &solver.Solver{Store: e.store, Ops: r, Images: r, Reporter: rep}
	res, err := s.Solve(ctx, def, opt)
	// After every stage has ended, whether or not the build worked.
	if cerr := r.Close(ctx); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// lockWrites takes the store's shared build lock for a command that writes
// blobs and then names them (build, load, import): a prune waits for it, so
// it cannot collect blobs between their write and the tag that keeps them.
// It is the one place a command takes it: the solver does not, since the
// lock must last past Solve until the image is written and tagged.
//
// When no other process holds the lock, it first removes what killed
// processes left (gc.Sweep): that is usually nothing, found with a few
// directory reads. A failed sweep only leaves litter for the next one, so
// it does not stop the command.
func (e *env) lockWrites(ctx context.Context) (*store.Lock, error) {
	if l, err := e.store.TryLockGC(); err == nil && l != nil {
		_, _ = e.collector().Sweep(ctx)
		l.Release()
	}
	return e.store.LockBuild(ctx)
}

// withStore adapts a command that works on the opened store to cobra's
// RunE.
// openForWrites opens the store and takes its build lock (lockWrites) for
// a command that writes blobs and then names them; release gives it back.
func (g *globalOptions) openForWrites(ctx context.Context) (e *env, release func(), err error) {
	if e, err = g.open(ctx); err != nil {
		return nil, nil, err
	}
	lock, err := e.lockWrites(ctx)
	if err != nil {
		return nil, nil, err
	}
	return e, func() { _ = lock.Release() }, nil
}

func (g *globalOptions) withStore(run func(ctx context.Context, e *env, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		e, err := g.open(ctx)
		if err != nil {
			return err
		}
		return run(ctx, e, args)
	}
}
