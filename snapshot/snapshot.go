package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/snapshot/archive"
)

// Errors, to check with errors.Is.
var (
	// ErrNotFound: a layer or active snapshot does not exist.
	ErrNotFound = errors.New("snapshot not found")
	// ErrInvalid: a malformed chain ID or snapshot ID.
	ErrInvalid = errors.New("invalid snapshot reference")
)

// Committed is a read-only snapshot: a stack of committed layers named by
// their chain IDs. Only a Committed can be a parent.
type Committed struct {
	// Chain lists chain IDs from the bottom layer to the top; empty is
	// the empty filesystem (FROM scratch).
	Chain []digest.Digest
}

// Top returns the chain ID of the top layer, "" for scratch.
func (c Committed) Top() digest.Digest {
	if len(c.Chain) == 0 {
		return ""
	}
	return c.Chain[len(c.Chain)-1]
}

// with returns c plus one layer on top, never sharing c's backing array.
func (c Committed) with(chainID digest.Digest) Committed {
	chain := make([]digest.Digest, len(c.Chain), len(c.Chain)+1)
	copy(chain, c.Chain)
	return Committed{Chain: append(chain, chainID)}
}

// Snapshotter keeps layers and writable snapshots under one root.
type Snapshotter struct {
	root string

	unpackMu sync.Mutex
	unpacks  map[digest.Digest]*sync.Mutex // one lock per chain ID being unpacked
}

// New opens (creating as needed) a snapshotter rooted at root.
func New(root string) (*Snapshotter, error) {
	s := &Snapshotter{root: root}
	for _, d := range []string{root, s.tmpDir(), s.activeDir(), s.emptyDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open snapshotter at %s: %w", root, err)
		}
	}
	// Unpacked layers and writable snapshots come and go in these.
	spreadSubdirs(s.tmpDir())
	spreadSubdirs(s.activeDir())
	// The empty dir is a lowerdir, so it is the root directory of a FROM
	// scratch container: it must look like one.
	if err := os.Chmod(s.emptyDir(), 0o755); err != nil {
		return nil, fmt.Errorf("open snapshotter at %s: %w", root, err)
	}
	return s, nil
}

func (s *Snapshotter) tmpDir() string    { return filepath.Join(s.root, "tmp") }
func (s *Snapshotter) activeDir() string { return filepath.Join(s.root, "active") }
func (s *Snapshotter) emptyDir() string  { return filepath.Join(s.root, "empty") }

// LayerDir returns the directory of the committed layer chainID (which may
// not exist yet), or "" if chainID is not a valid digest.
func (s *Snapshotter) LayerDir(chainID digest.Digest) string {
	if chainID.Validate() != nil {
		return ""
	}
	return filepath.Join(s.root, chainID.Algorithm().String(), chainID.Encoded())
}

func (s *Snapshotter) layerDir(chainID digest.Digest) (string, error) {
	d := s.LayerDir(chainID)
	if d == "" {
		return "", fmt.Errorf("%w: chain ID %q", ErrInvalid, chainID)
	}
	return d, nil
}

// Has reports whether the layer chainID is committed: a directory under
// its name. Anything else there (a symlink to a host directory) is damage,
// never a layer: mounted as one, it would show the host's files in the
// container. Unpack replaces it.
func (s *Snapshotter) Has(chainID digest.Digest) bool {
	d := s.LayerDir(chainID)
	if d == "" {
		return false
	}
	fi, err := os.Lstat(d)
	return err == nil && fi.IsDir()
}

// check returns ErrNotFound unless every layer of c is committed.
func (s *Snapshotter) check(c Committed) error {
	for _, id := range c.Chain {
		if !s.Has(id) {
			return fmt.Errorf("layer %s: %w", id, ErrNotFound)
		}
	}
	return nil
}

