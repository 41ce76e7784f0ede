package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// lockPoll bounds how long one bbolt.Open waits for another process's lock
// before we look at ctx again.
const lockPoll = 200 * time.Millisecond

// Update runs fn in one read-write transaction of meta.db: all of fn's
// changes land or none. The database is opened for this transaction only,
// so other processes on the same root get their turn as soon as it ends;
// never call Update around long work (a RUN, a layer download).
func (s *Store) Update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	return s.update(ctx, false, fn)
}

// update is Update, without the commit's fsync when noSync.
func (s *Store) update(ctx context.Context, noSync bool, fn func(tx *bbolt.Tx) error) error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	db, err := s.openDB(ctx, false)
	if err != nil {
		return err
	}
	db.NoSync = noSync
	err = db.Update(fn)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", s.metaPath(), cerr)
	}
	return err
}

// View runs fn in one read-only transaction of meta.db. Readers share the
// file lock, so views run alongside each other but not alongside an Update.
func (s *Store) View(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	db, err := s.openDB(ctx, true)
	if err != nil {
		return err
	}
	err = db.View(fn)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", s.metaPath(), cerr)
	}
	return err
}

// openDB opens meta.db, waiting for other processes' locks until ctx ends.
func (s *Store) openDB(ctx context.Context, readOnly bool) (*bbolt.DB, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("open %s: %w", s.metaPath(), err)
		}
		db, err := bbolt.Open(s.metaPath(), 0o600, &bbolt.Options{Timeout: lockPoll, ReadOnly: readOnly})
		if errors.Is(err, bolterrors.ErrTimeout) {
			continue
		}
		if err != nil {
			if metaDamaged(err) {
				return nil, fmt.Errorf("open %s: %w (%w)", s.metaPath(), err, ErrMetaDamaged)
			}
			return nil, fmt.Errorf("open %s: %w", s.metaPath(), err)
		}
		return db, nil
	}
}

// ReadSession is meta.db opened read-only for several lookups in a row,
// such as the cached steps at the start of a build: one open instead of one
// per lookup. It holds the shared file lock, which keeps writers (other
// processes, and Update in this one) waiting, so close it before any long
// work and before waiting for a write.
type ReadSession struct {
	s  *Store
	db *bbolt.DB
}

// OpenReadSession opens meta.db read-only until Close.
func (s *Store) OpenReadSession(ctx context.Context) (*ReadSession, error) {
	db, err := s.openDB(ctx, true)
	if err != nil {
		return nil, err
	}
	return &ReadSession{s: s, db: db}, nil
}

// View runs fn in a read-only transaction of the session.
func (r *ReadSession) View(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.db.View(fn)
}

// Update is refused: a session only reads.
func (r *ReadSession) Update(context.Context, func(tx *bbolt.Tx) error) error {
	return fmt.Errorf("update %s: %w: read session", r.s.metaPath(), ErrInvalid)
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

// UpdateLazy is Update without the fsync at commit: for advisory metadata
// such as last-used times, where losing the newest change to a power
// failure does no harm. A killed process still leaves the old or the new
// state.
func (s *Store) UpdateLazy(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	return s.update(ctx, true, fn)
}

// ErrMetaDamaged is a meta.db that bbolt cannot open because it is not a
// database (truncated, overwritten, a directory): nothing mends it, and
// every command needs it. ResetMeta moves it aside.
var ErrMetaDamaged = errors.New("the metadata database is damaged: `builder store verify --remove` moves it aside and starts a new one (images are kept; build cache records and containers are lost)")

func metaDamaged(err error) bool {
	var pe *os.PathError
	return errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) ||
		errors.Is(err, bolterrors.ErrVersionMismatch) || errors.Is(err, syscall.EISDIR) ||
		strings.Contains(err.Error(), "file size too small") || (errors.As(err, &pe) && pe.Op == "write")
}

// ResetMeta moves a damaged meta.db aside, to meta.db.damaged-TIME next to
// it (kept for whoever wants to dig in it), and starts an empty one. It
// returns where the old one went.
func (s *Store) ResetMeta(ctx context.Context) (string, error) {
	s.dbMu.Lock()
	aside := s.metaPath() + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
	err := os.Rename(s.metaPath(), aside)
	s.dbMu.Unlock()
	if err != nil {
		return "", fmt.Errorf("move %s aside: %w", s.metaPath(), err)
	}
	if err := s.Update(ctx, func(*bbolt.Tx) error { return nil }); err != nil {
		return aside, fmt.Errorf("start a new %s: %w", s.metaPath(), err)
	}
	return aside, nil
}
