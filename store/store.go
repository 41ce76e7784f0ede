package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/builder-dev/builder/store/meta"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
)

// Store is the store under one root: its content (Content: blobs,
// layers, images, tags, the index), its metadata database (Meta), the
// build and GC lock (LockBuild, LockGC) and its tmp/. It is safe for concurrent use by goroutines and by
// other processes opening the same root.
type Store struct {
	content *Content
	meta    *meta.File
	root    string
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
	s.content = &Content{
		dir:  filepath.Join(abs, "content"),
		tmp:  s.TmpDir(),
		lock: filepath.Join(abs, "index.lock"),
	}
	for _, d := range []string{
		s.root,
		filepath.Join(s.content.ContentDir(), "blobs", "sha256"),
		s.SnapshotsDir(),
		s.TmpDir(),
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open store %s: %w", root, err)
		}
	}
	if err := s.content.initLayout(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	if s.meta, err = meta.Open(ctx, filepath.Join(abs, "meta.db")); err != nil {
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	s.content.db = s.meta.Lazy()
	return s, nil
}

// Root is the store's root directory (absolute).
func (s *Store) Root() string { return s.root }

// Meta is the store's metadata database, meta.db.
func (s *Store) Meta() *meta.File { return s.meta }

// Content is the store's content part: blobs, layers, images, tags and
// the OCI index.
func (s *Store) Content() *Content { return s.content }

// SnapshotsDir is the directory package snapshot keeps its snapshots in.
func (s *Store) SnapshotsDir() string { return filepath.Join(s.root, "snapshots") }

// TmpDir is for temporary files that are later renamed into the store; it is
// on the store's filesystem.
func (s *Store) TmpDir() string { return filepath.Join(s.root, "tmp") }
