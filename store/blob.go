package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/internal/ctxio"
)

// Ingest streams r into the store as a blob of mediaType: to a temporary
// file first, hashing while writing, then synced and renamed to
// blobs/sha256/<hex>. A blob that is already present is fine: the copy is
// dropped.
func (s *Content) Ingest(ctx context.Context, mediaType string, r io.Reader) (ocispec.Descriptor, error) {
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
	// Layer, for a layer blob, is its content's LayerInfo, which Commit
	// remembers.
	Layer *LayerInfo
	// DiffID, for a gzip layer blob, is the digest of its uncompressed
	// tar, under which Commit remembers the blob as the layer's gzip form
	// (see CompressedLayer).
	DiffID digest.Digest
	s      *Content
	tmp    *os.File
	// named is set for a temporary file with a name in tmp/ (where the
	// file system has no O_TMPFILE); see createTemp.
	named bool
}

// Stage writes r to a temporary file of the store, hashing it, and
// returns it staged; see StagedBlob.
func (s *Content) Stage(ctx context.Context, mediaType string, r io.Reader) (*StagedBlob, error) {
	f, named, err := s.createTemp("ingest-*")
	if err != nil {
		return nil, fmt.Errorf("ingest blob: %w", err)
	}
	b := &StagedBlob{s: s, tmp: f, named: named}
	dg := digest.Canonical.Digester()
	n, err := io.Copy(io.MultiWriter(f, dg.Hash()), ctxio.Reader(ctx, r))
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err != nil {
		b.Discard()
		return nil, fmt.Errorf("ingest blob: %w", err)
	}
	b.Desc = ocispec.Descriptor{MediaType: mediaType, Digest: dg.Digest(), Size: n}
	return b, nil
}

// Commit syncs the blob and names it in the store. Synced before it is
// named: a blob under its digest's name must never be a half-written file
// after a crash.
func (b *StagedBlob) Commit() error {
	defer b.Discard() // no-op once named
	if err := b.tmp.Sync(); err != nil {
		return fmt.Errorf("ingest blob %s: %w", b.Desc.Digest, err)
	}
	if !b.s.HasBlob(b.Desc.Digest) {
		crashpoint.Hit("store.blob.staged")
		if err := b.s.linkTemp(b.tmp, b.named, b.s.blobPath(b.Desc.Digest)); err != nil {
			return fmt.Errorf("ingest blob %s: %w", b.Desc.Digest, err)
		}
		crashpoint.Hit("store.blob.committed")
	}
	// Only sizes and a form that can be made again: lost, they are
	// counted (or compressed) again from the blob.
	_ = b.s.rememberLayer(context.Background(), b.Desc, b.Layer, b.DiffID)
	return nil
}

// StageFile stages the file at path, which must be in the store's tmp/
// (where a load spools the archive it unpacks), as the blob desc, whose
// digest and size the caller computed while it wrote the file: Commit
// renames the file into place instead of copying it, and Discard removes
// it. The file is the staged blob's from now on.
func (s *Content) StageFile(path string, desc ocispec.Descriptor) (*StagedBlob, error) {
	if rel, err := filepath.Rel(s.tmp, path); err != nil || !filepath.IsLocal(rel) {
		// Elsewhere, the rename could cross file systems.
		return nil, fmt.Errorf("stage %s: not in the store's %s: %w", path, s.tmp, ErrInvalid)
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("stage %s: digest %q: %w", path, desc.Digest, ErrInvalid)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", desc.Digest, err)
	}
	fi, err := f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || fi.Size() != desc.Size) {
		err = fmt.Errorf("%s holds %d bytes, not %d: %w", path, fi.Size(), desc.Size, ErrInvalid)
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stage %s: %w", desc.Digest, err)
	}
	return &StagedBlob{Desc: desc, s: s, tmp: f, named: true}, nil
}

// Discard drops a staged blob.
func (b *StagedBlob) Discard() {
	b.tmp.Close()
	if b.named {
		os.Remove(b.tmp.Name())
	}
}

// createTemp makes the file a blob is written to before it has its name:
// an unnamed file (O_TMPFILE) in tmp/, which the kernel frees if the
// process dies before linkTemp names it, so that a killed write leaves
// no half-written file behind. Where the file system or /proc lacks what
// that needs, it is a file named after pattern, which a prune removes.
func (s *Content) createTemp(pattern string) (f *os.File, named bool, err error) {
	if procFdUsable() {
		fd, err := unix.Open(s.tmp, unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return os.NewFile(uintptr(fd), filepath.Join(s.tmp, "(unnamed)")), false, nil
		}
		// EOPNOTSUPP: no O_TMPFILE on this file system; EISDIR: a
		// kernel older than 3.11, which does not know the flag.
		if err != unix.EOPNOTSUPP && err != unix.EISDIR {
			return nil, false, fmt.Errorf("create temporary file in %s: %w", s.tmp, err)
		}
	}
	f, err = os.CreateTemp(s.tmp, pattern)
	return f, true, err
}

