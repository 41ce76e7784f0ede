package store

import (
	"context"

	"github.com/builder-dev/builder/internal/du"
	"github.com/builder-dev/builder/internal/mount"
)

// SweepTmp removes what killed processes left in tmp/ (unmounting first
// what is mounted there: a build's COPY source, a container's volume
// view) and returns how many entries went and the disk usage freed.
//
// The caller must hold the GC lock exclusively (LockGC or TryLockGC):
// every process that writes to tmp/ holds the build lock meanwhile, so
// then nothing there is in use. The one exception is index.json's
// temporary file, written under the index lock, which stays.
func (s *Store) SweepTmp(ctx context.Context) (int, int64, error) {
	names, err := s.tmpLitter()
	if err != nil {
		return 0, 0, err
	}
	return du.RemoveEntries(ctx, s.TmpDir(), names, mount.UnmountUnder)
}

// TmpUsage is the disk usage of what SweepTmp would remove (of a running
// build's temporary files too).
func (s *Store) TmpUsage(ctx context.Context) (int64, error) {
	names, err := s.tmpLitter()
	if err != nil {
		return 0, err
	}
	return du.SizeOfEntries(ctx, s.TmpDir(), names)
}

// tmpLitter lists the entries of tmp/ that SweepTmp removes.
func (s *Store) tmpLitter() ([]string, error) {
	names, err := du.Names(s.TmpDir())
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, name := range names {
		if !lockFreeTemp(name) {
			out = append(out, name)
		}
	}
	return out, nil
}
