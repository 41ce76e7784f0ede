package archive

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// listXattrs returns all extended attributes of p, not following a final
// symlink. A filesystem without xattr support has none.
func listXattrs(p string) (map[string][]byte, error) {
	return readXattrs(p,
		func(buf []byte) (int, error) { return unix.Llistxattr(p, buf) },
		func(name string, buf []byte) (int, error) { return unix.Lgetxattr(p, name, buf) })
}

// listXattrsFd is listXattrs for the file open as fd, shown as p in
// errors: for a file WriteLayer has open anyway, it spares the kernel
// resolving its path twice more.
func listXattrsFd(fd int, p string) (map[string][]byte, error) {
	return readXattrs(p,
		func(buf []byte) (int, error) { return unix.Flistxattr(fd, buf) },
		func(name string, buf []byte) (int, error) { return unix.Fgetxattr(fd, name, buf) })
}

func readXattrs(p string, list func([]byte) (int, error), get func(string, []byte) (int, error)) (map[string][]byte, error) {
	names, err := xattrNames(p, list)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		v, err := xattrValue(n, get)
		if errors.Is(err, unix.ENODATA) {
			continue // removed between list and get
		}
		if err != nil {
			return nil, fmt.Errorf("get xattr %s of %s: %w", n, p, err)
		}
		out[n] = v
	}
	return out, nil
}

func xattrNames(p string, list func([]byte) (int, error)) ([]string, error) {
	// Most files have none: a first try with a buffer on the stack.
	var small [256]byte
	buf := small[:]
	for {
		n, err := list(buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			// Grew between calls or the first guess was small: ask
			// for the size and retry.
			size, err := list(nil)
			if err != nil {
				return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
			}
			buf = make([]byte, size+64)
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
		}
		var names []string
		for _, b := range bytes.Split(buf[:n], []byte{0}) {
			if len(b) > 0 {
				names = append(names, string(b))
			}
		}
		return names, nil
	}
}

func xattrValue(name string, get func(string, []byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 128)
	for {
		n, err := get(name, buf)
		if errors.Is(err, unix.ERANGE) {
			size, err := get(name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, size+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
