package fsutil

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/dirent"
	"github.com/builder-dev/builder/internal/unixutil"
)

// statInfo is an fs.FileInfo over a raw lstat. The walk makes one per
// entry of a context, so they come a directory at a time in one slice
// rather than one allocation each (os.Lstat's), and their names are
// slices of the path strings the walk builds anyway.
type statInfo struct {
	name string
	mode fs.FileMode
	st   syscall.Stat_t
}

var _ fs.FileInfo = (*statInfo)(nil)

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) Mode() fs.FileMode  { return s.mode }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return s.mode.IsDir() }
func (s *statInfo) Sys() any           { return &s.st }

// fileMode converts a stat mode as os.Lstat does, so that a statInfo and
// an os.FileInfo of the same file agree.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// dirEntries is one directory's children, sorted by name: their host
// paths (dir + "/" + name, all slices of one string) and their lstats.
type dirEntries struct {
	hosts []string
	infos []statInfo
}

// listDir lists the directory dirHost and lstats its children, in byte
// order of their names.
//
// It works on one descriptor of the directory: getdents on it, then
// fstatat of each name relative to it. Against an lstat of the full path
// per child that spares the kernel walking the directory's path again
// 20,000 times on a large context, and a child named by a single
// component with AT_SYMLINK_NOFOLLOW cannot lead anywhere but that
// directory, whatever happens to the path above it meanwhile.
// Below the root (nofollow) the directory is opened with O_NOFOLLOW: the
// caller found a directory there with lstat, and if a symlink replaced it
// since, listing where that points could leave the root.
func listDir(dirHost string, nofollow bool) (dirEntries, error) {
	fd, err := openDir(dirHost, nofollow)
	if err != nil {
		return dirEntries{}, err
	}
	defer unix.Close(fd)
	names, err := readNames(fd, dirHost)
	if err != nil {
		return dirEntries{}, err
	}
	defer names.free()
	n := len(names.spans)

	// All host paths in one string: a large context has a path per file,
	// and an allocation each is most of what listing costs besides the
	// syscalls.
	sep := "/"
	if strings.HasSuffix(dirHost, "/") {
		sep = ""
	}
	size := 0
	for _, sp := range names.spans {
		size += len(dirHost) + len(sep) + int(sp.len)
	}
	var sb strings.Builder
	sb.Grow(size)
	for _, sp := range names.spans {
		sb.WriteString(dirHost)
		sb.WriteString(sep)
		sb.Write(names.name(sp))
	}
	all := sb.String()

	out := dirEntries{hosts: make([]string, n), infos: getInfos(n)}
	off := 0
	for i, sp := range names.spans {
		end := off + len(dirHost) + len(sep) + int(sp.len)
		h := all[off:end]
		off = end
		name := h[len(h)-int(sp.len):]
		si := &out.infos[i]
		if err := fstatatz(fd, names.cname(sp), &si.st); err != nil {
			return dirEntries{}, &fs.PathError{Op: "lstat", Path: h, Err: err}
		}
		si.name = name
		si.mode = fileMode(si.st.Mode)
		out.hosts[i] = h
	}
	return out, nil
}

// recycle hands the lstats back for another listing; nothing may point
// into them any more.
func (d *dirEntries) recycle() {
	if c := cap(d.infos); c > 0 && c <= maxPooledInfos {
		p := d.infos
		infosPool.Put(&p)
	}
	d.infos = nil
}

// maxPooledInfos bounds the lstat buffers kept for reuse: a directory of
// a hundred thousand files is better given back to the GC.
const maxPooledInfos = 4096

var infosPool sync.Pool // of *[]statInfo

// getInfos returns n lstat buffers for listDir to fill, recycled when it
// can: a fresh process pays a page fault for every new page it touches.
func getInfos(n int) []statInfo {
	if n == 0 {
		return nil
	}
	if p, ok := infosPool.Get().(*[]statInfo); ok && cap(*p) >= n {
		return (*p)[:n]
	} else if ok {
		infosPool.Put(p)
	}
	return make([]statInfo, n, max(n, 64))
}

// openDir opens a directory for listing. Raw open: os.Open would also try
// to register the descriptor with the poller (an fcntl and a failing
// epoll_ctl per directory) for nothing.
func openDir(p string, nofollow bool) (int, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if nofollow {
		flags |= unix.O_NOFOLLOW
	}
	var fd int
	err := unixutil.IgnoringEINTR(func() (err error) {
		fd, err = unix.Open(p, flags, 0)
		return err
	})
	if err != nil {
		return -1, &fs.PathError{Op: "open directory", Path: p, Err: err}
	}
	return fd, nil
}

// fstatatz lstats the single component at name, NUL-terminated, in the
// directory fd, into a syscall.Stat_t, as os.Lstat's Sys() is and as
// callers expect. Raw: x/sys would copy each name to add the NUL, an
// allocation per file of a context; the names already have one.
func fstatatz(fd int, name *byte, st *syscall.Stat_t) error {
	return rawRetry(unix.SYS_NEWFSTATAT, uintptr(fd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(st)), unix.AT_SYMLINK_NOFOLLOW)
}

// direntNames are the names of a directory's entries, copied out of
// getdents buffers into one arena, each followed by a NUL, sorted.
type direntNames struct {
	arena []byte
	spans []nameSpan
}

type nameSpan struct{ off, len uint32 } // len without the NUL

func (d *direntNames) name(sp nameSpan) []byte { return d.arena[sp.off : sp.off+sp.len] }

// cname returns the name NUL-terminated, for a syscall.
func (d *direntNames) cname(sp nameSpan) *byte { return &d.arena[sp.off] }

// free returns the buffers to the pool; d must not be used afterwards.
func (d *direntNames) free() {
	if cap(d.arena) <= maxPooledNames && cap(d.spans) <= maxPooledSpans {
		d.arena, d.spans = d.arena[:0], d.spans[:0]
		namesPool.Put(d)
	}
}

const (
	maxPooledNames = 1 << 20
	maxPooledSpans = 1 << 16
)

var (
	namesPool = sync.Pool{New: func() any { return &direntNames{} }}
)

// readNames reads the names in the directory fd (all but "." and ".."),
// sorted in byte order as os.ReadDir sorts them.
func readNames(fd int, dir string) (*direntNames, error) {
	d := namesPool.Get().(*direntNames)
	err := dirent.Read(fd, func(name []byte) {
		d.spans = append(d.spans, nameSpan{off: uint32(len(d.arena)), len: uint32(len(name))})
		d.arena = append(d.arena, name...)
		d.arena = append(d.arena, 0)
	})
	if err != nil {
		d.free()
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	slices.SortFunc(d.spans, func(a, b nameSpan) int { return bytes.Compare(d.name(a), d.name(b)) })
	return d, nil
}

// The two Stat_t types must stay the same struct for fstatat's conversion.
var _ = [1]struct{}{}[unsafe.Sizeof(syscall.Stat_t{})-unsafe.Sizeof(unix.Stat_t{})]

// readDirNames returns the names in the directory dir, sorted; see listDir
// for nofollow. The walk's own listing is listDir; this serves the few
// directories looked at while resolving sources.
func readDirNames(dir string, nofollow bool) ([]string, error) {
	fd, err := openDir(dir, nofollow)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	d, err := readNames(fd, dir)
	if err != nil {
		return nil, err
	}
	defer d.free()
	names := make([]string, len(d.spans))
	for i, sp := range d.spans {
		names[i] = string(d.name(sp))
	}
	return names, nil
}
