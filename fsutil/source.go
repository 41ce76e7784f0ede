package fsutil

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sync/errgroup"
)

// maxSymlinks bounds how many symlinks one source path may go through, as
// the kernel's own resolution does (ELOOP).
const maxSymlinks = 255

// view is the source tree as a copy sees it: SrcRoot less what the filter
// leaves out. BuildKit sends the context through the .dockerignore before
// any COPY reads it, so an ignored path is simply not there, not even as a
// symlink's target.
type view struct {
	root    string
	filter  func(rel string, isDir bool) bool
	descend func(rel string) bool
	// noSpecial leaves named pipes and sockets out (CopyRequest.Context).
	noSpecial bool
}

// special reports whether the view leaves m's kind of file out.
func (v *view) special(m fs.FileMode) bool {
	return v.noSpecial && m&(fs.ModeNamedPipe|fs.ModeSocket) != 0
}

// host turns a clean slash path relative to the root ("" for the root)
// into a host path. Callers only pass paths whose components they resolved
// themselves (no symlinks, no ".."), so the result stays under root.
func (v *view) host(rel string) string {
	return filepath.Join(v.root, filepath.FromSlash(rel))
}

// present reports whether rel, found on disk, is part of the view.
func (v *view) present(ctx context.Context, rel string, isDir bool) (bool, error) {
	if v.filter == nil || rel == "" || v.filter(rel, isDir) {
		return true, nil
	}
	if !isDir || !v.mayDescend(rel) {
		return false, nil
	}
	if v.descend != nil {
		return true, nil // named by an exception: there, whatever it holds
	}
	// Without Descend an excluded directory appears when an exception
	// brings back something below it.
	names, err := readDirNames(v.host(rel), rel != "")
	if err != nil {
		return false, err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		child := path.Join(rel, name)
		fi, err := os.Lstat(v.host(child))
		if err != nil {
			return false, fmt.Errorf("lstat %s: %w", child, err)
		}
		ok, err := v.present(ctx, child, fi.IsDir())
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (v *view) mayDescend(rel string) bool {
	return v.descend == nil || v.descend(rel)
}

// resolve follows name (a clean absolute path in the source) inside the
// view, symlinks included, the last one too, and returns the real path
// relative to the root with its FileInfo. ".." at the root and absolute
// symlink targets stay inside the root, as if it were "/".
func (v *view) resolve(ctx context.Context, name string) (string, os.FileInfo, error) {
	notFound := func() error { return fmt.Errorf("copy %s: %w", name, fs.ErrNotExist) }
	todo := splitPath(name)
	cur := ""
	var fi os.FileInfo
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = parentOf(cur)
			fi = nil
			continue
		}
		next := path.Join(cur, c)
		st, err := os.Lstat(v.host(next))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return "", nil, notFound()
			}
			return "", nil, fmt.Errorf("copy %s: lstat %s: %w", name, next, err)
		}
		ok, err := v.present(ctx, next, st.IsDir())
		if err != nil {
			return "", nil, err
		}
		if !ok || v.special(st.Mode()) {
			return "", nil, notFound()
		}
		if st.Mode()&os.ModeSymlink != 0 {
			links++
			if links > maxSymlinks {
				return "", nil, fmt.Errorf("copy %s: %w", name, syscall.ELOOP)
			}
			target, err := os.Readlink(v.host(next))
			if err != nil {
				return "", nil, fmt.Errorf("copy %s: readlink %s: %w", name, next, err)
			}
			if path.IsAbs(target) {
				cur = ""
			}
			todo = append(splitPath(target), todo...)
			fi = nil
			continue
		}
		if len(todo) > 0 && !st.IsDir() && hasRealComponent(todo) {
			return "", nil, notFound()
		}
		cur, fi = next, st
	}
	if fi == nil {
		// The path ended at the root, or went through ".." or a symlink
		// to a directory already walked: stat what it names now.
		st, err := os.Lstat(v.host(cur))
		if err != nil {
			return "", nil, fmt.Errorf("copy %s: lstat: %w", name, err)
		}
		fi = st
	}
	return cur, fi, nil
}

func hasRealComponent(todo []string) bool {
	for _, c := range todo {
		if c != "" && c != "." {
			return true
		}
	}
	return false
}

