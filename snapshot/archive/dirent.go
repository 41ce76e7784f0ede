package archive

import (
	"sync"

	"golang.org/x/sys/unix"
)

// Raw directory and file access for WriteLayer, which reads every entry
// of an upper dir: the os package would add poller registration to each
// open and an allocation to each lstat.

// openat opens name relative to dirfd, retrying on EINTR.
func openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// fstatat lstats name, a single component, in the directory dirfd.
func fstatat(dirfd int, name string, st *unix.Stat_t) error {
	for {
		err := unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

// readlinkat returns the target of the symlink name in dirfd.
func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err == unix.EINTR {
			size /= 2
			continue
		}
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
