package xattr

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// Attr is one extended attribute.
type Attr struct {
	Name  string
	Value []byte
}

// MaxBuf is the largest buffer a read grows to. It is past the kernel's
// limits for a name list and for a value (64 KiB each), so a list or value
// that keeps growing between calls still ends the read, with ERANGE.
const MaxBuf = 1 << 20

// Error is a failure to list a file's xattrs (Name is "") or to get one.
type Error struct {
	Name string
	Err  error
}

func (e *Error) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("list xattrs: %v", e.Err)
	}
	return fmt.Sprintf("get xattr %s: %v", e.Name, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Read returns the xattrs of the file at path, not following a final
// symlink, sorted by name. keep, if not nil, says which names to read (the
// others are never fetched). A file system without xattrs has none.
func Read(path string, keep func(name string) bool) ([]Attr, error) {
	return read(source{path: path}, keep)
}

// ReadFd is Read for the open file fd: for a file the caller has open
// anyway, it spares the kernel resolving its path again.
func ReadFd(fd int, keep func(name string) bool) ([]Attr, error) {
	return read(source{fd: fd}, keep)
}

// file is what a read asks of the kernel (faked in tests).
type file interface {
	list(buf []byte) (int, error)
	get(name string, buf []byte) (int, error)
}

// source is a file named by path, or by fd when path is "".
type source struct {
	path string
	fd   int
}

func (s source) list(buf []byte) (int, error) {
	if s.path == "" {
		return unix.Flistxattr(s.fd, buf)
	}
	return unix.Llistxattr(s.path, buf)
}

func (s source) get(name string, buf []byte) (int, error) {
	if s.path == "" {
		return unix.Fgetxattr(s.fd, name, buf)
	}
	return unix.Lgetxattr(s.path, name, buf)
}

func read[F file](f F, keep func(string) bool) ([]Attr, error) {
	names, err := names(f)
	if err != nil {
		return nil, err
	}
	var out []Attr
	for _, name := range names {
		if keep != nil && !keep(name) {
			continue
		}
		val, err := value(f, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, &Error{Name: name, Err: err}
		}
		out = append(out, Attr{name, val})
	}
	return out, nil
}

func names[F file](f F) ([]string, error) {
	// Most files have no xattrs at all: ask for the list's size first,
	// which needs no buffer, and allocate only for a list that is there.
	size, err := f.list(nil)
	switch {
	case errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP):
		return nil, nil
	case errors.Is(err, unix.ERANGE):
		size = 256 // no size to go by: grow from a small buffer
	case err != nil:
		return nil, &Error{Err: err}
	case size == 0:
		return nil, nil
	}
	// The list may grow between the calls: grow with it, up to MaxBuf.
	for size = max(size, 256); size <= MaxBuf; size *= 4 {
		buf := make([]byte, size)
		n, err := f.list(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, &Error{Err: err}
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
	return nil, &Error{Err: unix.ERANGE}
}

func value[F file](f F, name string) ([]byte, error) {
	for size := 256; size <= MaxBuf; size *= 4 {
		buf := make([]byte, size)
		n, err := f.get(name, buf)
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
