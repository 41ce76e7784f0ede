package solver

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/fsutil"
	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/internal/user"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/snapshot/archive"
	"github.com/builder-dev/builder/solver/graph"
	"github.com/builder-dev/builder/store/cache"
)

// copySource is where a COPY reads from: the context directory, or the
// layers of a stage or an image (mounted read-only only when the copy runs).
type copySource struct {
	dir     string
	layers  []ocispec.Descriptor
	diffIDs []digest.Digest
}

// contextRequest returns a copy request over the build context with its
// .dockerignore rules applied.
func (b *build) contextRequest(op *graph.Copy) (fsutil.CopyRequest, error) {
	b.filterOnce.Do(func() {
		if len(b.opt.Ignore) > 0 {
			b.ignore, b.ignoreErr = fsutil.NewIgnoreMatcher(b.opt.Ignore)
		}
	})
	if b.ignoreErr != nil {
		return fsutil.CopyRequest{}, fmt.Errorf("read .dockerignore: %w", b.ignoreErr)
	}
	req := fsutil.CopyRequest{SrcRoot: b.opt.ContextDir, Context: true, Sources: op.Sources, Dest: op.Dest, Chown: op.Chown, Chmod: op.Chmod}
	if b.ignore != nil {
		req.Filter, req.Descend = b.ignore.Include, b.ignore.Descend
	}
	return req, nil
}

// copyInput finds a copy's source and the digest of what it reads, without
// touching any snapshot: the context's selected files are hashed, a stage is
// named by its cache key, an image by its manifest digest.
func (b *build) copyInput(ctx context.Context, op *graph.Copy) (copySource, digest.Digest, fsutil.Entries, error) {
	switch {
	case op.From.Context:
		if b.opt.ContextDir == "" {
			return copySource{}, "", nil, fmt.Errorf("no build context")
		}
		req, err := b.contextRequest(op)
		if err != nil {
			return copySource{}, "", nil, err
		}
		if b.stat != nil {
			req.ReadSums = b.stat.ReadSums
		}
		d, entries, err := fsutil.DigestEntries(ctx, req)
		if err != nil {
			return copySource{}, "", nil, err
		}
		return copySource{dir: b.opt.ContextDir}, d, entries, nil
	case op.From.Image != "":
		img, err := b.s.image(ctx, op.From.Image)
		if err != nil {
			return copySource{}, "", nil, err
		}
		return copySource{layers: img.layers, diffIDs: img.diffIDs}, img.manifest.Digest, nil, nil
	default:
		f, err := b.await(ctx, op.From.Stage)
		if err != nil {
			return copySource{}, "", nil, err
		}
		return copySource{layers: f.st.layers, diffIDs: f.st.diffIDs}, f.st.key, nil, nil
	}
}

// open returns the source root, mounting a read-only view for stage and
// image sources; release undoes it.
func (b *build) openSource(ctx context.Context, src copySource) (string, func(), error) {
	if src.dir != "" {
		return src.dir, func() {}, nil
	}
	c, err := b.s.Snap.Materialize(ctx, b.s.Store, src.layers, src.diffIDs)
	if err != nil {
		return "", nil, err
	}
	return b.s.mountTemp(b.s.Snap.View(c))
}

// mountTemp mounts ms at a fresh directory under the store's tmp dir. File
// operations run in the builder process, so these mounts are on the host;
// release always unmounts and removes the directory.
func (s *Solver) mountTemp(ms []mount.Mount) (string, func(), error) {
	dir, err := os.MkdirTemp(s.Store.TmpDir(), "mnt-")
	if err != nil {
		return "", nil, fmt.Errorf("make mount point: %w", err)
	}
	if err := mount.All(ms, dir); err != nil {
		os.Remove(dir)
		return "", nil, err
	}
	crashpoint.Hit("solver.copy.mounted")
	return dir, func() {
		_ = mount.Unmount(dir)
		_ = os.Remove(dir)
	}, nil
}

