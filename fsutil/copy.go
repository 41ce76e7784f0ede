package fsutil

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Copy carries out req: it selects the sources in SrcRoot and writes them
// under Dest in DstRoot, with BuildKit's rules:
//
//   - a directory source copies its contents; the directory itself is not
//     recreated, and Dest, when missing, is made like a parent;
//   - a file source lands in Dest when Dest is an existing directory or
//     ends in "/", and is named Dest otherwise;
//   - more than one source needs a Dest ending in "/";
//   - the source path follows symlinks (inside SrcRoot), symlinks below it
//     are copied as symlinks; Dest follows symlinks inside DstRoot, paths
//     below it never do;
//   - missing parents are made 0755, owned by the --chown owner or 0:0;
//     existing directories keep their metadata, except those below a
//     directory source, which take the source's;
//   - a file replaces what is there unless that is a directory; a directory
//     merges into an existing one and fails on anything else.
func Copy(ctx context.Context, req CopyRequest) error {
	if req.DstRoot == "" || req.Dest == "" {
		return errors.New("copy: no destination")
	}
	mode, err := parseChmod(req.Chmod)
	if err != nil {
		return err
	}
	chown, _, err := req.resolveChown()
	if err != nil {
		return err
	}
	sels, err := req.selectSources(ctx, nil)
	if err != nil {
		return err
	}
	c := &copier{req: &req, mode: mode, chown: chown, links: map[inode]string{}}
	for _, s := range sels {
		if req.Extract != nil {
			done, err := c.extract(ctx, s)
			if err != nil {
				return err
			}
			if done {
				continue
			}
		}
		if err := c.copySelection(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

type inode struct{ dev, ino uint64 }

type copier struct {
	req   *CopyRequest
	mode  *uint32 // --chmod
	chown *owner  // --chown
	// links maps a source inode already copied to where it went, so that
	// hard links stay hard links.
	links map[inode]string
	// fresh holds the directories this selection's copy made: nothing
	// else is in them, so what goes in needs no check for something to
	// replace. Written only while directories are made, before files are
	// copied in parallel.
	fresh map[string]bool
	// acl holds the fresh directories with a default ACL, which sets the
	// mode of what is created in them (see newFileMeta).
	acl map[string]bool
	// noCopyRange is set once copy_file_range said it cannot copy
	// between these two trees (see copyData).
	noCopyRange atomic.Bool
}

// show turns a host path under DstRoot back into the path the user wrote
// against, for errors.
func (c *copier) show(host string) string {
	rel, err := filepath.Rel(c.req.DstRoot, host)
	if err != nil || strings.HasPrefix(rel, "..") {
		return host
	}
	return path.Join("/", filepath.ToSlash(rel))
}

// dirOwner is the owner of a parent directory the copy makes.
func (c *copier) dirOwner() (int, int) {
	if c.chown != nil {
		return c.chown.uid, c.chown.gid
	}
	return 0, 0
}

// mkdirAll makes the directory p (absolute, inside DstRoot) and its missing
// parents, resolving each one inside DstRoot so that a symlink on the way
// leads where it points within the root, never out of it. It returns the
// host path.
func (c *copier) mkdirAll(p string) (string, error) {
	cur := "/"
	host := c.req.DstRoot
	for _, part := range splitPath(path.Clean(p)) {
		if part == "" {
			continue
		}
		cur = path.Join(cur, part)
		h, err := securejoin.SecureJoin(c.req.DstRoot, cur)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", cur, err)
		}
		fi, err := os.Stat(h)
		switch {
		case err == nil && fi.IsDir():
		case err == nil:
			return "", fmt.Errorf("mkdir %s: %w", cur, syscall.ENOTDIR)
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(h, 0o755); err != nil {
				return "", fmt.Errorf("mkdir %s: %w", cur, err)
			}
			// Mkdir honours the umask; BuildKit's parents are 0755.
			if err := unix.Chmod(h, 0o755); err != nil {
				return "", fmt.Errorf("chmod %s: %w", cur, err)
			}
			uid, gid := c.dirOwner()
			if err := unix.Lchown(h, uid, gid); err != nil {
				return "", fmt.Errorf("chown %s: %w", cur, err)
			}
		default:
			return "", fmt.Errorf("stat %s: %w", cur, err)
		}
		host = h
	}
	return host, nil
}

// copySelection places one selected source, as fsutil's Copy and
// prepareTargetDir do in BuildKit.
func (c *copier) copySelection(ctx context.Context, s selection) error {
	dest := path.Join("/", c.req.Dest)
	// The directory Dest names ("/a/b/"), or else Dest's parent, is made
	// first, owned like any parent.
	ensure := path.Dir(dest)
	if destIsDir(c.req.Dest) {
		ensure = dest
	}
	if _, err := c.mkdirAll(ensure); err != nil {
		return err
	}
	// Dest itself follows symlinks too: COPY f /link where /link points to
	// a file overwrites that file (case 021).
	dst, err := securejoin.SecureJoin(c.req.DstRoot, dest)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", dest, err)
	}
	srcIsDir := s.entries[0].fi.IsDir()
	dfi, err := os.Stat(dst)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", dest, err)
	}
	exists := err == nil
	if !srcIsDir && exists && dfi.IsDir() {
		dst = filepath.Join(dst, path.Base(s.name))
	}
	// Make what holds the target: Dest itself for a directory source, else
	// its parent, which differs from the one made above when Dest is a
	// symlink pointing elsewhere.
	// Nothing to make when Dest exists: that would be its parent, which
	// for Dest "/" is outside DstRoot (and c.show would hand mkdirAll the
	// host path, to be made again inside the root).
	if !exists {
		holder := filepath.Dir(dst)
		if srcIsDir {
			holder = dst
		}
		if _, err := c.mkdirAll(c.show(holder)); err != nil {
			return err
		}
	}
	targetOf := func(e entry) string {
		if e.rel == "" {
			return dst
		}
		return filepath.Join(dst, filepath.FromSlash(e.rel))
	}
	// Entries are handled in walk order, but regular files and symlinks
	// go to other goroutines: a large COPY is thousands of files, each a
	// dozen syscalls, most of them waiting on the file system. Directories
	// stay in order (each made, and given its metadata, before anything
	// goes into it, see copyEntry), and so do files that share an inode
	// (the first path of an inode is copied, the others link to it). When
	// an entry fails, those before it are finished and none after it
	// started, as in a serial copy; only a file failing on another
	// goroutine can leave later entries written too.
	c.fresh, c.acl = map[string]bool{}, map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(copyWorkers())
	for _, ep := range s.entries {
		e := *ep
		target := targetOf(e)
		parent := filepath.Dir(target)
		inFresh := c.fresh[parent] && !c.acl[parent]
		mode := e.fi.Mode()
		async := mode&os.ModeSymlink != 0 ||
			(mode.IsRegular() && e.fi.Sys().(*syscall.Stat_t).Nlink == 1)
		if async {
			g.Go(func() error { return c.copyEntry(gctx, e, target, inFresh) })
			continue
		}
		if err := c.copyEntry(gctx, e, target, inFresh); err != nil {
			if werr := g.Wait(); werr != nil && !errors.Is(werr, context.Canceled) {
				return werr
			}
			return err
		}
	}
	return g.Wait()
}

