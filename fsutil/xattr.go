package fsutil

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

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

// xattrSource reads a file's xattrs by path (not following a symlink) or
// through an open descriptor, which spares the kernel resolving the path
// again for a file the copy has open anyway.
type xattrSource struct {
	path string
	fd   int // used when path is ""
}

func (x xattrSource) list(buf []byte) (int, error) {
	if x.path == "" {
		return unix.Flistxattr(x.fd, buf)
	}
	return unix.Llistxattr(x.path, buf)
}

func (x xattrSource) get(name string, buf []byte) (int, error) {
	if x.path == "" {
		return unix.Fgetxattr(x.fd, name, buf)
	}
	return unix.Lgetxattr(x.path, name, buf)
}

// readXattrs returns p's xattrs (not following a symlink), sorted by name.
func readXattrs(p string) ([]Xattr, error) {
	return xattrSource{path: p}.read()
}

// read returns the xattrs, sorted by name, without those skipXattr leaves
// out.
func (src xattrSource) read() ([]Xattr, error) {
	names, err := src.names()
	if err != nil {
		return nil, err
	}
	var out []Xattr
	for _, name := range names {
		if skipXattr(name) {
			continue
		}
		val, err := src.value(name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("get xattr %s: %w", name, err)
		}
		out = append(out, Xattr{name, val})
	}
	return out, nil
}

func (src xattrSource) names() ([]string, error) {
	// Most files have no xattrs at all: ask with a buffer on the stack
	// first, and allocate only for a list that is there.
	var small [256]byte
	for size := len(small); size <= maxXattrBuf; size *= 4 {
		buf := small[:]
		if size > len(small) {
			buf = make([]byte, size)
		}
		n, err := src.list(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list xattrs: %w", err)
		}
		if n == 0 {
			return nil, nil
		}
		var names []string
		for _, b := range bytes.Split(buf[:n], []byte{0}) {
			if len(b) > 0 {
				names = append(names, string(b))
			}
		}
		sort.Strings(names)
		return names, nil
	}
	return nil, fmt.Errorf("list xattrs: %w", unix.ERANGE)
}

func (src xattrSource) value(name string) ([]byte, error) {
	for size := 256; size <= maxXattrBuf; size *= 4 {
		buf := make([]byte, size)
		n, err := src.get(name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, unix.ERANGE
}

// maxXattrBuf is past the kernel's limits for a name list and a value
// (64 KiB each), so growing a buffer stops even if a file keeps changing.
const maxXattrBuf = 1 << 20

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
	xs, err := xattrSource{fd: src}.read()
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
