package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"unsafe"

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

// readDirNames returns the names in the directory open as fd, but "." and
// "..", in no particular order.
func readDirNames(fd int) ([]string, error) {
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		if names, err = parseDirents(buf[:n], names); err != nil {
			return nil, err
		}
	}
}

var direntBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// parseDirents appends the names of the linux_dirent64 records in b.
func parseDirents(b []byte, names []string) ([]string, error) {
	const (
		inoOff    = unsafe.Offsetof(unix.Dirent{}.Ino)
		reclenOff = unsafe.Offsetof(unix.Dirent{}.Reclen)
		nameOff   = unsafe.Offsetof(unix.Dirent{}.Name)
	)
	for len(b) > 0 {
		if len(b) < int(nameOff) {
			return nil, errBadDirent
		}
		reclen := int(binary.NativeEndian.Uint16(b[reclenOff:]))
		if reclen < int(nameOff) || reclen > len(b) {
			return nil, errBadDirent
		}
		rec := b[:reclen]
		b = b[reclen:]
		if binary.NativeEndian.Uint64(rec[inoOff:]) == 0 {
			continue // a deleted entry, as os.ReadDir skips them
		}
		name := rec[nameOff:]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if len(name) == 0 || string(name) == "." || string(name) == ".." {
			continue
		}
		names = append(names, string(name))
	}
	return names, nil
}

var errBadDirent = errors.New("malformed directory entry")

// copyBufs holds WriteLayer's read buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}
