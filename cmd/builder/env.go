package main

import (
	"context"
	"fmt"

	"github.com/builder-dev/builder/runner"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/solver"
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
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	sn, err := snapshot.New(st.SnapshotsDir())
	if err != nil {
		return nil, fmt.Errorf("open snapshots: %w", err)
	}
	return &env{store: st, snap: sn}, nil
}

func (e *env) solver(rep solver.Reporter) *solver.Solver {
	return &solver.Solver{Store: e.store, Snap: e.snap, Runner: solver.RunnerFunc(runner.Run), Reporter: rep}
}
