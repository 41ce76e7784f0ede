package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

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
func (s *Store) readIndex() (ocispec.Index, error) {
	b, err := os.ReadFile(s.indexPath())
	if err != nil {
		return ocispec.Index{}, fmt.Errorf("read index: %w", err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return ocispec.Index{}, fmt.Errorf("decode %s: %w", s.indexPath(), err)
	}
	return idx, nil
}

func (s *Store) writeIndex(idx ocispec.Index) error {
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

func (s *Store) updateIndex(fn func(idx *ocispec.Index) error) error {
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
func (s *Store) withIndexLock(fn func() error) error {
	f, err := os.OpenFile(s.lockPath(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock index: %w", err)
	}
	defer f.Close()
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock index: %w", err)
	}
	// Closing f releases the lock.
	return fn()
}