// linkTemp gives the temporary file f (see createTemp) the name path,
// which must not exist or already hold the same content (a blob is named
// by its digest, so another process that stored it first stored the same
// bytes).
func (s *Content) linkTemp(f *os.File, named bool, path string) error {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		// Not the blob but damage in its place (HasBlob said no: a
		// symlink, a directory, a FIFO): the good bytes take the name.
		if err := os.RemoveAll(path); err != nil {
			return err
		}
	}
	if named {
		return os.Rename(f.Name(), path)
	}
	// An unnamed file is linked through /proc: linkat with AT_EMPTY_PATH
	// would need CAP_DAC_READ_SEARCH.
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err == unix.EEXIST {
		return nil
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: path, Err: err}
	}
	return nil
}

// procFdUsable reports whether /proc/self/fd is there for linkTemp.
var procFdUsable = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})

// WriteJSON stores v marshalled as JSON under mediaType.
func (s *Content) WriteJSON(ctx context.Context, mediaType string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("marshal %s: %w", mediaType, err)
	}
	return s.writeBytes(ctx, mediaType, b)
}

// writeBytes stores b unless a blob of its digest exists already.
func (s *Content) writeBytes(ctx context.Context, mediaType string, b []byte) (ocispec.Descriptor, error) {
	if err := ctx.Err(); err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if s.HasBlob(desc.Digest) {
		return desc, nil
	}
	sb, err := s.Stage(ctx, mediaType, bytes.NewReader(b))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	if err := sb.Commit(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	// Manifests and configs are listed in index.json next: their names
	// must be on disk first.
	if err := syncDir(filepath.Dir(s.blobPath(desc.Digest))); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	return desc, nil
}

// OpenBlob opens the blob d for reading; ErrNotFound if it is missing.
// The content is checked against d as it is read: the read that reaches
// the end fails with a DigestError (errors.Is ErrDigest) if the blob was
// changed, so read it to io.EOF before trusting what it gave.
func (s *Content) OpenBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("open blob %q: %w: %v", d, ErrInvalid, err)
	}
	f, err := openRegular(s.blobPath(d))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("open blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	return verifiedFile{newVerifier(f, d), f}, nil
}

// errNotRegular is a blob's name that holds no regular file.
var errNotRegular = errors.New("not a regular file (the store is damaged: `builder store verify --remove` removes it)")

// openRegular opens the regular file at path for reading. A blob's name
// can be made to hold anything by whoever can write the store: a symlink
// (to /etc/shadow: its content must never be read through the store, let
// alone copied into a layer or an archive), a FIFO (a plain open would
// block for ever) or a directory. O_NOFOLLOW refuses the symlink and
// O_NONBLOCK makes opening a FIFO return at once; the fstat then refuses
// all that is not a regular file, so nothing is ever read from one.
func openRegular(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP {
		return nil, &os.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	// O_NONBLOCK means nothing for a regular file's reads.
	return os.NewFile(uintptr(fd), path), nil
}

// ReadJSON unmarshals the blob d into v.
func (s *Content) ReadJSON(ctx context.Context, d digest.Digest, v any) error {
	b, err := s.readBlob(ctx, d)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode blob %s: %w", d, err)
	}
	return nil
}

// ReadBlob reads a small blob (a manifest or config) whole, checked against
// its digest.
func (s *Content) ReadBlob(ctx context.Context, d digest.Digest) ([]byte, error) {
	return s.readBlob(ctx, d)
}

func (s *Content) readBlob(ctx context.Context, d digest.Digest) ([]byte, error) {
	rc, err := s.OpenBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if errors.Is(err, ErrDigest) {
		return nil, err // names the blob already
	}
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	return b, nil
}

// HasBlob reports whether the blob d is present: a regular file under its
// name. Anything else there (a symlink, a directory, a FIFO) is damage,
// not the blob: writing the blob again replaces it (see linkTemp).
func (s *Content) HasBlob(d digest.Digest) bool {
	if d.Validate() != nil {
		return false
	}
	fi, err := os.Lstat(s.blobPath(d))
	return err == nil && fi.Mode().IsRegular()
}
