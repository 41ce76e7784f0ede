package fsutil

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/builder-dev/builder/internal/unixutil"
	"golang.org/x/sys/unix"
)

// copyRegular writes a new regular file at dst with the content of src
// (whose lstat is st) and gives it its metadata (see setMeta), all through
// the two open descriptors: a COPY of a large context creates thousands of
// files, and each path resolved again, each descriptor registered with
// Go's poller (os.Open), is a few more syscalls per file.
//
// O_EXCL makes sure nothing that appeared at dst meanwhile (a symlink) is
// followed; O_NOFOLLOW on src, that the file the walk lstat'ed as regular
// is what is read.
func (c *copier) copyRegular(src, dst string, st *syscall.Stat_t, inFresh bool) (err error) {
	in, err := openRetry(src, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("copy %s: %w", c.show(dst), err)
	}
	defer unix.Close(in)
	meta := c.newFileMeta(st, inFresh)
	out, err := openRetry(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, meta.createMode)
	if err != nil {
		return fmt.Errorf("copy %s: %w", c.show(dst), err)
	}
	defer func() {
		if cerr := unix.Close(out); err == nil && cerr != nil {
			err = fmt.Errorf("copy %s: close: %w", c.show(dst), cerr)
		}
	}()
	if err := c.copyData(in, out, st.Size); err != nil {
		return fmt.Errorf("copy %s: %w", c.show(dst), err)
	}
	return c.setMetaFd(in, out, st, dst, meta)
}

// fileMeta is what a new regular file needs set after it is created.
type fileMeta struct {
	createMode   uint32 // the mode to create it with
	chown, chmod bool   // whether fchown and fchmod are still needed
	uid, gid     int
	mode         uint32
}

// newFileMeta works out how a regular file copied from st is created and
// what is left to set. Only a file that goes into a directory this copy
// made, with one owner for everything and no default ACL (inFresh, see
// copySelection), takes shortcuts: it is created with its final mode when
// the umask keeps all of it and it has no setuid, setgid or sticky bit
// (which a chown would clear), and it already has its owner when that is
// the process's own (no setgid directory can give it another group). A
// context of thousands of files is spared two syscalls each.
func (c *copier) newFileMeta(st *syscall.Stat_t, inFresh bool) fileMeta {
	uid, gid := c.owner(st)
	mode := st.Mode & 0o7777
	if c.mode != nil {
		mode = *c.mode
	}
	m := fileMeta{createMode: 0o600, chown: true, chmod: true, uid: uid, gid: gid, mode: mode}
	if !inFresh {
		return m
	}
	if um, ok := processUmask(); ok && mode&0o7000 == 0 && mode&^um == mode {
		m.createMode, m.chmod = mode, false
	}
	if euid, egid := processIDs(); (c.chown != nil || !c.req.KeepOwners) && uid == euid && gid == egid {
		m.chown = false
	}
	return m
}

// processIDs are the effective uid and gid new files get, asked once and
// only by a copy (not at every start of the builder).
var processIDs = sync.OnceValues(func() (int, int) { return os.Geteuid(), os.Getegid() })

// processUmask reads the umask without changing it (umask(2) can only set
// it, and another goroutine may be creating files meanwhile).
var processUmask = sync.OnceValues(func() (uint32, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			um, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return uint32(um), err == nil
		}
	}
	return 0, false
})

// copyData copies in to out, from their current offsets to the end of in,
// which was size bytes when it was stat'ed.
//
// copy_file_range first: within one file system it copies in the kernel,
// or shares extents (reflinks) where the file system can. Between file
// systems (the context on ext4, the destination an overlay mount) the
// kernel refuses it (EXDEV), and the copier stops asking. Then read/write
// through a pooled buffer: sendfile would also avoid the copy to user
// space, but into overlayfs it measured slower than plain writes.
//
// Like hashFile it stops after a short read at or past the stat's size,
// which on a regular file is end of file, rather than reading once more to
// see 0.
func (c *copier) copyData(in, out int, size int64) error {
	var total int64
	if !c.noCopyRange.Load() {
		for {
			var n int
			err := unixutil.IgnoringEINTR(func() (err error) {
				n, err = unix.CopyFileRange(in, nil, out, nil, copyRangeChunk, 0)
				return err
			})
			if err != nil {
				if total == 0 && copyRangeUnsupported(err) {
					c.noCopyRange.Store(true)
					break
				}
				return fmt.Errorf("copy_file_range: %w", err)
			}
			total += int64(n)
			if n == 0 || (n < copyRangeChunk && total >= size) {
				return nil
			}
		}
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, err := unixutil.IgnoringEINTRIO(unix.Read, in, buf)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			return nil
		}
		if err := writeAll(out, buf[:n]); err != nil {
			return err
		}
		total += int64(n)
		if n < len(buf) && total >= size {
			return nil
		}
	}
}

// copyRangeChunk is what one copy_file_range call asks for: large, so that
// most files take one call, and below the kernel's MAX_RW_COUNT.
const copyRangeChunk = 1 << 30

// copyRangeUnsupported reports the errors with which copy_file_range says
// it cannot copy between these two files at all, as opposed to failing.
func copyRangeUnsupported(err error) bool {
	switch err {
	case unix.EXDEV, unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP, unix.EPERM, unix.EBADF:
		return true
	}
	return false
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unixutil.IgnoringEINTRIO(unix.Write, fd, b)
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("write: %w", unix.EIO)
		}
		b = b[n:]
	}
	return nil
}

func openRetry(p string, flags int, perm uint32) (int, error) {
	var fd int
	err := unixutil.IgnoringEINTR(func() (err error) {
		fd, err = unix.Open(p, flags, perm)
		return err
	})
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return fd, nil
}

// setMetaFd is setMeta for a regular file the copy has open as out, read
// from in: owner, mode (those m says are still needed), xattrs, then times,
// in setMeta's order.
func (c *copier) setMetaFd(in, out int, st *syscall.Stat_t, target string, m fileMeta) error {
	if m.chown {
		if err := unix.Fchown(out, m.uid, m.gid); err != nil {
			return fmt.Errorf("chown %s: %w", c.show(target), err)
		}
	}
	if m.chmod {
		if err := unix.Fchmod(out, m.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", c.show(target), err)
		}
	}
	if err := copyXattrsFd(in, out); err != nil {
		return fmt.Errorf("copy xattrs to %s: %w", c.show(target), err)
	}
	ts := [2]unix.Timespec{unix.Timespec(st.Atim), unix.Timespec(st.Mtim)}
	if err := futimens(out, &ts); err != nil {
		return fmt.Errorf("set times on %s: %w", c.show(target), err)
	}
	return nil
}

// futimens sets the times of the open file fd: utimensat with a NULL path
// works on the descriptor itself (what libc's futimens does; x/sys only
// takes a path).
func futimens(fd int, ts *[2]unix.Timespec) error {
	return rawRetry(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0)
}

// rawRetry makes a system call of up to four arguments directly, again
// when a signal interrupts it.
func rawRetry(trap, a1, a2, a3, a4 uintptr) error {
	return unixutil.IgnoringEINTR(func() error {
		if _, _, errno := unix.Syscall6(trap, a1, a2, a3, a4, 0, 0); errno != 0 {
			return errno
		}
		return nil
	})
}

// copyBufs holds read buffers for hashing and copying: a context has many
// small files, and a fresh buffer per file is most of what either would
// allocate.
var copyBufs = sync.Pool{New: func() any {
	b := make([]byte, 128<<10)
	return &b
}}
