package runner

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/internal/xattr"
)

// removeStubs removes the mount-point stubs the init made from upper (the
// overlay upper dir), newest first so files go before their parent
// directories. A stub is removed only while it is still an empty regular
// file or an empty directory: if the command put something there, it is
// the command's and belongs in the layer. Parent directories that only
// making a stub copied up are then pruned too (see pruneCopiedUp).
//
// This runs on the host, in a tree the command wrote: it may have renamed
// a stub's parent away and put a symlink to a host directory in its place
// (a stub's parent is not a mount point, so it can move). Every path is
// therefore resolved beneath upper without following any symlink
// (openIn), and the removals and time changes are made relative to the
// directory so opened; a stub whose path now crosses a symlink is the
// command's business and left alone.
func removeStubs(upper string, lowers []string, stubs []stub) error {
	var errs []error
	parents := map[string]bool{}
	for i := len(stubs) - 1; i >= 0; i-- {
		s := stubs[i]
		if !filepath.IsLocal(s.Path) {
			errs = append(errs, fmt.Errorf("stub path %q escapes the root", s.Path))
			continue
		}
		removed, err := removeStub(upper, s)
		if err != nil {
			errs = append(errs, err)
		}
		if removed {
			if d := filepath.Dir(s.Path); d != "." {
				parents[d] = true
			}
		}
	}
	if len(lowers) > 0 {
		if err := pruneCopiedUp(upper, lowers, parents); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runner: remove mount stubs: %w", err)
	}
	return nil
}

// removeStub removes one stub, if it is still one, and reports whether its
// parent got back the mtime it had before the stub (so it may be an
// unchanged copy-up).
func removeStub(upper string, s stub) (bool, error) {
	pfd, err := openIn(upper, filepath.Dir(s.Path), unix.O_PATH)
	if err != nil {
		return false, ignoreGone(err)
	}
	defer unix.Close(pfd)
	name := filepath.Base(s.Path)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false, ignoreGone(err)
	}
	flags := 0
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0:
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		flags = unix.AT_REMOVEDIR
	default:
		return false, nil
	}
	var pst unix.Stat_t
	if err := unix.Fstat(pfd, &pst); err != nil {
		return false, err
	}
	if err := unix.Unlinkat(pfd, name, flags); err != nil {
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			return false, nil
		}
		return false, err
	}
	if s.ParentMtime == 0 {
		return false, nil // the parent is a stub too, next in line
	}
	// Making the stub changed the parent's mtime (and, in an overlay,
	// copied the parent up), and so did removing it. If the command
	// left the directory alone, it gets back the mtime it had before
	// the stub; else the one the command gave it.
	mtime, restored := pst.Mtim, false
	if pst.Mtim.Nano() == s.ParentMtimeAfter {
		mtime, restored = unix.NsecToTimespec(s.ParentMtime), true
	}
	return restored, setTimes(pfd, pst.Atim, mtime)
}

// pruneCopiedUp removes from upper the directories in dirs (and then their
// parents) that are empty and identical to the directory the lower dirs
// show at the same path. Such a directory is in upper only because a stub
// was made in it (overlayfs copies a parent up before creating in it); with
// it gone the merged view is unchanged and upper holds exactly what the
// command changed, so the layer gets no spurious directory entries.
func pruneCopiedUp(upper string, lowers []string, dirs map[string]bool) error {
	todo := make([]string, 0, len(dirs))
	for d := range dirs {
		todo = append(todo, d)
	}
	var errs []error
	for len(todo) > 0 {
		// Deepest first: a pruned child may leave its parent prunable.
		sort.Slice(todo, func(i, j int) bool { return depth(todo[i]) > depth(todo[j]) })
		rel := todo[0]
		todo = todo[1:]
		if !unchangedCopyUp(upper, lowers, rel) {
			continue
		}
		if err := removeEmptyDir(upper, rel); err != nil {
			errs = append(errs, err)
			continue
		}
		if d := filepath.Dir(rel); d != "." && !dirs[d] {
			dirs[d] = true
			todo = append(todo, d)
		}
	}
	return errors.Join(errs...)
}

// removeEmptyDir removes the directory rel beneath upper and gives its
// parent back the times it had: a parent that was itself only copied up
// then still matches its lower dir.
func removeEmptyDir(upper, rel string) error {
	pfd, err := openIn(upper, filepath.Dir(rel), unix.O_PATH)
	if err != nil {
		return ignoreGone(err)
	}
	defer unix.Close(pfd)
	var pst unix.Stat_t
	if err := unix.Fstat(pfd, &pst); err != nil {
		return err
	}
	if err := unix.Unlinkat(pfd, filepath.Base(rel), unix.AT_REMOVEDIR); err != nil {
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			return nil
		}
		return ignoreGone(err)
	}
	return setTimes(pfd, pst.Atim, pst.Mtim)
}

