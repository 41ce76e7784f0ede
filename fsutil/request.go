package fsutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/builder-dev/builder/internal/user"
)

// CopyRequest is one COPY or ADD instruction, already expanded.
type CopyRequest struct {
	// SrcRoot is the source root: a build context directory, or the root
	// file system of another stage or image (a read-only mount).
	SrcRoot string
	// Sources are the source paths as written in the Dockerfile after
	// variable expansion, relative to SrcRoot. A leading "/" or "../" stays
	// inside SrcRoot. Wildcards follow path.Match, one path component each.
	Sources []string
	// Filter, when set, leaves context paths out: false excludes rel (slash
	// separated, relative to SrcRoot). NewIgnoreFilter builds it from a
	// .dockerignore.
	Filter func(rel string, isDir bool) bool
	// Descend, when set, names the directories Filter excluded that are
	// walked anyway, for what Filter keeps below them, and that appear
	// even when that is nothing: (*IgnoreMatcher).Descend gives BuildKit's
	// choice of them. Nil walks every excluded directory and keeps those
	// with something kept below them.
	Descend func(rel string) bool
	// Context says SrcRoot is a build context, which leaves named pipes
	// and sockets out, as BuildKit's transfer of the context does.
	Context bool
	// KeepOwners keeps the source's uid/gid when Chown is empty, as BuildKit
	// does for COPY --from. Leave it false for the build context, whose
	// owners BuildKit resets to 0:0 when it receives the context.
	KeepOwners bool

	// DstRoot is the destination root file system (a writable mount).
	DstRoot string
	// Dest is the absolute destination path; a trailing "/" (or "/.")
	// means "into this directory".
	Dest string
	// Chown is the --chown spec, resolved against DstRoot's /etc/passwd
	// and /etc/group; empty means 0:0 (or the source's, see KeepOwners).
	Chown string
	// Chmod is the --chmod value in octal ("755", "0755", "4755"); empty
	// keeps the source's modes.
	Chmod string
	// Extract, for ADD, receives the decompressed tar stream of a source
	// file that is a tar archive (plain, gzip, bzip2, xz or zstd, told by
	// its content) together with the host path of the destination
	// directory, instead of the file being copied. The extractor must keep
	// what it writes inside dstDir, as Docker chroots into it.
	Extract func(ctx context.Context, tarStream io.Reader, dstDir string) error

	// ReadSums, when set, returns what DigestEntries reads from a file
	// beyond its Lstat (content hash, symlink target, xattrs), so that a
	// stat cache can answer for unchanged files without reading them. It
	// is called concurrently. fi.Sys() is a *syscall.Stat_t; fi is only
	// valid during the call (the walk reuses its memory). Nil reads every
	// file (ReadFileSums).
	ReadSums func(ctx context.Context, hostPath string, fi os.FileInfo) (FileSums, error)
}

// selection is one selected source: a file, or a directory whose contents
// are copied.
type selection struct {
	name    string // the source path as selected, clean and absolute in SrcRoot
	entries []*entry
}

// selectSources resolves req.Sources in the view of SrcRoot. With dg, the
// walk digests entries as it lists them (see walker).
func (req *CopyRequest) selectSources(ctx context.Context, dg *digester) ([]selection, error) {
	if req.SrcRoot == "" {
		return nil, errors.New("copy: no source root")
	}
	if len(req.Sources) == 0 {
		return nil, errors.New("copy: no source files were specified")
	}
	v := &view{root: req.SrcRoot, filter: req.Filter, descend: req.Descend, noSpecial: req.Context}
	var out []selection
	for _, src := range req.Sources {
		name := path.Join("/", src)
		names := []string{name}
		if hasWildcards(name) {
			var err error
			if names, err = v.glob(ctx, name); err != nil {
				return nil, err
			}
			// As BuildKit: a pattern that matches nothing copies
			// nothing, and the step still succeeds.
		}
		for _, n := range names {
			rel, fi, err := v.resolve(ctx, n)
			if err != nil {
				return nil, err
			}
			entries, err := v.walk(ctx, rel, fi, dg.forSel(n))
			if err != nil {
				return nil, fmt.Errorf("copy %s: %w", n, err)
			}
			out = append(out, selection{name: n, entries: entries})
		}
	}
	if len(out) > 1 && !destIsDir(req.Dest) {
		return nil, fmt.Errorf("copy to %s: when copying more than one source file, the destination must be a directory and end with a /", req.Dest)
	}
	return out, nil
}

// destIsDir reports whether dest says "into this directory".
func destIsDir(dest string) bool {
	return dest == "" || dest == "." || strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.")
}

// parseChmod parses a --chmod value. BuildKit keeps the special bits
// (setuid, setgid, sticky) given in it.
func parseChmod(s string) (*uint32, error) {
	if s == "" {
		return nil, nil
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return nil, fmt.Errorf("invalid --chmod %q: want an octal mode such as 0755", s)
	}
	v := uint32(m)
	return &v, nil
}

// owner is an explicit --chown result.
type owner struct{ uid, gid int }

// resolveChown resolves req.Chown against DstRoot. Without DstRoot (a
// cache key computed before any destination exists) only numeric specs are
// resolved; a named one is returned as ok=false, and the caller keys on
// the spec itself.
func (req *CopyRequest) resolveChown() (o *owner, named bool, err error) {
	if req.Chown == "" {
		return nil, false, nil
	}
	if req.DstRoot == "" {
		u, g, hasGroup := strings.Cut(req.Chown, ":")
		uid, err1 := strconv.Atoi(u)
		gid, err2 := uid, error(nil)
		if hasGroup {
			gid, err2 = strconv.Atoi(g)
		}
		if err1 != nil || err2 != nil {
			return nil, true, nil
		}
		return &owner{uid, gid}, false, nil
	}
	uid, gid, err := user.ResolveChown(req.DstRoot, req.Chown)
	if err != nil {
		return nil, false, fmt.Errorf("resolve --chown %s: %w", req.Chown, err)
	}
	return &owner{uid, gid}, false, nil
}
