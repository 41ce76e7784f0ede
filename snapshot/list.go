package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/internal/du"
	"github.com/builder-dev/builder/internal/mount"
)

// Walk calls fn with the chain ID of every committed layer present, in no
// particular order. A chain ID's name that holds no directory (a symlink
// to a host directory, a file) is damage, never a layer (see Has): fn gets
// it with damaged set. Names that are no chain ID are not the
// snapshotter's to judge. An error from fn stops the walk and is returned.
func (s *Snapshotter) Walk(ctx context.Context, fn func(chainID digest.Digest, damaged bool) error) error {
	dir := filepath.Join(s.root, digest.SHA256.String())
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err // names the directory
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		ch := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if ch.Validate() != nil {
			continue
		}
		if err := fn(ch, !e.IsDir()); err != nil {
			return err
		}
	}
	return nil
}

// Actives lists the IDs of the active (writable) snapshots present.
func (s *Snapshotter) Actives() ([]string, error) {
	return du.Names(s.activeDir())
}

// SweepActive removes the active snapshot id that a killed process left
// (a build's, a container creation's), unmounting first what is mounted
// under it, and returns the disk usage freed. The caller knows that no one
// uses it: it holds the store's GC lock, and no container owns id.
func (s *Snapshotter) SweepActive(ctx context.Context, id string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if id == "" || id == "." || id == ".." || filepath.Base(id) != id {
		return 0, fmt.Errorf("%w: snapshot ID %q", ErrInvalid, id)
	}
	return du.Remove(filepath.Join(s.activeDir(), id), mount.UnmountUnder)
}

// SweepTmp removes everything in tmp/ (layers a killed process was
// unpacking or removing), unmounting first what is mounted there, and
// returns how many entries went and the disk usage freed. The caller holds
// the store's GC lock: every process that unpacks or removes a layer
// holds the build or GC lock meanwhile, so nothing there is in use.
func (s *Snapshotter) SweepTmp(ctx context.Context) (int, int64, error) {
	names, err := du.Names(s.tmpDir())
	if err != nil {
		return 0, 0, err
	}
	return du.RemoveEntries(ctx, s.tmpDir(), names, mount.UnmountUnder)
}

// TmpUsage is the disk usage of what SweepTmp would remove (of a running
// unpack too).
func (s *Snapshotter) TmpUsage(ctx context.Context) (int64, error) {
	names, err := du.Names(s.tmpDir())
	if err != nil {
		return 0, err
	}
	return du.SizeOfEntries(ctx, s.tmpDir(), names)
}