// unchangedCopyUp reports whether the upper directory rel is empty, not
// opaque, and has the mode, owner, mtime and xattrs of the directory that
// the topmost lower holding rel has.
func unchangedCopyUp(upper string, lowers []string, rel string) bool {
	ufd, err := openIn(upper, rel, unix.O_RDONLY)
	if err != nil {
		return false
	}
	defer unix.Close(ufd)
	var up unix.Stat_t
	if err := unix.Fstat(ufd, &up); err != nil {
		return false
	}
	if !emptyDir(ufd) {
		return false
	}
	for _, lower := range lowers {
		lfd, err := openIn(lower, rel, unix.O_RDONLY)
		if err != nil {
			continue // not in this layer; a deeper one may have it
		}
		same := sameDir(ufd, lfd, &up)
		unix.Close(lfd)
		return same
	}
	return false // new in upper: the command's (or a stub's, already gone)
}

// emptyDir reports whether the directory just opened at fd holds nothing
// but "." and "..".
func emptyDir(fd int) bool {
	buf := make([]byte, 4096)
	n, err := unix.Getdents(fd, buf)
	if err != nil {
		return false
	}
	var names []string
	_, _, names = unix.ParseDirent(buf[:n], -1, names)
	return len(names) == 0 // ParseDirent skips "." and ".."
}

// sameDir reports whether the lower directory open at lfd has up's mode,
// owner and mtime and the xattrs of the upper one open at ufd.
func sameDir(ufd, lfd int, up *unix.Stat_t) bool {
	var low unix.Stat_t
	if err := unix.Fstat(lfd, &low); err != nil {
		return false
	}
	if low.Mode != up.Mode || low.Uid != up.Uid || low.Gid != up.Gid || low.Mtim != up.Mtim {
		return false
	}
	ux, err1 := xattrs(ufd)
	lx, err2 := xattrs(lfd)
	if err1 != nil || err2 != nil {
		return false
	}
	return slices.EqualFunc(ux, lx, func(a, b xattr.Attr) bool { return a.Name == b.Name && bytes.Equal(a.Value, b.Value) })
}

// xattrs returns the extended attributes of the file open at fd, sorted
// by name, but overlayfs' own bookkeeping (trusted.overlay.origin,
// .impure, ...), which copy-up adds. An opaque marker makes it differ from
// any lower dir, so it is reported as an error.
func xattrs(fd int) ([]xattr.Attr, error) {
	opaque := false
	xs, err := xattr.ReadFd(fd, func(name string) bool {
		opaque = opaque || name == "trusted.overlay.opaque"
		return !strings.HasPrefix(name, "trusted.overlay.")
	})
	if err != nil {
		return nil, err
	}
	if opaque {
		return nil, errors.New("opaque directory")
	}
	return xs, nil
}

// openIn opens the directory rel beneath root one component at a time,
// refusing any symlink on the way (O_NOFOLLOW) and any ".." (rel comes
// from stub paths, checked local): what it opens is in root, whatever the
// command left there.
func openIn(root, rel string, flags int) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	parts := strings.Split(filepath.Clean(rel), string(filepath.Separator))
	if parts[0] == "." {
		parts = parts[1:]
	}
	for i, part := range parts {
		if part == ".." {
			unix.Close(fd)
			return -1, fmt.Errorf("open %s in %s: %w", rel, root, unix.EXDEV)
		}
		f := unix.O_PATH
		if i == len(parts)-1 {
			f = flags
		}
		next, err := unix.Openat(fd, part, f|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("open %s in %s: %w", rel, root, err)
		}
		fd = next
	}
	if len(parts) == 0 && flags != unix.O_PATH {
		defer unix.Close(fd)
		return unix.Openat(fd, ".", flags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	return fd, nil
}

// setTimes sets the times of the directory open at fd.
func setTimes(fd int, atime, mtime unix.Timespec) error {
	return unix.UtimesNanoAt(fd, ".", []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW)
}

// ignoreGone is nil for the errors that mean the path is no longer what
// the init made (gone, a file, or through a symlink): nothing to undo.
func ignoreGone(err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil
	}
	return err
}

// overlayLowers returns the lower dirs of the overlay among root, topmost
// first; nil if root is not an overlay.
func overlayLowers(root []mount.Mount) []string {
	for _, m := range root {
		if m.Type != "overlay" {
			continue
		}
		for _, o := range m.Options {
			if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
				return strings.Split(v, ":")
			}
		}
	}
	return nil
}
