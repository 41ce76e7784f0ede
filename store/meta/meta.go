package meta

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Viewer reads the database: one read-only transaction per call.
type Viewer interface {
	View(ctx context.Context, fn func(*bbolt.Tx) error) error
}

// DB reads and writes the database: one transaction per call, all of fn's
// changes landing or none.
type DB interface {
	Viewer
	Update(ctx context.Context, fn func(*bbolt.Tx) error) error
}

var (
	_ DB     = (*File)(nil)
	_ DB     = lazy{}
	_ Viewer = (*ReadSession)(nil)
)

// lockPoll bounds how long one bbolt.Open waits for another process's lock
// before we look at ctx again.
const lockPoll = 200 * time.Millisecond

// File is the database file, opened for each transaction. It is safe for
// concurrent use by goroutines and by other processes opening the same
// file.
type File struct {
	path string

	// mu serialises this process's openings: bbolt's flock is per open
	// file, so without it two goroutines would poll for each other.
	mu sync.RWMutex
}

// Open returns the database at path, creating it if missing.
func Open(ctx context.Context, path string) (*File, error) {
	f := &File{path: path}
	// Create it now, so that View can open it read-only later. Only when
	// missing: an empty transaction still commits, with two fsyncs. An
	// empty file is as missing: bbolt creates the file before it writes
	// its first pages, so a kill in between leaves one, which a read-only
	// open cannot initialise.
	if fi, err := os.Stat(path); errors.Is(err, os.ErrNotExist) || (err == nil && fi.Mode().IsRegular() && fi.Size() == 0) {
		if err := f.Update(ctx, func(*bbolt.Tx) error { return nil }); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Path is the database file's path.
func (f *File) Path() string { return f.path }

// Update runs fn in one read-write transaction: all of fn's changes land
// or none. The database is opened for this transaction only, so other
// processes on the same root get their turn as soon as it ends; never call
// Update around long work (a RUN, a layer download).
func (f *File) Update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	return f.update(ctx, false, fn)
}

// update is Update, without the commit's fsync when noSync.
func (f *File) update(ctx context.Context, noSync bool, fn func(tx *bbolt.Tx) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	db, err := f.open(ctx, false)
	if err != nil {
		return err
	}
	db.NoSync = noSync
	err = db.Update(fn)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", f.path, cerr)
	}
	return err
}

// View runs fn in one read-only transaction. Readers share the file lock,
// so views run alongside each other but not alongside an Update.
func (f *File) View(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	db, err := f.open(ctx, true)
	if err != nil {
		return err
	}
	err = db.View(fn)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", f.path, cerr)
	}
	return err
}

// Lazy is the database with updates that skip the fsync at commit: for
// advisory metadata such as last-used times or sizes that can be counted
// again, where losing the newest change to a power failure does no harm. A
// killed process still leaves the old or the new state.
func (f *File) Lazy() DB { return lazy{f} }

type lazy struct{ f *File }

func (l lazy) View(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	return l.f.View(ctx, fn)
}

func (l lazy) Update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	return l.f.update(ctx, true, fn)
}

// open opens the database, waiting for other processes' locks until ctx
// ends.
func (f *File) open(ctx context.Context, readOnly bool) (*bbolt.DB, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("open %s: %w", f.path, err)
		}
		db, err := bbolt.Open(f.path, 0o600, &bbolt.Options{Timeout: lockPoll, ReadOnly: readOnly})
		if errors.Is(err, bolterrors.ErrTimeout) {
			continue
		}
		if err != nil {
			if damaged(err) {
				return nil, fmt.Errorf("open %s: %w (%w)", f.path, err, ErrDamaged)
			}
			return nil, fmt.Errorf("open %s: %w", f.path, err)
		}
		return db, nil
	}
}

// ReadSession is the database opened read-only for several lookups in a
// row, such as the cached steps at the start of a build: one open instead
// of one per lookup. It holds the shared file lock, which keeps writers
// (other processes, and Update in this one) waiting, so close it before
// any long work and before waiting for a write. It is a Viewer, not a DB:
// it has no Update.
type ReadSession struct {
	db *bbolt.DB
}

// OpenReadSession opens the database read-only until Close.
func (f *File) OpenReadSession(ctx context.Context) (*ReadSession, error) {
	db, err := f.open(ctx, true)
	if err != nil {
		return nil, err
	}
	return &ReadSession{db: db}, nil
}

// View runs fn in a read-only transaction of the session.
func (r *ReadSession) View(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.db.View(fn)
}

// Close releases the database and its lock.
func (r *ReadSession) Close() error {
	if r == nil || r.db == nil {
		return nil
	}
	err := r.db.Close()
	r.db = nil
	return err
}

// ErrDamaged is a database file that bbolt cannot open because it is not a
// database (truncated, overwritten, a directory): nothing mends it, and
// every command needs it. Reset moves it aside.
var ErrDamaged = errors.New("the metadata database is damaged: `builder store verify --remove` moves it aside and starts a new one (images are kept; build cache records and containers are lost)")

func damaged(err error) bool {
	var pe *os.PathError
	return errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) ||
		errors.Is(err, bolterrors.ErrVersionMismatch) || errors.Is(err, syscall.EISDIR) ||
		strings.Contains(err.Error(), "file size too small") || (errors.As(err, &pe) && pe.Op == "write")
}

// Reset moves a damaged database aside, to PATH.damaged-TIME next to it
// (kept for whoever wants to dig in it), and starts an empty one. It
// returns where the old one went.
func (f *File) Reset(ctx context.Context) (string, error) {
	f.mu.Lock()
	aside := f.path + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
	err := os.Rename(f.path, aside)
	f.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("move %s aside: %w", f.path, err)
	}
	if err := f.Update(ctx, func(*bbolt.Tx) error { return nil }); err != nil {
		return aside, fmt.Errorf("start a new %s: %w", f.path, err)
	}
	return aside, nil
}
