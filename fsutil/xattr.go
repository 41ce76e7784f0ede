package fsutil

import (
	"errors"
	"fmt"
	"strings"

	"github.com/builder-dev/builder/internal/xattr"
	"golang.org/x/sys/unix"
)

// skipXattr reports xattrs a copy never carries over: overlayfs keeps its
// own bookkeeping (opaque dirs, redirects, origins) under trusted.overlay.,
// which means nothing in another tree, and setting it through an overlay
// mount is refused.
func skipXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.")
}

// ignorableXattrErr reports errors BuildKit tolerates when writing xattrs:
// a file system without xattrs, or a namespace that refuses them on this
// kind of file (user.* on a symlink).
func ignorableXattrErr(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM)
}

// readXattrs returns p's xattrs (not following a symlink), sorted by name,
// without those skipXattr leaves out.
func readXattrs(p string) ([]Xattr, error) {
	return xattr.Read(p, keepXattr)
}

func keepXattr(name string) bool { return !skipXattr(name) }

// copyXattrs gives dst the xattrs of src, security.capability included.
func copyXattrs(src, dst string) error {
	xs, err := readXattrs(src)
	if err != nil {
		return err
	}
	for _, x := range xs {
		if err := unix.Lsetxattr(dst, x.Name, x.Value, 0); err != nil && !ignorableXattrErr(err) {
			return fmt.Errorf("set xattr %s: %w", x.Name, err)
		}
	}
	return nil
}

// copyXattrsFd gives the open file dst the xattrs of the open file src.
func copyXattrsFd(src, dst int) error {
	xs, err := xattr.ReadFd(src, keepXattr)
	if err != nil {
		return err
	}
	for _, x := range xs {
		if err := unix.Fsetxattr(dst, x.Name, x.Value, 0); err != nil && !ignorableXattrErr(err) {
			return fmt.Errorf("set xattr %s: %w", x.Name, err)
		}
	}
	return nil
}
