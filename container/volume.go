package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/fsutil"
	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/snapshot"
)

// Anonymous volumes: every VOLUME of the image gets, as with `docker run`,
// a directory of the container's own (under its directory, so it goes
// with `rm`) bind mounted at the path. It starts as a copy of what the
// image has there (owners, modes and times kept), or empty when the image
// has nothing there. What the command writes into it stays out of the
// writable layer, and so out of diff, commit and SIZE, and is kept across
// stop and start. A -v or --tmpfs on the same path replaces it.

// imageVolumes returns the image's VOLUME paths, clean and sorted.
func imageVolumes(vols map[string]struct{}) []string {
	var out []string
	for v := range vols {
		p := path.Clean("/" + v)
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// volumes are c's anonymous volumes: the image's VOLUME paths no host
// mount covers.
func (c *Container) volumes() []string {
	var out []string
	for _, v := range c.Config.Volumes {
		if !slices.ContainsFunc(c.Host.Mounts, func(m Mount) bool { return path.Clean(m.Dest) == v }) {
			out = append(out, v)
		}
	}
	return out
}

// volumeDir is where the i-th of c's volumes lives.
func (r *Runtime) volumeDir(c *Container, i int) string {
	return filepath.Join(r.Dir(c.ID), "volumes", strconv.Itoa(i))
}

// makeVolumes makes c's volumes, filled from the image's layers (parent).
func (r *Runtime) makeVolumes(ctx context.Context, c *Container, parent snapshot.Committed) error {
	vols := c.volumes()
	if len(vols) == 0 {
		return nil
	}
	// Under the store's tmp/, which a prune sweeps (unmounting first)
	// should this process be killed with the view mounted.
	view, err := os.MkdirTemp(r.Store.TmpDir(), "volumes-")
	if err != nil {
		return fmt.Errorf("make volumes: %w", err)
	}
	if err := mount.All(r.Snap.View(parent), view); err != nil {
		os.Remove(view)
		return fmt.Errorf("make volumes: mount image: %w", err)
	}
	defer func() {
		_ = mount.Unmount(view)
		_ = os.Remove(view)
	}()
	for i, v := range vols {
		if err := fillVolume(ctx, view, v, r.volumeDir(c, i)); err != nil {
			return fmt.Errorf("make volume %s: %w", v, err)
		}
	}
	return nil
}

// fillVolume makes dir a copy of the image's directory at dest (as the
// image root at view shows it), or an empty directory when there is none.
func fillVolume(ctx context.Context, view, dest, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src, err := securejoin.SecureJoin(view, dest)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(src, &st); errors.Is(err, unix.ENOENT) {
		return nil
	} else if err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return fmt.Errorf("%s is not a directory in the image", dest)
	}
	if err := fsutil.Copy(ctx, fsutil.CopyRequest{SrcRoot: view, Sources: []string{dest}, DstRoot: dir, Dest: "/", KeepOwners: true}); err != nil {
		return err
	}
	// The copy filled dir; the directory itself is as the image has it.
	if err := os.Lchown(dir, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Chmod(dir, st.Mode&0o7777); err != nil {
		return err
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dir, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
}
