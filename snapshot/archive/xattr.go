package archive

import (
	"errors"
	"fmt"

	"github.com/builder-dev/builder/internal/xattr"
)

// listXattrs returns all extended attributes of p, sorted by name, not
// following a final symlink. A filesystem without xattr support has none.
func listXattrs(p string) ([]xattr.Attr, error) {
	xs, err := xattr.Read(p, nil)
	return xs, withPath(p, err)
}

// listXattrsFd is listXattrs for the file open as fd, shown as p in
// errors: for a file WriteLayer has open anyway, it spares the kernel
// resolving its path twice more.
func listXattrsFd(fd int, p string) ([]xattr.Attr, error) {
	xs, err := xattr.ReadFd(fd, nil)
	return xs, withPath(p, err)
}

// withPath names p in an xattr read's error.
func withPath(p string, err error) error {
	var e *xattr.Error
	if !errors.As(err, &e) {
		return err
	}
	if e.Name == "" {
		return fmt.Errorf("list xattrs of %s: %w", p, e.Err)
	}
	return fmt.Errorf("get xattr %s of %s: %w", e.Name, p, e.Err)
}
