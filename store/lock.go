package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Running builds and garbage collection exclude each other through one lock
// file: every build holds it shared for its whole run, a prune holds it
// exclusively. Builds never block each other, a prune waits for running
// builds to end (and a build waits for a running prune, which is short), so
// a prune can never remove a layer or record a running build relies on.
const lockName = "gc.lock"

// Lock is a held build or GC lock.
type Lock struct{ f *os.File }

// Release gives the lock up.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops the flock
	l.f = nil
	return err
}

// LockBuild takes the shared build lock: a command holds it from before it
// writes the first blob or layer of a build (or a load, an import, a
// commit, a container's creation) until what it wrote is named by an image
// or a record, so that no prune can take it in between. Take it once per
// command, around all of that; a library (the solver) never takes it.
func (s *Store) LockBuild(ctx context.Context) (*Lock, error) {
	return lock(ctx, s.root, unix.LOCK_SH, nil)
}

// LockGC takes the exclusive GC lock; waiting is called once if running
// builds make it wait.
func (s *Store) LockGC(ctx context.Context, waiting func()) (*Lock, error) {
	return lock(ctx, s.root, unix.LOCK_EX, waiting)
}

// TryLockGC takes the exclusive GC lock if no one holds the lock, else
// returns nil: for work that is worth doing only while nothing else runs,
// and never worth a wait.
func (s *Store) TryLockGC() (*Lock, error) {
	f, err := os.OpenFile(filepath.Join(s.root, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open gc lock: %w", err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return &Lock{f: f}, nil
	}
	f.Close()
	if err == unix.EWOULDBLOCK {
		return nil, nil
	}
	return nil, fmt.Errorf("lock %s: %w", lockName, err)
}

func lock(ctx context.Context, root string, how int, waiting func()) (*Lock, error) {
	f, err := os.OpenFile(filepath.Join(root, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open gc lock: %w", err)
	}
	for first := true; ; first = false {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", lockName, err)
		}
		if first && waiting != nil {
			waiting()
		}
		// Polling keeps the wait cancellable; flock itself cannot be
		// interrupted by a context.
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