func (b *build) copy(ctx context.Context, op *graph.Copy, src copySource, active *snapshot.Active) error {
	srcRoot, releaseSrc, err := b.openSource(ctx, src)
	if err != nil {
		return err
	}
	defer releaseSrc()
	dst, err := b.directDest(op, active)
	if err != nil {
		return err
	}
	if dst == "" {
		mounted, releaseDst, err := b.s.mountTemp(active.Mounts())
		if err != nil {
			return err
		}
		defer releaseDst()
		dst = mounted
	}
	req := fsutil.CopyRequest{
		SrcRoot: srcRoot,
		Sources: op.Sources,
		Dest:    op.Dest,
		Chown:   op.Chown,
		Chmod:   op.Chmod,
		// Files from another stage or image keep their owners, as in BuildKit.
		KeepOwners: true,
	}
	if op.From.Context {
		if req, err = b.contextRequest(op); err != nil {
			return err
		}
	}
	req.DstRoot = dst
	if op.Add {
		// As BuildKit: --chown applies to the directory an archive is
		// unpacked into, while the unpacked entries keep the archive's owners.
		req.Extract = func(ctx context.Context, r io.Reader, dir string) error {
			_, err := archive.Apply(ctx, dir, r, archive.ApplyOptions{NoWhiteouts: true})
			return err
		}
	}
	return fsutil.Copy(ctx, req)
}

// directDest returns the active snapshot's upper directory when the copy
// can write there directly, "" when it must go through the mounted
// snapshot. Writing through overlayfs costs about 2.5 times as much per
// file as writing to the upper directory; it is needed only where the
// lower layers have something to merge with, replace or hide. So a COPY
// whose destination's top-level directory no layer has (COPY . /src, the
// first COPY into /app) writes its tree directly. Not for ADD (an archive
// could carry overlay xattrs, which only the mount refuses) nor --chown
// (which reads the image's /etc/passwd and /etc/group).
func (b *build) directDest(op *graph.Copy, active *snapshot.Active) (string, error) {
	if op.Add || op.Chown != "" {
		return "", nil
	}
	top, _, _ := strings.Cut(strings.TrimLeft(path.Clean("/"+op.Dest), "/"), "/")
	if top == "" {
		return "", nil // the root itself
	}
	absent, err := b.s.Snap.Absent(active.Parent(), top)
	if err != nil {
		return "", fmt.Errorf("look for /%s in the layers below: %w", top, err)
	}
	if !absent {
		return "", nil
	}
	return active.UpperDir(), nil
}

// mkdir creates a WORKDIR and its missing parents, owned by the USER in
// effect as BuildKit does (resolved like --chown: a bare uid doubles as the
// gid, an unknown name is root); existing directories are left alone.
func (b *build) mkdir(ctx context.Context, op *graph.Mkdir, active *snapshot.Active) error {
	dst, release, err := b.s.mountTemp(active.Mounts())
	if err != nil {
		return err
	}
	defer release()
	uid, gid, err := user.ResolveChown(dst, op.User)
	if err != nil {
		return err
	}
	if err := mkdirAll(dst, op.Path, uid, gid, 0); err != nil {
		return err
	}
	return ctx.Err()
}

// mkdirAll makes dir and its missing parents inside the root dst, each
// 0755 and owned by uid:gid. A component that is a symlink is followed
// inside the root; one whose target does not exist yet (a dangling link,
// as BuildKit allows) gets that target made, parents and all.
func mkdirAll(dst, dir string, uid, gid, depth int) error {
	if depth > 40 {
		return fmt.Errorf("mkdir %s: too many levels of symbolic links", dir)
	}
	cur := "/"
	for _, part := range strings.Split(strings.Trim(path.Clean(dir), "/"), "/") {
		if part == "" {
			continue
		}
		cur = path.Join(cur, part)
		p, err := securejoin.SecureJoin(dst, cur)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", cur, err)
		}
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("mkdir %s: not a directory", cur)
			}
			continue
		}
		if !os.IsNotExist(err) {
			return err
		}
		// A dangling link resolves to a path whose parents may be
		// missing too: make them, inside the root, first.
		parent := filepath.Dir(p)
		if _, err := os.Lstat(parent); os.IsNotExist(err) {
			rel, err := filepath.Rel(dst, parent)
			if err != nil {
				return err
			}
			if err := mkdirAll(dst, "/"+rel, uid, gid, depth+1); err != nil {
				return err
			}
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", cur, err)
		}
		// Mkdir honours the umask; WORKDIR dirs are always 0755.
		if err := os.Chmod(p, 0o755); err != nil {
			return fmt.Errorf("chmod %s: %w", cur, err)
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", cur, err)
		}
	}
	return nil
}

// cacheFiles are a copy's entries as a cache record keeps them. Only a
// missed step needs them: a no-op rebuild of a large context does not
// make a list as long as the context.
func cacheFiles(list fsutil.Entries) []cache.File {
	if list == nil {
		return nil
	}
	entries := list()
	files := make([]cache.File, len(entries))
	for i, e := range entries {
		files[i] = cache.File{Path: e.Path, Digest: e.Digest}
	}
	return files
}
