package store

import (
	"context"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"

	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/store/meta"
)

// Content is the store's content: the OCI image layout under content/
// (blobs, the images and tags of index.json) and the layers among its
// blobs. Its temporary files go to the store's tmp/.
type Content struct {
	dir  string // content/
	tmp  string // the store's tmp/
	lock string // index.lock
	// db is meta.db without the fsync at commit (meta.File.Lazy): what
	// the content remembers there of its layers (their LayerInfo, their
	// gzip form) can be found again from the blobs.
	db meta.DB
	// compressing collapses concurrent CompressedLayer calls for one
	// layer.
	compressing singleflight.Group
}

// ContentDir is the OCI image layout directory.
func (s *Content) ContentDir() string { return s.dir }

// indexFile is index.json's path in the content directory.
const indexFile = ocispec.ImageIndexFile

func (s *Content) indexPath() string  { return filepath.Join(s.dir, indexFile) }
func (s *Content) layoutPath() string { return filepath.Join(s.dir, ocispec.ImageLayoutFile) }

// blobsDir holds the blobs: sha256 is the only algorithm the store writes.
func (s *Content) blobsDir() string { return filepath.Join(s.dir, "blobs", digest.SHA256.String()) }

// blobPath is where the blob d lives (whether or not it exists).
func (s *Content) blobPath(d digest.Digest) string {
	return filepath.Join(s.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// Walk calls fn with the digest and size of every blob present, in no
// particular order: the regular files of blobs/sha256 named by a digest.
// Anything else there is not a blob: a name that is no digest is not the
// store's to judge, and a digest's name holding no regular file (a
// symlink, a directory, a FIFO) is damage, which Verify reports. An error
// from fn stops the walk and is returned.
func (s *Content) Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
	entries, err := os.ReadDir(s.blobsDir())
	if err != nil && !os.IsNotExist(err) {
		return err // names the directory
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if err := fn(d, fi.Size()); err != nil {
			return err
		}
	}
	return nil
}

// initLayout writes oci-layout and an empty index.json unless present.
func (s *Content) initLayout() error {
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
func (s *Content) writeNewFile(path string, b []byte) error {
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
func (s *Content) replaceFile(path string, b []byte) error {
	tmp := filepath.Join(s.tmp, filepath.Base(path)+replaceSuffix)
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

// lockFreeTemp reports whether name, an entry of tmp/, is a temporary
// file written without the build lock (index.json's, under the index
// lock), which a sweep under the GC lock must leave alone. Every other
// entry of tmp/ belongs to a process holding the build lock.
func lockFreeTemp(name string) bool {
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
