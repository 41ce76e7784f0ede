package gc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/store"
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
// The caller must hold the GC lock exclusively (cache.LockGC or
// cache.TryLockGC): every process that writes there (build, load, import,
// commit, container creation) holds the build lock meanwhile, so then
// nothing there is in use. The one exception is index.json's temporary
// file, written under the store's own index lock, which Sweep leaves (see
// store.LockFreeTemp).
func (c *Collector) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	for _, dir := range []string{c.Store.TmpDir(), c.snapDir("tmp")} {
		entries, err := readDirNames(dir)
		if err != nil {
			return rep, fmt.Errorf("sweep: %w", err)
		}
		for _, name := range entries {
			if dir == c.Store.TmpDir() && store.LockFreeTemp(name) {
				continue
			}
			n, err := removeLitter(ctx, filepath.Join(dir, name))
			if err != nil {
				return rep, fmt.Errorf("sweep: %w", err)
			}
			rep.TempFiles++
			rep.Reclaimed += n
		}
	}
	if c.Containers == nil {
		return rep, nil
	}
	// Writable snapshots and container directories: the containers' list
	// is read only if there is anything to judge.
	activeDir := c.snapDir("active")
	actives, err := readDirNames(activeDir)
	if err != nil {
		return rep, fmt.Errorf("sweep: %w", err)
	}
	var dirs []string
	if c.ContainersDir != "" {
		if dirs, err = readDirNames(c.ContainersDir); err != nil {
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
	for _, name := range actives {
		if slices.Contains(owned.Snapshots, name) {
			continue
		}
		n, err := removeLitter(ctx, filepath.Join(activeDir, name))
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
		n, err := removeLitter(ctx, filepath.Join(c.ContainersDir, name))
		if err != nil {
			return rep, fmt.Errorf("sweep: %w", err)
		}
		rep.ContainerDirs++
		rep.Reclaimed += n
	}
	return rep, nil
}

// snapDir is the directory name of the snapshotter's root, found through
// its layout: next to sha256/, where any layer would be.
func (c *Collector) snapDir(name string) string {
	return filepath.Join(filepath.Dir(filepath.Dir(c.Snap.LayerDir(digest.FromString("")))), name)
}

// readDirNames lists dir; a missing dir has nothing.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return names, nil
}

// removeLitter removes p, unmounting first what a killed process left
// mounted there (a build's COPY source, a container's volume view), so
// that RemoveAll never walks into a mounted image. It returns the disk
// usage freed.
func removeLitter(ctx context.Context, p string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := mount.UnmountUnder(p); err != nil {
		return 0, fmt.Errorf("remove %s: %w", p, err)
	}
	n := diskUsage(p)
	if err := os.RemoveAll(p); err != nil {
		return 0, fmt.Errorf("remove %s: %w", p, err)
	}
	return n, nil
}
