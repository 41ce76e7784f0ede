package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/diskspace"
	"github.com/builder-dev/builder/internal/unixutil"
)

// ApplyOptions says what kind of directory Apply writes into.
type ApplyOptions struct {
	// Overlay means dir is a fresh per-layer directory that will be an
	// overlayfs lower dir: whiteouts are stored in overlay form (a 0/0
	// character device, trusted.overlay.opaque=y) instead of deleting.
	Overlay bool
	// NoWhiteouts extracts ".wh." entries as ordinary files (ADD of a
	// user's tar, which is not a layer).
	NoWhiteouts bool
	// Chown, when set, owns every entry by it instead of the tar's ids.
	Chown *Owner
}

// Owner is a numeric owner.
type Owner struct{ UID, GID int }

// Apply extracts the uncompressed layer tar r into dir and returns the
// number of bytes of file content written.
//
// Without opts.Overlay, dir is a full root filesystem: ".wh.name" removes
// name, and ".wh..wh..opq" removes from its directory everything that this
// tar did not put there. Existing entries are replaced, except that a
// directory entry over a directory merges.
//
// Mode bits (setuid, setgid and sticky included), owners, mtimes (those of
// directories set last, after their children), xattrs, symlinks, hardlinks,
// device nodes and fifos are restored. The root's own attributes are left
// alone: the root belongs to the caller.
//
// Every path is resolved inside dir, as if dir were the root: a ".." that
// climbs out is an ErrInvalid error, absolute names are relative to dir, and
// symlinks met on the way (in the tar or already on disk) are followed as a
// chroot would, so nothing outside dir is ever created, changed or removed.
//
// Every entry is charged its size against the free space of dir's
// filesystem before it is written: one that would leave less than the
// reserve (the smaller of 1 GiB and 5% of the filesystem) fails with
// ErrNoSpace, whatever its tar header claims or its stream would inflate
// to; so does one that would bring what this Apply wrote in all past the
// filesystem's size (entries replacing each other free their space, not
// the time spent writing them). A file cut short by an error is removed;
// the rest of what Apply wrote stays, for the caller to discard with dir.
//
// Memory does not grow with the number of entries, except with opaque
// whiteouts applied onto a full root (opts.Overlay and opts.NoWhiteouts
// unset), which need the set of paths this tar wrote.
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (int64, error) {
	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("apply layer to %s: %w", dir, err)
	}
	a := &applier{root: root, opts: opts}
	defer a.close()
	if !opts.Overlay && !opts.NoWhiteouts {
		a.seen = map[string]struct{}{}
	}
	if a.space, err = diskspace.New(int(root.Fd()), dir); err != nil {
		return 0, fmt.Errorf("apply layer to %s: %w", dir, err)
	}

	// The stream's own work per byte (hashing, decompressing) runs
	// ahead in a goroutine, overlapping the syscalls below.
	ra := newReadAhead(r)
	defer ra.close()
	tr := tar.NewReader(ra)
	for {
		if err := ctx.Err(); err != nil {
			return a.n, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.n, fmt.Errorf("apply layer to %s: read tar: %w", dir, err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.n, fmt.Errorf("apply layer to %s: entry %q: %w", dir, hdr.Name, err)
		}
	}
	if err := a.setDirTimes(); err != nil {
		return a.n, fmt.Errorf("apply layer to %s: %w", dir, err)
	}
	// Read to the end so that a caller verifying the stream's digest sees
	// all of it (tar's end marker can precede padding).
	if _, err := io.Copy(io.Discard, ra); err != nil {
		return a.n, fmt.Errorf("apply layer to %s: drain: %w", dir, err)
	}
	return a.n, nil
}

type applier struct {
	root *os.File // O_PATH handle: every lookup starts here
	opts ApplyOptions
	n    int64

	// Tar entries come grouped by directory, so the last parent handle
	// is cached. Any removal makes it stale: a removed or replaced
	// symlink or directory can change what a path resolves to. A stale
	// handle stays open (its entry may still be using it) until the next
	// lookup replaces it.
	cacheName string
	cache     *os.File
	stale     bool

	seen  map[string]struct{} // onto a full root: paths this tar wrote, for opaque whiteouts
	dirs  dirTimes            // directory times, set at the end
	space *diskspace.Guard
}

