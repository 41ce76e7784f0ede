package container

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// ChangeKind is what happened to a path, as `docker diff` letters it.
type ChangeKind int

// The kinds of change.
const (
	Modified ChangeKind = iota // C
	Added                      // A
	Deleted                    // D
)

func (k ChangeKind) String() string {
	switch k {
	case Added:
		return "A"
	case Deleted:
		return "D"
	}
	return "C"
}

// Change is one line of `diff`: a path (absolute, in the container) and
// what happened to it.
type Change struct {
	Kind ChangeKind
	Path string
}

func (c Change) String() string { return c.Kind.String() + " " + c.Path }

// DiffOptions tune Diff.
type DiffOptions struct {
	// Stubs are paths (relative to the root, slash-separated) that may be
	// mount points the runner created in the upper dir of a running
	// container. Such a path, when it is new and empty (an empty file or
	// directory), is left out, and so is a directory copied up only
	// because one was created in it.
	Stubs []string
}

// Diff lists the changes the overlay upper dir makes over the layer
// directories lowers (top layer first, in overlay form), sorted by path:
// a path new to the lowers is Added, one they have is Modified, a whiteout
// is Deleted; an opaque directory is Modified (Added if new) and every
// name the lowers have in it that the upper does not is Deleted. Parent
// directories of changes are in the upper dir, copied up, and so show as
// Modified, as Docker shows them.
func Diff(ctx context.Context, upper string, lowers []string, opts DiffOptions) ([]Change, error) {
	changes, _, err := diff(ctx, upper, lowers, opts)
	return changes, err
}

// diff is Diff that also returns the upper paths (relative) it left out as
// stubs, and the directories left out as copied up only for them.
func diff(ctx context.Context, upper string, lowers []string, opts DiffOptions) ([]Change, map[string]bool, error) {
	low := lowerFS(lowers)
	stubs := map[string]bool{}
	for _, s := range opts.Stubs {
		if s = strings.Trim(filepath.ToSlash(filepath.Clean("/"+s)), "/"); s != "" {
			stubs[s] = true
		}
	}
	var changes []Change
	var candidates []string // new entries at stub paths
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(upper, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if isWhiteout(&st) {
			changes = append(changes, Change{Deleted, "/" + rel})
			return nil
		}
		inLower := low.exists(rel)
		kind := Added
		if inLower {
			kind = Modified
		} else if stubs[rel] {
			candidates = append(candidates, rel)
		}
		changes = append(changes, Change{kind, "/" + rel})
		if d.IsDir() && inLower && isOpaque(p) {
			// The lowers' entries this directory hid and the upper did
			// not put back are gone.
			for _, name := range low.list(rel) {
				if _, err := os.Lstat(filepath.Join(p, name)); errors.Is(err, fs.ErrNotExist) {
					changes = append(changes, Change{Deleted, "/" + rel + "/" + name})
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	skipped := stubsIn(upper, candidates)
	if len(skipped) > 0 {
		changes = slices.DeleteFunc(changes, func(c Change) bool { return skipped[strings.TrimPrefix(c.Path, "/")] })
		changes = dropStubParents(changes, skipped)
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	return changes, skipped, nil
}

// dropStubParents removes the Modified directories that hold a skipped
// stub and no other change: they were copied up only to make the stub.
// Their relative paths join skipped.
func dropStubParents(changes []Change, skipped map[string]bool) []Change {
	hasChangeBelow := map[string]bool{}
	hasStubBelow := map[string]bool{}
	mark := func(m map[string]bool, rel string) {
		for dir := filepath.Dir(rel); dir != "." && dir != "/"; dir = filepath.Dir(dir) {
			m[dir] = true
		}
	}
	for _, c := range changes {
		mark(hasChangeBelow, strings.TrimPrefix(c.Path, "/"))
	}
	for s := range skipped {
		mark(hasStubBelow, s)
	}
	out := changes[:0]
	for _, c := range changes {
		rel := strings.TrimPrefix(c.Path, "/")
		if c.Kind == Modified && hasStubBelow[rel] && !hasChangeBelow[rel] {
			skipped[rel] = true
			continue
		}
		out = append(out, c)
	}
	return out
}

// stubsIn returns which of the new entries at stub paths (relative to
// upper) look like mount points the runner made: empty files, and
// directories holding nothing but such stubs (the runner makes the
// missing parents of a mount point too).
func stubsIn(upper string, candidates []string) map[string]bool {
	skipped := map[string]bool{}
	// Children before parents.
	sort.Slice(candidates, func(i, j int) bool { return len(candidates[i]) > len(candidates[j]) })
	for _, rel := range candidates {
		p := filepath.Join(upper, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			skipped[rel] = st.Size == 0
		case unix.S_IFDIR:
			names, err := readNames(p)
			skipped[rel] = err == nil && !slices.ContainsFunc(names, func(n string) bool { return !skipped[rel+"/"+n] })
		}
	}
	for rel, ok := range skipped {
		if !ok {
			delete(skipped, rel)
		}
	}
	return skipped
}

// isWhiteout: overlayfs marks a deleted entry with a 0/0 character device.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// isOpaque: overlayfs marks a directory that hides the lowers' content
// with trusted.overlay.opaque=y.
func isOpaque(p string) bool {
	buf := make([]byte, 4)
	n, err := unix.Lgetxattr(p, "trusted.overlay.opaque", buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// lowerFS is a stack of overlay-form layer directories, top first, read
// as overlayfs merges them. Paths are walked one component at a time with
// lstat, so a symlink in a layer is never followed.
type lowerFS []string

// probe looks for rel (components parts) in one layer: found when the
// layer has it; stop when the layer hides it from the layers below (a
// whiteout of it or of a parent, a non-directory parent, or an opaque
// parent without it).
func probe(layer string, parts []string) (found, stop bool) {
	p := layer
	opaque := false
	for i, name := range parts {
		p = filepath.Join(p, name)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return false, opaque
		}
		if isWhiteout(&st) {
			return false, true
		}
		if i == len(parts)-1 {
			return true, false
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return false, true
		}
		if isOpaque(p) {
			opaque = true
		}
	}
	return true, false // the root
}

func split(rel string) []string {
	if rel == "" {
		return nil
	}
	return strings.Split(rel, "/")
}

// exists reports whether the merged lowers have rel.
func (l lowerFS) exists(rel string) bool {
	parts := split(rel)
	for _, layer := range l {
		found, stop := probe(layer, parts)
		if found {
			return true
		}
		if stop {
			return false
		}
	}
	return false
}

// list returns the names in the merged lowers' directory rel.
func (l lowerFS) list(rel string) []string {
	parts := split(rel)
	seen := map[string]bool{}
	var names []string
	for _, layer := range l {
		found, stop := probe(layer, parts)
		if stop {
			break
		}
		if !found {
			continue
		}
		dir := filepath.Join(layer, rel)
		var st unix.Stat_t
		if err := unix.Lstat(dir, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			break // a non-directory hides the lower directories
		}
		entries, _ := readNames(dir)
		sort.Strings(entries)
		for _, n := range entries {
			if seen[n] {
				continue
			}
			seen[n] = true // a whiteout hides n below too
			var est unix.Stat_t
			if unix.Lstat(filepath.Join(dir, n), &est) == nil && !isWhiteout(&est) {
				names = append(names, n)
			}
		}
		if isOpaque(dir) {
			break
		}
	}
	sort.Strings(names)
	return names
}
