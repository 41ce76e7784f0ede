package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.etcd.io/bbolt"

	"github.com/builder-dev/builder/internal/crashpoint"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
)

// Store is the image store under one root. It is safe for concurrent use by
// goroutines and by other processes opening the same root.
type Store struct {
	root string

	// dbMu serialises this process's meta.db openings: bbolt's flock is per
	// open file, so without it two goroutines would poll for each other.
	dbMu sync.RWMutex
}

// DefaultRoot is $BUILDER_ROOT if set, else /var/lib/builder for root, else
// $XDG_DATA_HOME/builder (~/.local/share/builder).
func DefaultRoot() string {
	if r := os.Getenv("BUILDER_ROOT"); r != "" {
		return r
	}
	if os.Geteuid() == 0 {
		return "/var/lib/builder"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "builder")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "builder")
	}
	return filepath.Join(os.TempDir(), "builder")
}

// Open opens the store at root, creating its layout if missing.
func Open(ctx context.Context, root string) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	s := &Store{root: abs}
	for _, d := range []string{
		s.root,
		filepath.Join(s.ContentDir(), "blobs", "sha256"),
		s.SnapshotsDir(),
		s.TmpDir(),
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open store %s: %w", root, err)
		}
	}
	if err := s.initLayout(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	// Create meta.db now, so that View can open it read-only later. Only
	// when missing: an empty transaction still commits, with two fsyncs.
	// An empty file is as missing: bbolt creates the file before it writes
	// its first pages, so a kill in between leaves one, which a read-only
	// open cannot initialise.
	if fi, err := os.Stat(s.metaPath()); errors.Is(err, os.ErrNotExist) || (err == nil && fi.Mode().IsRegular() && fi.Size() == 0) {
		if err := s.Update(ctx, func(*bbolt.Tx) error { return nil }); err != nil {
			return nil, fmt.Errorf("open store %s: %w", root, err)
		}
	}
	return s, nil
}

// Root is the store's root directory (absolute).
func (s *Store) Root() string { return s.root }

// ContentDir is the OCI image layout directory.
func (s *Store) ContentDir() string { return filepath.Join(s.root, "content") }

// SnapshotsDir is the directory package snapshot keeps its snapshots in.
func (s *Store) SnapshotsDir() string { return filepath.Join(s.root, "snapshots") }

// TmpDir is for temporary files that are later renamed into the store; it is
// on the store's filesystem.
func (s *Store) TmpDir() string { return filepath.Join(s.root, "tmp") }

// indexFile is index.json's path in the content directory.
const indexFile = ocispec.ImageIndexFile

func (s *Store) indexPath() string  { return filepath.Join(s.ContentDir(), indexFile) }
func (s *Store) lockPath() string   { return filepath.Join(s.root, "index.lock") }
func (s *Store) metaPath() string   { return filepath.Join(s.root, "meta.db") }
func (s *Store) layoutPath() string { return filepath.Join(s.ContentDir(), ocispec.ImageLayoutFile) }

// initLayout writes oci-layout and an empty index.json unless present.
func (s *Store) initLayout() error {
	if _, err := os.Stat(s.layoutPath()); os.IsNotExist(err) {
		b := []byte(`{"imageLayoutVersion":"` + ocispec.ImageLayoutVersion + `"}`)
		if err := s.writeNewFile(s.layoutPath(), b); err != nil {
			return err
		}
	}
	if _, err := os.Stat(s.indexPath()); err == nil {
		return nil // the usual case: no need to wait for the lock
	}
	return s.withIndexLock(func() error {
		if _, err := os.Stat(s.indexPath()); err == nil {
			return nil
		}
		return s.writeIndex(emptyIndex())
	})
}

// writeNewFile writes path with b, synced, unless path exists: another
// process that wrote it first wrote the same.
func (s *Store) writeNewFile(path string, b []byte) error {
	f, named, err := s.createTemp(filepath.Base(path) + ".*")
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		if named {
			os.Remove(f.Name()) // no-op once renamed
		}
	}()
	if err := writeSynced(f, b); err != nil {
		return err
	}
	if err := s.linkTemp(f, named, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// replaceFile replaces path with b: written to tmp/NAME.new, synced and
// renamed over path, then the directory synced so the rename survives a
// crash. The caller holds a lock that all writers of path take, so the
// temporary file can have a fixed name: one that a killed writer left is
// simply replaced by the next writer.
func (s *Store) replaceFile(path string, b []byte) error {
	tmp := filepath.Join(s.TmpDir(), filepath.Base(path)+replaceSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // no-op once renamed
	err = writeSynced(f, b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	crashpoint.Hit("store.index.staged")
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// replaceSuffix names replaceFile's temporary files.
const replaceSuffix = ".new"

// LockFreeTemp reports whether name, an entry of TmpDir, is a temporary
// file written without the build lock (index.json's, under the index
// lock), which a sweep under the GC lock must leave alone. Every other
// entry of TmpDir belongs to a process holding the build lock.
func LockFreeTemp(name string) bool {
	return name == filepath.Base(indexFile)+replaceSuffix
}

// writeSynced writes b to f, mode 0644 whatever the umask, and syncs it.
func writeSynced(f *os.File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