// Unpack applies the uncompressed layer tar on top of parent as the layer
// chainID and returns parent plus it. When chainID is already committed it
// reads nothing. Concurrent unpacks of one chain ID (in this process or
// another) all succeed; one of them provides the layer.
func (s *Snapshotter) Unpack(ctx context.Context, parent Committed, chainID digest.Digest, layer io.Reader) (Committed, error) {
	dst, err := s.layerDir(chainID)
	if err != nil {
		return Committed{}, err
	}
	if err := s.check(parent); err != nil {
		return Committed{}, fmt.Errorf("unpack %s: parent: %w", chainID, err)
	}
	if s.Has(chainID) {
		return parent.with(chainID), nil
	}
	tmp, err := os.MkdirTemp(s.tmpDir(), "unpack-")
	if err != nil {
		return Committed{}, fmt.Errorf("unpack %s: %w", chainID, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	// MkdirTemp made it 0700; this is the layer's root directory.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Committed{}, fmt.Errorf("unpack %s: %w", chainID, err)
	}
	_, err = archive.Apply(ctx, tmp, layer, archive.ApplyOptions{Overlay: true})
	if err != nil && ctx.Err() == nil {
		// A corrupt blob often shows first as a broken tar: reading the
		// rest lets a verifying reader (store.OpenLayer) name the cause.
		if _, derr := io.Copy(io.Discard, layer); derr != nil {
			err = fmt.Errorf("%w (%v)", derr, err)
		}
	}
	if err != nil {
		return Committed{}, fmt.Errorf("unpack %s: %w", chainID, err)
	}
	// The tar reader stops at the end-of-archive blocks; reading the rest
	// lets a verifying reader check the whole blob before the layer is
	// published.
	if _, err := io.Copy(io.Discard, layer); err != nil {
		return Committed{}, fmt.Errorf("unpack %s: %w", chainID, err)
	}
	if err := s.publish(tmp, dst); err != nil {
		return Committed{}, fmt.Errorf("unpack %s: %w", chainID, err)
	}
	return parent.with(chainID), nil
}

// publish renames the finished layer dir src to dst. If dst appeared in the
// meantime (another unpack or commit of the same chain ID won), src is
// removed instead: same chain ID, same content.
func (s *Snapshotter) publish(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if fi, err := os.Lstat(dst); err == nil && !fi.IsDir() {
		// Damage in the layer's place (see Has): the layer takes it.
		if err := os.Remove(dst); err != nil {
			return err
		}
	}
	// RENAME_NOREPLACE: a plain rename would replace an empty directory,
	// i.e. a committed empty layer some mount may be using.
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) {
		// The filesystem cannot do RENAME_NOREPLACE; a plain rename
		// still refuses a non-empty target.
		err = os.Rename(src, dst)
	}
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
		return os.RemoveAll(src)
	}
	if err != nil {
		return fmt.Errorf("commit layer dir: %w", err)
	}
	return nil
}

// Remove deletes the committed layer chainID (for garbage collection; the
// caller knows no snapshot or mount uses it). A missing layer is not an
// error.
func (s *Snapshotter) Remove(ctx context.Context, chainID digest.Digest) error {
	dir, err := s.layerDir(chainID)
	if err != nil {
		return err
	}
	// Rename out of the way first, so that the layer is gone at once and
	// a kill during the slow part leaves only litter in tmp, never a
	// half layer that looks committed.
	trash, err := os.MkdirTemp(s.tmpDir(), "remove-")
	if err != nil {
		return fmt.Errorf("remove layer %s: %w", chainID, err)
	}
	defer os.RemoveAll(trash)
	if err := os.Rename(dir, filepath.Join(trash, "layer")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove layer %s: %w", chainID, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove layer %s: %w", chainID, err)
	}
	return nil
}

// overlayOptions keep an upper dir a plain diff of its lowers, which is
// what WriteLayer reads: no redirect xattrs (a renamed lower directory is
// then copied up whole: rename(2) returns EXDEV and mv falls back to copy
// and delete), no metacopy-only files, no index. They are spelled out
// because distributions build overlayfs with other defaults.
var overlayOptions = []string{"index=off", "redirect_dir=off", "metacopy=off"}

// lowerdir returns the lowerdir option for c, top layer first. The empty
// dir goes at the bottom: it is the lower of scratch, and it makes a single
// layer a two-layer overlay, which overlayfs needs when there is no upper.
func (s *Snapshotter) lowerdir(c Committed) string {
	dirs := make([]string, 0, len(c.Chain)+1)
	for i := len(c.Chain) - 1; i >= 0; i-- {
		dirs = append(dirs, s.LayerDir(c.Chain[i]))
	}
	dirs = append(dirs, s.emptyDir())
	return "lowerdir=" + strings.Join(dirs, ":")
}

// View returns read-only mounts of c: an overlay of its layers (even of a
// single one, so its whiteout devices do not show), or a read-only bind of
// an empty directory for scratch.
func (s *Snapshotter) View(c Committed) []mount.Mount {
	if len(c.Chain) == 0 {
		return []mount.Mount{{Type: "bind", Source: s.emptyDir(), Options: []string{"bind", "ro"}}}
	}
	opts := append([]string{"ro", s.lowerdir(c)}, overlayOptions...)
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
}
