package runner

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/mount"
)

// removeStubs removes the mount-point stubs the init made from upper (the
// overlay upper dir), newest first so files go before their parent
// directories. A stub is removed only while it is still an empty regular
// file or an empty directory: if the command put something there, it is
// the command's and belongs in the layer. Parent directories that only
// making a stub copied up are then pruned too (see pruneCopiedUp).
func removeStubs(upper string, lowers []string, stubs []stub) error {
	var errs []error
	parents := map[string]bool{}
	for i := len(stubs) - 1; i >= 0; i-- {
		s := stubs[i]
		if !filepath.IsLocal(s.Path) {
			errs = append(errs, fmt.Errorf("stub path %q escapes the root", s.Path))
			continue
		}
		p := filepath.Join(upper, s.Path)
		fi, err := os.Lstat(p)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		switch {
		case fi.Mode().IsRegular() && fi.Size() == 0:
		case fi.IsDir():
		default:
			continue
		}
		parent := filepath.Dir(p)
		var pst unix.Stat_t
		if err := unix.Lstat(parent, &pst); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(p); err != nil {
			if !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
				errs = append(errs, err)
			}
			continue
		}
		if s.ParentMtime == 0 {
			continue // the parent is a stub too, next in line
		}
		// Making the stub changed the parent's mtime (and, in an overlay,
		// copied the parent up), and so did removing it. If the command
		// left the directory alone, it gets back the mtime it had before
		// the stub; else the one the command gave it.
		mtime := pst.Mtim
		if pst.Mtim.Nano() == s.ParentMtimeAfter {
			mtime = unix.NsecToTimespec(s.ParentMtime)
			if d := filepath.Dir(s.Path); d != "." {
				parents[d] = true
			}
		}
		ts := []unix.Timespec{pst.Atim, mtime}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, parent, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			errs = append(errs, err)
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
		if !unchangedCopyUp(filepath.Join(upper, rel), lowers, rel) {
			continue
		}
		parent := filepath.Dir(filepath.Join(upper, rel))
		var pst unix.Stat_t
		if err := unix.Lstat(parent, &pst); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(filepath.Join(upper, rel)); err != nil {
			if !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		// The removal touched the parent's mtime; put it back, so a parent
		// that was itself only copied up still matches its lower dir.
		ts := []unix.Timespec{pst.Atim, pst.Mtim}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, parent, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			errs = append(errs, err)
		}
		if d := filepath.Dir(rel); d != "." && !dirs[d] {
			dirs[d] = true
			todo = append(todo, d)
		}
	}
	return errors.Join(errs...)
}

// unchangedCopyUp reports whether the upper directory p is empty, not
// opaque, and has the mode, owner, mtime and xattrs of the directory that
// the topmost lower holding rel has.
func unchangedCopyUp(p string, lowers []string, rel string) bool {
	var up unix.Stat_t
	if err := unix.Lstat(p, &up); err != nil || up.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false
	}
	if entries, err := os.ReadDir(p); err != nil || len(entries) != 0 {
		return false
	}
	for _, lower := range lowers {
		var low unix.Stat_t
		lp := filepath.Join(lower, rel)
		if err := unix.Lstat(lp, &low); err != nil {
			continue // not in this layer; a deeper one may have it
		}
		if low.Mode != up.Mode || low.Uid != up.Uid || low.Gid != up.Gid || low.Mtim != up.Mtim {
			return false
		}
		ux, err1 := xattrs(p)
		lx, err2 := xattrs(lp)
		if err1 != nil || err2 != nil || len(ux) != len(lx) {
			return false
		}
		for k, v := range ux {
			if w, ok := lx[k]; !ok || !bytes.Equal(v, w) {
				return false
			}
		}
		return true
	}
	return false // new in upper: the command's (or a stub's, already gone)
}

// xattrs returns p's extended attributes but overlayfs' own bookkeeping
// (trusted.overlay.origin, .impure, ...), which copy-up adds. An opaque
// marker makes p differ from any lower dir, so it is reported as an error.
func xattrs(p string) (map[string][]byte, error) {
	size, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err // ERANGE: changed under us; treat as different
	}
	out := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		if strings.HasPrefix(name, "trusted.overlay.") {
			if name == "trusted.overlay.opaque" {
				return nil, errors.New("opaque directory")
			}
			continue
		}
		vsize, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, err
		}
		val := make([]byte, vsize)
		vn, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			return nil, err
		}
		out[name] = val[:vn]
	}
	return out, nil
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
