package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/builder-dev/builder/internal/unixutil"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

func emptyIndex() ocispec.Index {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	return idx
}

// readIndex reads content/index.json. No lock is needed to read: it is only
// ever replaced by a rename.
func (s *Content) readIndex() (ocispec.Index, error) {
	b, err := os.ReadFile(s.indexPath())
	if err != nil {
		return ocispec.Index{}, fmt.Errorf("read index: %w", err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return ocispec.Index{}, fmt.Errorf("decode %s: %w (%w)", s.indexPath(), err, ErrIndexDamaged)
	}
	return idx, nil
}

// ErrIndexDamaged is an index.json that is not JSON: every image's name
// is in it, so no command can find one. RebuildIndex lists the images
// again.
var ErrIndexDamaged = errors.New("the image index is damaged: `builder store verify --remove` moves it aside and lists again, without their names, the images the store's blobs hold")

// RebuildIndex moves a damaged index.json aside (index.json.damaged-TIME)
// and writes a new one listing, untagged, every manifest among the blobs
// whose config and layers are present: the images survive, their names
// (only ever in index.json) do not. It returns where the old index went
// and how many images it found.
func (s *Content) RebuildIndex(ctx context.Context) (string, int, error) {
	aside := s.indexPath() + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
	idx := emptyIndex()
	err := s.withIndexLock(func() error {
		err := s.Walk(ctx, func(d digest.Digest, size int64) error {
			// Manifests are kilobytes: the layers need not be read.
			if size > 4<<20 {
				return nil
			}
			if desc, ok := s.manifestBlob(ctx, d); ok && s.hasImageBlobs(ctx, d) {
				idx.Manifests = append(idx.Manifests, desc)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := os.Rename(s.indexPath(), aside); err != nil {
			return err
		}
		return s.writeIndex(idx)
	})
	if err != nil {
		return "", 0, fmt.Errorf("rebuild %s: %w", s.indexPath(), err)
	}
	return aside, len(idx.Manifests), nil
}

// hasImageBlobs reports whether the manifest d reads and its config and
// layers are all present.
func (s *Content) hasImageBlobs(ctx context.Context, d digest.Digest) bool {
	m, err := s.readManifest(ctx, d)
	if err != nil || !s.HasBlob(m.Config.Digest) {
		return false
	}
	for _, l := range m.Layers {
		if !s.HasBlob(l.Digest) {
			return false
		}
	}
	return true
}

func (s *Content) writeIndex(idx ocispec.Index) error {
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("encode index: %w", err)
	}
	// Under the index lock (see updateIndex; initLayout takes it too).
	if err := s.replaceFile(s.indexPath(), b); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

// updateIndex runs a read-modify-write of index.json under the store's index
// lock. fn changes idx in place; returning an error leaves the file as it was.
// errUnchanged tells updateIndex that fn changed nothing: no write (and no
// fsync) is needed, which is the common case of a cached rebuild's tag.
var errUnchanged = errors.New("index unchanged")

func (s *Content) updateIndex(fn func(idx *ocispec.Index) error) error {
	return s.withIndexLock(func() error {
		idx, err := s.readIndex()
		if err != nil {
			return err
		}
		if err := fn(&idx); err != nil {
			if err == errUnchanged {
				return nil
			}
			return err
		}
		return s.writeIndex(idx)
	})
}

// withIndexLock holds an exclusive flock on index.lock while fn runs. flock
// locks belong to the open file description, so goroutines of this process
// (each opening the file anew) exclude each other as other processes do, and
// the kernel drops the lock if the process dies. fn is short (read, edit and
// rename one small file), so blocking without ctx is acceptable.
func (s *Content) withIndexLock(fn func() error) error {
	f, err := os.OpenFile(s.lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock index: %w", err)
	}
	defer f.Close()
	err = unixutil.IgnoringEINTR(func() error { return unix.Flock(int(f.Fd()), unix.LOCK_EX) })
	if err != nil {
		return fmt.Errorf("lock index: %w", err)
	}
	// Closing f releases the lock.
	return fn()
}