func (a *applier) close() {
	if a.cache != nil {
		a.cache.Close()
	}
	a.dirs.close()
	a.root.Close()
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		return nil
	}
	dirName, base := splitName(name)
	if !a.opts.NoWhiteouts && strings.HasPrefix(base, WhiteoutPrefix) {
		return a.whiteout(dirName, base, hdr)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		// archive/tar reads a sparse file's holes as zeros, which are
		// written: charge its full size.
		if err := a.space.Take(hdr.Size); err != nil {
			return err
		}
	case tar.TypeDir, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := a.space.Take(0); err != nil {
			return err
		}
	case tar.TypeLink:
		// A name for an inode already made: no inode, no content.
	default:
		return nil // global PAX headers, volume labels: nothing on disk
	}

	pfd, err := a.mkdirAll(dirName)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	exists := err == nil
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("stat: %w", err)
	}
	// Replace what is there, except that a directory over a directory
	// merges (its lower contents stay). Removing first also means no
	// write ever goes through an existing symlink.
	if exists && !(hdr.Typeflag == tar.TypeDir && st.Mode&unix.S_IFMT == unix.S_IFDIR) {
		if err := a.removeAt(pfd, base); err != nil {
			return err
		}
		exists = false
	}
	if a.seen != nil {
		a.seen[name] = struct{}{}
	}

	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists {
			// 0700 until setMeta: nobody uses the half-made tree,
			// but there is no reason to show it either.
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return fmt.Errorf("mkdir: %w", err)
			}
		}
	case tar.TypeReg, tar.TypeGNUSparse:
		if err := a.writeFile(pfd, base, r); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
	case tar.TypeLink:
		// Metadata belongs to the inode, which the target's entry
		// already set.
		return a.link(pfd, base, hdr.Linkname)
	case tar.TypeChar:
		if err := unix.Mknodat(pfd, base, unix.S_IFCHR|mode, devNumber(hdr)); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	case tar.TypeBlock:
		if err := unix.Mknodat(pfd, base, unix.S_IFBLK|mode, devNumber(hdr)); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	case tar.TypeFifo:
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|mode, 0); err != nil {
			return fmt.Errorf("mkfifo: %w", err)
		}
	}
	return a.setMeta(pfd, name, base, hdr)
}

func (a *applier) writeFile(pfd int, base string, r io.Reader) error {
	// O_EXCL|O_NOFOLLOW: the name was just cleared, so anything found
	// there now is a surprise, and a symlink must never be written through.
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	// Raw writes through a pooled buffer: io.Copy into an *os.File
	// allocates a 32 KiB buffer per call, per file of a layer.
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	err = a.copyTo(fd, r, *bp)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("write: %w", cerr)
	}
	if err != nil {
		// A file cut short (a stream ending before its header's size,
		// a full disk) is not the entry: give its space back now.
		unix.Unlinkat(pfd, base, 0)
		return err
	}
	return nil
}

// copyTo writes what r holds to fd, counting it in a.n.
func (a *applier) copyTo(fd int, r io.Reader, buf []byte) error {
	for {
		n, rerr := r.Read(buf)
		for b := buf[:n]; len(b) > 0; {
			w, err := unixutil.IgnoringEINTRIO(unix.Write, fd, b)
			if err != nil {
				return fmt.Errorf("write: %w", err)
			}
			if w == 0 {
				return fmt.Errorf("write: %w", io.ErrShortWrite)
			}
			b = b[w:]
			a.n += int64(w)
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			// archive/tar says io.ErrUnexpectedEOF when the stream
			// ends before the size the header claimed.
			return fmt.Errorf("read content: %w", rerr)
		}
	}
}

// link hardlinks base to the tar's linkname, resolved inside the root like
// any entry name, so a link can never reach a file outside it.
func (a *applier) link(pfd int, base, linkname string) error {
	target, err := cleanName(linkname)
	if err != nil {
		return err
	}
	if target == "" {
		return fmt.Errorf("%w: hardlink to the root", ErrInvalid)
	}
	tdir, tbase := splitName(target)
	tfd, release, err := a.lookup(tdir)
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", linkname, err)
	}
	defer release()
	// Flags 0: a symlink target is linked itself, not followed.
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("hardlink to %s: %w", linkname, err)
	}
	return nil
}

// setMeta restores owner, mode, xattrs and times of the entry base just
// created in pfd. The order matters: chown clears setuid/setgid bits and
// security.capability, so mode and xattrs come after it.
func (a *applier) setMeta(pfd int, name, base string, hdr *tar.Header) error {
	uid, gid := hdr.Uid, hdr.Gid
	if a.opts.Chown != nil {
		uid, gid = a.opts.Chown.UID, a.opts.Chown.GID
	}
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// fchmodat follows symlinks, but base is not one: we just
		// made it (or found a directory) ourselves.
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for k, v := range hdr.PAXRecords {
		x, ok := strings.CutPrefix(k, paxXattr)
		if !ok || isOverlayXattr(x) {
			continue
		}
		// No fd-based call works on every kind of entry (fsetxattr
		// refuses O_PATH handles); the parent's /proc/self/fd link
		// plus a final name that lsetxattr does not follow stays
		// inside the root.
		err := unix.Lsetxattr(fdPath(pfd, base), x, []byte(v), 0)
		if errors.Is(err, unix.ENOTSUP) {
			continue // the filesystem has no such namespace; like tar, go on
		}
		if err != nil {
			return fmt.Errorf("set xattr %s: %w", x, err)
		}
	}
	ts := times(hdr)
	if hdr.Typeflag == tar.TypeDir {
		// Every entry written below would change it again.
		return a.dirs.add(name, ts)
	}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func (a *applier) setDirTimes() error {
	return a.dirs.each(func(name string, ts []unix.Timespec) error {
		dir, base := splitName(name)
		pfd, release, err := a.lookup(dir)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return nil // a later entry removed or replaced it
		}
		if err != nil {
			return fmt.Errorf("set times of %s: %w", name, err)
		}
		err = unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
		release()
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("set times of %s: %w", name, err)
		}
		return nil
	})
}

