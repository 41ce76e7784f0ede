package archive

import (
	"sync"

	"github.com/builder-dev/builder/internal/unixutil"
	"golang.org/x/sys/unix"
)

// Raw directory and file access for WriteLayer, which reads every entry
// of an upper dir: the os package would add poller registration to each
// open and an allocation to each lstat.

// openat opens name relative to dirfd, retrying on EINTR.
func openat(dirfd int, name string, flags int) (fd int, err error) {
	err = unixutil.IgnoringEINTR(func() error {
		fd, err = unix.Openat(dirfd, name, flags, 0)
		return err
	})
	return fd, err
}

// fstatat lstats name, a single component, in the directory dirfd.
func fstatat(dirfd int, name string, st *unix.Stat_t) error {
	return unixutil.IgnoringEINTR(func() error {
		return unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// readlinkat returns the target of the symlink name in dirfd.
func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		var n int
		err := unixutil.IgnoringEINTR(func() (err error) {
			n, err = unix.Readlinkat(dirfd, name, buf)
			return err
		})
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// copyBufs holds WriteLayer's read buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}
