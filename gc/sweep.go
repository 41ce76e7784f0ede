package gc

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/builder-dev/builder/internal/du"
	"github.com/builder-dev/builder/internal/mount"
)

// SweepReport says what Sweep removed.
type SweepReport struct {
	TempFiles     int   // entries of tmp/ (the store's and the snapshotter's)
	Actives       int   // writable snapshots no container owns
	ContainerDirs int   // directories of ContainersDir no container owns
	Reclaimed     int64 // their disk usage
}

// Owned is what containers hold apart from images and the cache.
type Owned struct {
	Snapshots []string // their writable snapshots' IDs
	IDs       []string // their IDs, which name their directories
}

// Sweep removes what killed processes left: every entry of the store's
// and the snapshotter's tmp/ (unmounting what is mounted there first),
// and, when c.Containers is set, every writable snapshot and every
// directory of c.ContainersDir that no container owns, which can only be
// a killed build's or container creation's (a container's removal drops
// its record last).
//
// The store and the snapshotter sweep their own tmp/ (store.SweepTmp,
// snapshot.SweepTmp) and say what they removed.
//
// The caller must hold the GC lock exclusively (store.LockGC or
// store.TryLockGC): every process that writes there (build, load, import,
// commit, container creation) holds the build lock meanwhile, so then
// nothing there is in use. The one exception is index.json's temporary
// file, written under the store's own index lock, which the store's sweep
// leaves.
func (c *Collector) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	for _, sweep := range []func(context.Context) (int, int64, error){c.Store.SweepTmp, c.Snap.SweepTmp} {
		n, freed, err := sweep(ctx)
		rep.TempFiles += n
		rep.Reclaimed += freed
		if err != nil {
			return rep, fmt.Errorf("sweep: %w", err)
		}
	}
	if c.Containers == nil {
		return rep, nil
	}
	// Writable snapshots and container directories: the containers' list
	// is read only if there is anything to judge.
	actives, err := c.Snap.Actives()
	if err != nil {
		return rep, fmt.Errorf("sweep: %w", err)
	}
	var dirs []string
	if c.ContainersDir != "" {
		if dirs, err = du.Names(c.ContainersDir); err != nil {
			return rep, fmt.Errorf("sweep: %w", err)
		}
	}
	if len(actives) == 0 && len(dirs) == 0 {
		return rep, nil
	}
	owned, err := c.Containers(ctx)
	if err != nil {
		return rep, fmt.Errorf("sweep: list containers: %w", err)
	}
	for _, id := range actives {
		if slices.Contains(owned.Snapshots, id) {
			continue
		}
		n, err := c.Snap.SweepActive(ctx, id)
		if err != nil {
			return rep, fmt.Errorf("sweep: %w", err)
		}
		rep.Actives++
		rep.Reclaimed += n
	}
	for _, name := range dirs {
		if slices.Contains(owned.IDs, name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("sweep: %w", err)
		}
		n, err := du.Remove(filepath.Join(c.ContainersDir, name), mount.UnmountUnder)
		if err != nil {
			return rep, fmt.Errorf("sweep: %w", err)
		}
		rep.ContainerDirs++
		rep.Reclaimed += n
	}
	return rep, nil
}
