package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/fsutil"
	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/snapshot/archive"
	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/graph"
	"github.com/builder-dev/builder/store/cache"
)

// copyOp is a COPY or ADD: a file operation in the builder process, from
// the context or a read-only view of a stage or an image.
type copyOp struct {
	r  *Resolver
	op *graph.Copy
}

// CacheMap hashes what the copy reads without touching any snapshot: the
// context's selected files are hashed, a stage is named by its cache key,
// an image by its ID (inputs[0].Key).
func (c *copyOp) CacheMap(ctx context.Context, inputs []solver.Chain) (solver.CacheMap, error) {
	cm := solver.CacheMap{Kind: "copy"}
	if c.op.From.Context {
		d, entries, err := c.r.digestContext(ctx, c.op)
		if err != nil {
			return solver.CacheMap{}, err
		}
		cm.Input = d
		cm.Files = func() []cache.File { return cacheFiles(entries) }
	} else {
		if len(inputs) != 1 {
			return solver.CacheMap{}, fmt.Errorf("copy from a stage or image: %d inputs, want 1", len(inputs))
		}
		cm.Input = inputs[0].Key
	}
	var err error
	cm.Op, err = json.Marshal(c.op)
	return cm, err
}

func (c *copyOp) Exec(ctx context.Context, parent solver.Chain, inputs []solver.Chain, log io.Writer) (solver.Layer, error) {
	src := copySource{dir: c.r.cfg.ContextDir}
	if !c.op.From.Context {
		if len(inputs) != 1 {
			return solver.Layer{}, fmt.Errorf("copy from a stage or image: %d inputs, want 1", len(inputs))
		}
		src = copySource{layers: inputs[0].Layers, diffIDs: inputs[0].DiffIDs}
	}
	return c.r.layer(ctx, parent, func(ctx context.Context, active *snapshot.Active) error {
		return c.r.copy(ctx, c.op, src, active)
	})
}

// copySource is where a COPY reads from: the context directory, or the
// layers of a stage or an image (mounted read-only only when the copy runs).
type copySource struct {
	dir     string
	layers  []ocispec.Descriptor
	diffIDs []digest.Digest
}

// contextRequest returns a copy request over the build context with its
// .dockerignore rules applied.
func (r *Resolver) contextRequest(op *graph.Copy) (fsutil.CopyRequest, error) {
	r.ignoreOnce.Do(func() {
		if len(r.cfg.Ignore) > 0 {
			r.ignore, r.ignoreErr = fsutil.NewIgnoreMatcher(r.cfg.Ignore)
		}
	})
	if r.ignoreErr != nil {
		return fsutil.CopyRequest{}, fmt.Errorf("read .dockerignore: %w", r.ignoreErr)
	}
	req := fsutil.CopyRequest{SrcRoot: r.cfg.ContextDir, Context: true, Sources: op.Sources, Dest: op.Dest, Chown: op.Chown, Chmod: op.Chmod}
	if r.ignore != nil {
		req.Filter, req.Descend = r.ignore.Include, r.ignore.Descend
	}
	return req, nil
}

// digestContext hashes the context files a copy selects, through the
// stat-cache when there is one.
func (r *Resolver) digestContext(ctx context.Context, op *graph.Copy) (digest.Digest, fsutil.Entries, error) {
	if r.cfg.ContextDir == "" {
		return "", nil, fmt.Errorf("no build context")
	}
	req, err := r.contextRequest(op)
	if err != nil {
		return "", nil, err
	}
	if r.stat != nil {
		req.ReadSums = r.stat.ReadSums
	}
	return fsutil.DigestEntries(ctx, req)
}

// open returns the source root, mounting a read-only view for stage and
// image sources; release undoes it.
func (r *Resolver) openSource(ctx context.Context, src copySource) (string, func(), error) {
	if src.dir != "" {
		return src.dir, func() {}, nil
	}
	c, err := r.cfg.Snap.Materialize(ctx, r.layers(), src.layers, src.diffIDs)
	if err != nil {
		return "", nil, err
	}
	return r.mountTemp(r.cfg.Snap.View(c))
}

// mountTemp mounts ms at a fresh directory under the store's tmp dir. File
// operations run in the builder process, so these mounts are on the host;
// release always unmounts and removes the directory.
func (r *Resolver) mountTemp(ms []mount.Mount) (string, func(), error) {
	dir, err := os.MkdirTemp(r.cfg.Store.TmpDir(), "mnt-")
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

func (r *Resolver) copy(ctx context.Context, op *graph.Copy, src copySource, active *snapshot.Active) error {
	srcRoot, releaseSrc, err := r.openSource(ctx, src)
	if err != nil {
		return err
	}
	defer releaseSrc()
	dst, err := r.directDest(op, active)
	if err != nil {
		return err
	}
	if dst == "" {
		mounted, releaseDst, err := r.mountTemp(active.Mounts())
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
		if req, err = r.contextRequest(op); err != nil {
			return err
		}
	}
	req.DstRoot = dst
	if op.Add {
		// As BuildKit: --chown applies to the directory an archive is
		// unpacked into, while the unpacked entries keep the archive's owners.
		req.Extract = func(ctx context.Context, tr io.Reader, dir string) error {
			_, err := archive.Apply(ctx, dir, tr, archive.ApplyOptions{NoWhiteouts: true})
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
func (r *Resolver) directDest(op *graph.Copy, active *snapshot.Active) (string, error) {
	if op.Add || op.Chown != "" {
		return "", nil
	}
	top, _, _ := strings.Cut(strings.TrimLeft(path.Clean("/"+op.Dest), "/"), "/")
	if top == "" {
		return "", nil // the root itself
	}
	absent, err := r.cfg.Snap.Absent(active.Parent(), top)
	if err != nil {
		return "", fmt.Errorf("look for /%s in the layers below: %w", top, err)
	}
	if !absent {
		return "", nil
	}
	return active.UpperDir(), nil
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
