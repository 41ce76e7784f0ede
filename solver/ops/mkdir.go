package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/builder-dev/builder/internal/user"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/graph"
)

// mkdirOp is a WORKDIR: its directory and missing parents, made through
// the mounted snapshot. Like BuildKit it always makes a layer, empty when
// the directory exists.
type mkdirOp struct {
	r  *Resolver
	op *graph.Mkdir
}

func (m *mkdirOp) CacheMap(ctx context.Context, inputs []solver.Chain) (solver.CacheMap, error) {
	b, err := json.Marshal(m.op)
	return solver.CacheMap{Kind: "mkdir", Op: b}, err
}

func (m *mkdirOp) Exec(ctx context.Context, parent solver.Chain, inputs []solver.Chain, log io.Writer) (solver.Layer, error) {
	return m.r.layer(ctx, parent, m.mkdir)
}

// mkdir creates a WORKDIR and its missing parents, owned by the USER in
// effect as BuildKit does (resolved like --chown: a bare uid doubles as the
// gid, an unknown name is root); existing directories are left alone.
func (m *mkdirOp) mkdir(ctx context.Context, active *snapshot.Active) error {
	op := m.op
	dst, release, err := m.r.mountTemp(active.Mounts())
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
