package runner

import (
	"errors"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/mount"
)

// nodevMounts returns root with "nodev" added to every mount's options, so
// the root file system is mounted nodev in the first place (a bind ignores
// it; ensureNodev catches that).
func nodevMounts(root []mount.Mount) []mount.Mount {
	out := make([]mount.Mount, len(root))
	for i, m := range root {
		m.Options = append(slices.Clip(m.Options), "nodev")
		out[i] = m
	}
	return out
}

// ensureNodev makes the mount at p nodev, and with recursive every mount
// below it too, keeping their other flags. A mount that is nodev already
// costs one statfs.
func ensureNodev(p string, recursive bool) error {
	if !recursive {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err != nil {
			return err
		}
		if st.Flags&unix.ST_NODEV != 0 {
			return nil
		}
	}
	flags := 0
	if recursive {
		flags = unix.AT_RECURSIVE
	}
	// mount_setattr (Linux 5.12) sets the one attribute on the whole tree
	// in one call and leaves every other flag alone.
	err := unix.MountSetattr(unix.AT_FDCWD, p, uint(flags), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NODEV})
	if !errors.Is(err, unix.ENOSYS) {
		return err
	}
	// mountinfo knows the mounts by path: a /proc/self/fd name (see
	// fdPath) is read back to the path its file has now.
	if real, err := os.Readlink(p); err == nil && strings.HasPrefix(p, "/proc/self/fd/") {
		p = real
	}
	targets := []string{p}
	if recursive {
		if targets, err = mount.PointsUnder(p); err != nil {
			return err
		}
	}
	for _, t := range targets {
		if err := remountKeeping(t, unix.MS_NODEV); err != nil {
			return err
		}
	}
	return nil
}

// remountKeeping remounts the mount at p with add on top of the per-mount
// flags it has (a bind remount replaces them all).
func remountKeeping(p string, add uintptr) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		return err
	}
	flags := unix.MS_BIND | unix.MS_REMOUNT | add
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(sfs.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	return unix.Mount("", p, "", flags, "")
}