// copyWorkers bounds the goroutines copying files: copying is mostly time
// in syscalls, which a goroutine spends off its P, so a few more than
// GOMAXPROCS keep the CPUs busy.
func copyWorkers() int {
	return 2 * runtime.GOMAXPROCS(0)
}

// copyEntry writes e at target. Target's parent is a directory this copy
// resolved or made (inFresh: made, and so empty but for what this copy
// put there); target itself is never followed.
func (c *copier) copyEntry(ctx context.Context, e entry, target string, inFresh bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi := e.fi
	// In a directory this copy made, nothing is there to merge with or
	// replace: no need to look.
	if fi.IsDir() {
		var tfi os.FileInfo
		err := fs.ErrNotExist
		if !inFresh {
			tfi, err = os.Lstat(target)
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(target, 0o700); err != nil {
				return fmt.Errorf("mkdir %s: %w", c.show(target), err)
			}
			c.fresh[target] = true // copyEntry runs on the walk's goroutine for directories
		case err != nil:
			return fmt.Errorf("lstat %s: %w", c.show(target), err)
		case !tfi.IsDir():
			// BuildKit does not follow a symlink here either (a /lib ->
			// usr/lib link in the image makes "COPY rootfs/ /" fail).
			return fmt.Errorf("cannot copy to non-directory: %s", c.show(target))
		case e.rel == "":
			// Dest that already exists keeps its own metadata.
			return nil
		}
		// Metadata goes on before the children are written, so a directory
		// that gets children carries the time of the copy, and an empty one
		// the source's, as BuildKit's results show.
		if err := c.setMeta(e, target); err != nil {
			return err
		}
		if c.fresh[target] {
			if _, err := unix.Lgetxattr(target, "system.posix_acl_default", nil); err == nil {
				c.acl[target] = true
			}
		}
		return nil
	}

	// A non-directory replaces whatever non-directory is there.
	if !inFresh {
		if tfi, err := os.Lstat(target); err == nil {
			if tfi.IsDir() {
				return fmt.Errorf("cannot replace directory %s with a file", c.show(target))
			}
			if err := os.Remove(target); err != nil {
				return fmt.Errorf("remove %s: %w", c.show(target), err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lstat %s: %w", c.show(target), err)
		}
	}

	st := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode().IsRegular():
		if st.Nlink == 1 {
			// The common case, and the one copySelection runs on other
			// goroutines: it must not touch c.links.
			return c.copyRegular(e.host, target, st, inFresh)
		}
		key := inode{uint64(st.Dev), st.Ino}
		if first, ok := c.links[key]; ok {
			if err := os.Link(first, target); err == nil {
				return nil
			}
			// The first copy was replaced or moved since: copy anew.
		}
		if err := c.copyRegular(e.host, target, st, inFresh); err != nil {
			return err
		}
		c.links[key] = target
		return nil
	case fi.Mode()&os.ModeSymlink != 0:
		link, err := os.Readlink(e.host)
		if err != nil {
			return fmt.Errorf("readlink: %w", err)
		}
		if err := os.Symlink(link, target); err != nil {
			return fmt.Errorf("symlink %s: %w", c.show(target), err)
		}
	case fi.Mode()&(os.ModeDevice|os.ModeNamedPipe|os.ModeSocket) != 0:
		// Mode carries the file type; permissions are set with the rest
		// of the metadata.
		if err := unix.Mknod(target, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return fmt.Errorf("mknod %s: %w", c.show(target), err)
		}
	default:
		return fmt.Errorf("copy %s: unsupported file type %s", c.show(target), fi.Mode().Type())
	}
	return c.setMeta(e, target)
}

// owner returns the uid/gid a copied entry gets.
func (c *copier) owner(st *syscall.Stat_t) (int, int) {
	switch {
	case c.chown != nil:
		return c.chown.uid, c.chown.gid
	case c.req.KeepOwners:
		return int(st.Uid), int(st.Gid)
	default:
		return 0, 0
	}
}

// setMeta gives target e's owner, mode, xattrs and times. The order
// matters: chown clears setuid/setgid and security.capability, so the mode
// and xattrs come after it; times come last.
func (c *copier) setMeta(e entry, target string) error {
	st := e.fi.Sys().(*syscall.Stat_t)
	uid, gid := c.owner(st)
	if err := unix.Lchown(target, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", c.show(target), err)
	}
	if e.fi.Mode()&os.ModeSymlink == 0 {
		mode := st.Mode & 0o7777
		if c.mode != nil {
			mode = *c.mode
		}
		// target is something this copy made or checked to be a directory,
		// so chmod following it is safe.
		if err := unix.Chmod(target, mode); err != nil {
			return fmt.Errorf("chmod %s: %w", c.show(target), err)
		}
	}
	if err := copyXattrs(e.host, target); err != nil {
		return fmt.Errorf("copy xattrs to %s: %w", c.show(target), err)
	}
	ts := []unix.Timespec{unix.Timespec(st.Atim), unix.Timespec(st.Mtim)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times on %s: %w", c.show(target), err)
	}
	return nil
}
