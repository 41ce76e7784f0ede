package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/crashpoint"
)

// Ingest streams r into the store as a blob of mediaType: to a temporary
// file first, hashing while writing, then synced and renamed to
// blobs/sha256/<hex>. A blob that is already present is fine: the copy is
// dropped.
func (s *Store) Ingest(ctx context.Context, mediaType string, r io.Reader) (ocispec.Descriptor, error) {
	b, err := s.Stage(ctx, mediaType, r)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return b.Desc, b.Commit()
}

// StagedBlob is a blob written but not yet in the store: its bytes are in
// a temporary file until Commit syncs it and names it by its digest, or
// Discard removes it. A build commits a step's layer in the background, so
// the next step does not wait for the disk.
type StagedBlob struct {
	Desc ocispec.Descriptor
	s    *Store
	tmp  *os.File
}

// Stage writes r to a temporary file of the store, hashing it, and
// returns it staged; see StagedBlob.
func (s *Store) Stage(ctx context.Context, mediaType string, r io.Reader) (*StagedBlob, error) {
	f, err := os.CreateTemp(s.TmpDir(), "ingest-*")
	if err != nil {
		return nil, fmt.Errorf("ingest blob: %w", err)
	}
	dg := digest.Canonical.Digester()
	n, err := io.Copy(io.MultiWriter(f, dg.Hash()), ctxReader{ctx, r})
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("ingest blob: %w", err)
	}
	return &StagedBlob{Desc: ocispec.Descriptor{MediaType: mediaType, Digest: dg.Digest(), Size: n}, s: s, tmp: f}, nil
}

// Commit syncs the blob and renames it into the store. Synced before the
// rename: a blob under its digest's name must never be a half-written
// file after a crash.
func (b *StagedBlob) Commit() error {
	tmp := b.tmp.Name()
	defer os.Remove(tmp) // no-op once renamed
	err := b.tmp.Sync()
	if cerr := b.tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ingest blob %s: %w", b.Desc.Digest, err)
	}
	if b.s.HasBlob(b.Desc.Digest) {
		return nil
	}
	crashpoint.Hit("store.blob.staged")
	if err := os.Rename(tmp, b.s.BlobPath(b.Desc.Digest)); err != nil {
		return fmt.Errorf("ingest blob %s: %w", b.Desc.Digest, err)
	}
	crashpoint.Hit("store.blob.committed")
	return nil
}

// Discard drops a staged blob.
func (b *StagedBlob) Discard() {
	b.tmp.Close()
	os.Remove(b.tmp.Name())
}

// WriteJSON stores v marshalled as JSON under mediaType.
func (s *Store) WriteJSON(ctx context.Context, mediaType string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("marshal %s: %w", mediaType, err)
	}
	return s.writeBytes(ctx, mediaType, b)
}

// writeBytes stores b unless a blob of its digest exists already.
func (s *Store) writeBytes(ctx context.Context, mediaType string, b []byte) (ocispec.Descriptor, error) {
	if err := ctx.Err(); err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if s.HasBlob(desc.Digest) {
		return desc, nil
	}
	if err := s.writeFileAtomic(s.BlobPath(desc.Digest), b); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	return desc, nil
}

// OpenBlob opens the blob d for reading; ErrNotFound if it is missing.
func (s *Store) OpenBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("open blob %q: %w: %v", d, ErrInvalid, err)
	}
	f, err := os.Open(s.BlobPath(d))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("open blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	return f, nil
}

// ReadJSON unmarshals the blob d into v.
func (s *Store) ReadJSON(ctx context.Context, d digest.Digest, v any) error {
	b, err := s.readBlob(ctx, d)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode blob %s: %w", d, err)
	}
	return nil
}

// readBlob reads a small blob (a manifest or config) whole.
func (s *Store) readBlob(ctx context.Context, d digest.Digest) ([]byte, error) {
	rc, err := s.OpenBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	return b, nil
}

// BlobPath is where the blob d lives (whether or not it exists).
func (s *Store) BlobPath(d digest.Digest) string {
	return filepath.Join(s.ContentDir(), "blobs", d.Algorithm().String(), d.Encoded())
}

// HasBlob reports whether the blob d is present.
func (s *Store) HasBlob(d digest.Digest) bool {
	if d.Validate() != nil {
		return false
	}
	_, err := os.Stat(s.BlobPath(d))
	return err == nil
}

// ctxReader stops a long copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