func parentOf(rel string) string {
	if rel == "" {
		return ""
	}
	p := path.Dir(rel)
	if p == "." {
		return ""
	}
	return p
}

func splitPath(p string) []string {
	return strings.Split(filepath.ToSlash(p), "/")
}

// hasWildcards reports whether p holds a pattern character that is not
// escaped, as BuildKit decides whether a source is a wildcard.
func hasWildcards(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// glob returns the paths of the view that pattern (clean, absolute) names,
// in lexical order. Components are matched one by one with path.Match, so
// "*" never crosses a "/"; directories between components are walked as
// they are, without following symlinks; the non-wildcard prefix is followed.
func (v *view) glob(ctx context.Context, pattern string) ([]string, error) {
	comps := splitPath(strings.TrimPrefix(pattern, "/"))
	k := 0
	for k < len(comps) && !hasWildcards(comps[k]) {
		k++
	}
	prefix := "/" + strings.Join(comps[:k], "/")
	for _, c := range comps[k:] {
		if _, err := path.Match(c, ""); err != nil {
			return nil, fmt.Errorf("copy %s: bad pattern: %w", pattern, err)
		}
	}
	rel, fi, err := v.resolve(ctx, prefix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, nil
	}
	var out []string
	err = v.globDir(ctx, rel, prefix, comps[k:], &out)
	return out, err
}

func (v *view) globDir(ctx context.Context, rel, shown string, comps []string, out *[]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	names, err := readDirNames(v.host(rel), rel != "")
	if err != nil {
		return err
	}
	for _, name := range names {
		if ok, _ := path.Match(comps[0], name); !ok {
			continue
		}
		child := path.Join(rel, name)
		fi, err := os.Lstat(v.host(child))
		if err != nil {
			return fmt.Errorf("lstat %s: %w", child, err)
		}
		ok, err := v.present(ctx, child, fi.IsDir())
		if err != nil {
			return err
		}
		if !ok || v.special(fi.Mode()) {
			continue
		}
		if len(comps) == 1 {
			*out = append(*out, path.Join(shown, name))
		} else if fi.IsDir() {
			if err := v.globDir(ctx, child, path.Join(shown, name), comps[1:], out); err != nil {
				return err
			}
		}
	}
	return nil
}

// entry is one thing a copy writes: the selected source itself (rel "")
// or something below it.
type entry struct {
	rel  string      // slash path below the selected source, "" for itself
	host string      // host path to read
	fi   os.FileInfo // from Lstat (for the source itself: after following symlinks)
	// d is the entry's sum when the walk computed it (DigestEntries); fi
	// is then nil.
	d [sha256.Size]byte
}

// walk lists rel (already resolved, with fi) and, for a directory,
// everything in the view below it, parents before children, siblings in
// lexical order.
//
// Directories are listed and their children lstat'ed in parallel: on a
// large context the walk is one lstat per file, and with syscalls of a few
// microseconds each that is most of what a cached build costs. The order
// is put together afterwards, so it is the same as a serial walk's.
//
// With dg, each directory's entries are digested as soon as it is
// listed, by other goroutines, and keep only their digest: on a large
// context that overlaps hashing and stat-cache lookups with the walk's
// syscalls (and with loading the stat cache, which the walk need not wait
// for), and recycles the lstat buffers instead of keeping one per file to
// the end. Files with several links are left to the caller, who settles
// their grouping in walk order.
func (v *view) walk(ctx context.Context, rel string, fi os.FileInfo, dg *digester) ([]*entry, error) {
	out := []*entry{{rel: "", host: v.host(rel), fi: fi}}
	if !fi.IsDir() {
		return out, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &walker{v: v}
	var digesters *errgroup.Group
	if dg != nil {
		w.jobs = make(chan *dirJob, digestQueue)
		digesters = dg.start(ctx, cancel, w.jobs)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(walkWorkers())
	w.g = g
	top := &dirListing{}
	err := w.spawn(gctx, rel, "", top)
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if digesters != nil {
		close(w.jobs)
		// A digest error is the cause of the walk's cancellation.
		if derr := digesters.Wait(); derr != nil {
			err = derr
		}
	}
	if err != nil {
		return nil, err
	}
	out = slices.Grow(out, top.count())
	top.flatten(&out, v.descend != nil)
	return out, nil
}

// walkWorkers bounds the goroutines of one walk. Walking is mostly time
// in syscalls, which a goroutine spends off its P, so a few more than
// GOMAXPROCS keep the CPUs busy.
func walkWorkers() int {
	return 2 * runtime.GOMAXPROCS(0)
}

// walker lists directories in parallel into a tree of listings.
type walker struct {
	v *view
	g *errgroup.Group
	// jobs, when set, takes each listing to be digested (see walk).
	jobs chan *dirJob
}

// dirJob is a directory listed, for the digesters.
type dirJob struct {
	items []listItem
	des   dirEntries // to recycle once digested
}

// digestQueue bounds the listings waiting to be digested, and so the
// memory the walk runs ahead with.
const digestQueue = 128

// dirListing is one directory's children as the view shows them, sorted.
type dirListing struct {
	items []listItem
}

type listItem struct {
	e entry
	// excluded is a directory the filter leaves out, walked because an
	// exception may bring back something below it; it is kept only if
	// something is.
	excluded bool
	sub      *dirListing // the directory's own listing, nil when not walked
	srcRel   string      // the path relative to the root
}

// spawn lists rel into l on another goroutine when the group has room,
// else right here, returning the error of that.
func (w *walker) spawn(ctx context.Context, rel, sub string, l *dirListing) error {
	fn := func() error { return w.list(ctx, rel, sub, l) }
	if w.g.TryGo(fn) {
		return nil
	}
	return fn()
}

func (w *walker) list(ctx context.Context, rel, sub string, l *dirListing) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v := w.v
	des, err := listDir(v.host(rel), rel != "")
	if err != nil {
		return err
	}
	l.items = make([]listItem, 0, len(des.hosts))
	// A child's three paths are one string: its name is a single
	// component and rel, sub are clean, so sub is a suffix of rel, rel
	// of the host path.
	for i, h := range des.hosts {
		fi := &des.infos[i]
		childRel := h[len(h)-joinLen(rel, fi.name):]
		childSub := h[len(h)-joinLen(sub, fi.name):]
		if v.special(fi.mode) {
			continue
		}
		it := listItem{e: entry{rel: childSub, host: h, fi: fi}, srcRel: childRel}
		if v.filter != nil && !v.filter(childRel, fi.IsDir()) {
			if !fi.IsDir() || !v.mayDescend(childRel) {
				continue
			}
			it.excluded = true
		}
		if fi.IsDir() {
			it.sub = &dirListing{}
		}
		l.items = append(l.items, it)
	}
	if w.jobs != nil {
		// The digesters write only each item's digest and lstat, which
		// nothing below reads.
		select {
		case w.jobs <- &dirJob{items: l.items, des: des}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Subdirectories go to other goroutines while the group has room;
	// the rest this one walks itself, once its own directory is done.
	for i := range l.items {
		if it := &l.items[i]; it.sub != nil {
			if err := w.spawn(ctx, it.srcRel, it.e.rel, it.sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// joinLen returns len(path.Join(dir, name)) for a clean dir ("" for the
// root) and a single component name.
func joinLen(dir, name string) int {
	if dir == "" {
		return len(name)
	}
	return len(dir) + 1 + len(name)
}

// count returns how many entries flatten appends at most.
func (l *dirListing) count() int {
	n := len(l.items)
	for _, it := range l.items {
		if it.sub != nil {
			n += it.sub.count()
		}
	}
	return n
}

// flatten appends the listing's entries to out in walk order, leaving out
// excluded directories with nothing kept below them unless keepExcluded
// (see CopyRequest.Descend).
func (l *dirListing) flatten(out *[]*entry, keepExcluded bool) {
	for i := range l.items {
		it := &l.items[i]
		mark := len(*out)
		*out = append(*out, &it.e)
		if it.sub != nil {
			it.sub.flatten(out, keepExcluded)
		}
		if it.excluded && !keepExcluded && len(*out) == mark+1 {
			*out = (*out)[:mark]
		}
	}
}