// whiteout applies ".wh.name" or ".wh..wh..opq" found in dirName.
func (a *applier) whiteout(dirName, base string, hdr *tar.Header) error {
	if base == WhiteoutOpaque {
		return a.opaque(dirName)
	}
	name := strings.TrimPrefix(base, WhiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: whiteout of %q", ErrInvalid, name)
	}
	if a.opts.Overlay {
		if err := a.space.Take(0); err != nil {
			return err
		}
		pfd, err := a.mkdirAll(dirName)
		if err != nil {
			return err
		}
		if err := a.removeAt(pfd, name); err != nil {
			return err
		}
		// Overlayfs's whiteout: a character device 0/0.
		if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("mknod whiteout: %w", err)
		}
		if err := unix.UtimesNanoAt(pfd, name, times(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set times: %w", err)
		}
		return nil
	}
	pfd, release, err := a.lookup(dirName)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil // nothing to hide
	}
	if err != nil {
		return err
	}
	defer release()
	return a.removeAt(pfd, name)
}

// opaque marks dirName opaque (Overlay), or removes from it everything this
// tar did not write.
func (a *applier) opaque(dirName string) error {
	if a.opts.Overlay {
		dfd, err := a.mkdirAll(dirName)
		if err != nil {
			return err
		}
		// setxattr (not l-) follows the /proc/self/fd magic link to
		// the directory the handle holds.
		if err := unix.Setxattr(fdPath(dfd, ""), overlayOpaque, []byte("y"), 0); err != nil {
			return fmt.Errorf("set opaque: %w", err)
		}
		return nil
	}
	dfd, release, err := a.lookup(dirName)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer release()
	names, err := readDirAt(dfd, ".")
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, ok := a.seen[path.Join(dirName, n)]; ok {
			continue
		}
		if err := a.removeAt(dfd, n); err != nil {
			return err
		}
	}
	return nil
}

// mkdirAll returns a handle to dirName inside the root, creating missing
// directories (0755, root's) on the way. The handle stays owned by a.
func (a *applier) mkdirAll(dirName string) (int, error) {
	if dirName == "" {
		return int(a.root.Fd()), nil
	}
	if a.cache != nil && !a.stale && a.cacheName == dirName {
		return int(a.cache.Fd()), nil
	}
	if a.cache != nil {
		a.cache.Close()
		a.cache = nil
	}
	f, err := pathrs.MkdirAllHandle(a.root, dirName, 0o755)
	if err != nil {
		return -1, fmt.Errorf("make parent %s: %w", dirName, err)
	}
	a.cache, a.cacheName, a.stale = f, dirName, false
	return int(f.Fd()), nil
}

// lookup returns a handle to an existing dirName inside the root, without
// creating anything; release closes it.
func (a *applier) lookup(dirName string) (int, func(), error) {
	if dirName == "" {
		return int(a.root.Fd()), func() {}, nil
	}
	f, err := pathrs.OpenatInRoot(a.root, dirName)
	if err != nil {
		return -1, nil, err
	}
	return int(f.Fd()), func() { f.Close() }, nil
}

// removeAt removes name in dirfd and, if it is a directory, everything in
// it. Nothing is followed: subdirectories are opened O_NOFOLLOW, so a
// symlink is removed, never the tree it points to.
func (a *applier) removeAt(dirfd int, name string) error {
	a.stale = true
	return removeAll(dirfd, name)
}

func removeAll(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	children, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	for _, c := range children {
		if err := removeAll(fd, c); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

func readDirAt(dirfd int, name string) ([]string, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open directory: %w", err)
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	return names, nil
}

// splitName splits a cleaned relative name into its directory ("" at the
// top) and last element.
func splitName(name string) (string, string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

func fdPath(fd int, name string) string {
	if name == "" {
		return fmt.Sprintf("/proc/self/fd/%d", fd)
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", fd, name)
}

func devNumber(hdr *tar.Header) int {
	return int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
}

// times gives utimensat's (atime, mtime) for hdr; a tar without atime
// gets its mtime for both.
func times(hdr *tar.Header) []unix.Timespec {
	mt := hdr.ModTime
	if mt.IsZero() {
		mt = time.Unix(0, 0)
	}
	at := hdr.AccessTime
	if at.IsZero() {
		at = mt
	}
	return []unix.Timespec{timespec(at), timespec(mt)}
}

// timespec converts without going through UnixNano, which overflows
// outside 1678..2262 (tars can say anything).
func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}
