package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/mount"
)

// Active is a writable snapshot over a committed parent. Its changes
// collect in UpperDir, in overlay form, until Commit turns them into a
// layer or Remove discards them.
type Active struct {
	s      *Snapshotter
	id     string
	parent Committed
}

// Prepare makes a writable snapshot over parent.
func (s *Snapshotter) Prepare(ctx context.Context, parent Committed) (*Active, error) {
	if err := s.check(parent); err != nil {
		return nil, fmt.Errorf("prepare snapshot: parent: %w", err)
	}
	dir, err := os.MkdirTemp(s.activeDir(), "")
	if err != nil {
		return nil, fmt.Errorf("prepare snapshot: %w", err)
	}
	a := &Active{s: s, id: filepath.Base(dir), parent: parent}
	if err := a.init(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("prepare snapshot: %w", err)
	}
	return a, nil
}

// init makes upper and work. The merged root directory is the upper dir
// itself, so it takes the mode and owner of the parent's root.
func (a *Active) init() error {
	rootOf := a.s.emptyDir()
	if top := a.parent.Top(); top != "" {
		rootOf = a.s.LayerDir(top)
	}
	var st unix.Stat_t
	if err := unix.Stat(rootOf, &st); err != nil {
		return err
	}
	for _, d := range []string{a.UpperDir(), a.workDir()} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	if err := os.Chown(a.UpperDir(), int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Chmod(a.UpperDir(), st.Mode&0o7777)
}

// OpenActive returns the active snapshot id over parent, made earlier by
// Prepare (a stopped container's writable layer, kept across processes).
func (s *Snapshotter) OpenActive(id string, parent Committed) (*Active, error) {
	if id == "" || id == "." || id == ".." || strings.ContainsRune(id, '/') {
		return nil, fmt.Errorf("%w: snapshot ID %q", ErrInvalid, id)
	}
	a := &Active{s: s, id: id, parent: parent}
	if _, err := os.Stat(a.UpperDir()); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("active snapshot %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("active snapshot %s: %w", id, err)
	}
	return a, nil
}

// ID names the snapshot for OpenActive.
func (a *Active) ID() string { return a.id }

// Parent returns the committed snapshot a writes over.
func (a *Active) Parent() Committed { return a.parent }

func (a *Active) dir() string     { return filepath.Join(a.s.activeDir(), a.id) }
func (a *Active) workDir() string { return filepath.Join(a.dir(), "work") }

// UpperDir is where a's changes are, in overlay form (archive.WriteLayer
// reads it once a's mounts are gone).
func (a *Active) UpperDir() string { return filepath.Join(a.dir(), "upper") }

// Mounts returns the read-write overlay of a, to be mounted at one place at
// a time.
func (a *Active) Mounts() []mount.Mount {
	opts := append([]string{
		a.s.lowerdir(a.parent),
		"upperdir=" + a.UpperDir(),
		"workdir=" + a.workDir(),
	}, overlayOptions...)
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
}

// Commit turns a's changes into the committed layer chainID and returns
// parent plus it. If chainID is committed already (the same step ran
// elsewhere), a's copy is dropped. a must not be mounted. After Commit, a
// is gone; Remove is then a no-op.
func (a *Active) Commit(ctx context.Context, chainID digest.Digest) (Committed, error) {
	dst, err := a.s.layerDir(chainID)
	if err != nil {
		return Committed{}, err
	}
	if _, err := os.Stat(a.UpperDir()); err != nil {
		return Committed{}, fmt.Errorf("commit %s: active snapshot %s: %w", chainID, a.id, ErrNotFound)
	}
	if err := a.s.publish(a.UpperDir(), dst); err != nil {
		return Committed{}, fmt.Errorf("commit %s: %w", chainID, err)
	}
	if err := os.RemoveAll(a.dir()); err != nil {
		return Committed{}, fmt.Errorf("commit %s: remove work dir: %w", chainID, err)
	}
	return a.parent.with(chainID), nil
}

// Remove discards a and its changes. a must not be mounted. Removing an
// already removed or committed snapshot does nothing.
func (a *Active) Remove(ctx context.Context) error {
	if err := os.RemoveAll(a.dir()); err != nil {
		return fmt.Errorf("remove active snapshot %s: %w", a.id, err)
	}
	return nil
}

// Absent reports whether no layer of c has anything (file, directory or
// whiteout) at name, a single path component at the root. Then what an
// active snapshot over c gets at /name can be written into its upper
// directory directly, while nothing is mounted: the overlay would have
// nothing there to merge with, replace or hide.
func (s *Snapshotter) Absent(c Committed, name string) (bool, error) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return false, fmt.Errorf("absent: %q is not a single path component", name)
	}
	for _, chainID := range c.Chain {
		_, err := os.Lstat(filepath.Join(s.LayerDir(chainID), name))
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	return true, nil
}
