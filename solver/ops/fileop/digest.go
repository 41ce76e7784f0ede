package fileop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strconv"
	"syscall"

	digest "github.com/opencontainers/go-digest"
)

// Digest computes the content digest of what Copy(ctx, req) would copy, for
// cache keys. Per selected source it covers the source path, then per entry
// its path below the source, type, mode (after Chmod), uid/gid (after
// Chown; 0:0 for the context, the source's with KeepOwners), symlink
// target, device numbers, hard-link grouping, xattrs and the sha256 of a
// regular file's content. Mtimes never enter it, nor does Dest: the caller
// keys the instruction's parameters itself.
//
// DstRoot may be empty (the key is computed before a destination exists):
// a numeric Chown is then used as is, and a named one enters the digest as
// written.
func Digest(ctx context.Context, req CopyRequest) (digest.Digest, error) {
	mode, err := parseChmod(req.Chmod)
	if err != nil {
		return "", err
	}
	chown, named, err := req.resolveChown()
	if err != nil {
		return "", err
	}
	sels, err := req.selectSources(ctx)
	if err != nil {
		return "", err
	}
	d := &digester{ctx: ctx, req: &req, h: sha256.New(), links: map[inode]string{}}
	c := &copier{req: &req, mode: mode, chown: chown}
	if named {
		d.record("chown", req.Chown)
	}
	for _, s := range sels {
		d.record("source", s.name)
		for _, e := range s.entries {
			if err := d.entry(c, s, e); err != nil {
				return "", err
			}
		}
	}
	return digest.NewDigest(digest.SHA256, d.h), nil
}

type digester struct {
	ctx   context.Context
	req   *CopyRequest
	h     hash.Hash
	links map[inode]string
}

// record writes one record: its fields quoted, so no field can run into
// the next whatever bytes a file name holds.
func (d *digester) record(fields ...string) {
	for i, f := range fields {
		if i > 0 {
			d.h.Write([]byte{' '})
		}
		d.h.Write([]byte(strconv.Quote(f)))
	}
	d.h.Write([]byte{'\n'})
}

func (d *digester) entry(c *copier, s selection, e entry) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	st := e.fi.Sys().(*syscall.Stat_t)
	uid, gid := c.owner(st)
	mode := st.Mode & 0o7777
	if c.mode != nil && e.fi.Mode()&os.ModeSymlink == 0 {
		mode = *c.mode
	}
	if e.fi.Mode()&os.ModeSymlink != 0 {
		mode = 0o777 // a symlink's own mode means nothing on Linux
	}
	fields := []string{"entry", e.rel, typeChar(e.fi.Mode()), strconv.FormatUint(uint64(mode), 8),
		strconv.Itoa(uid), strconv.Itoa(gid)}
	switch {
	case e.fi.Mode().IsRegular():
		key := inode{uint64(st.Dev), st.Ino}
		if first, ok := d.links[key]; ok && st.Nlink > 1 {
			fields = append(fields, "hardlink", first)
			break
		}
		if st.Nlink > 1 {
			d.links[key] = path.Join(s.name, e.rel)
		}
		dg, err := d.content(e)
		if err != nil {
			return err
		}
		fields = append(fields, "content", dg.String())
	case e.fi.Mode()&os.ModeSymlink != 0:
		link, err := os.Readlink(e.host)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", path.Join(s.name, e.rel), err)
		}
		fields = append(fields, "link", link)
	case e.fi.Mode()&(os.ModeDevice|os.ModeCharDevice) != 0:
		fields = append(fields, "rdev", strconv.FormatUint(uint64(st.Rdev), 10))
	}
	xs, err := readXattrs(e.host)
	if err != nil {
		return fmt.Errorf("%s: %w", path.Join(s.name, e.rel), err)
	}
	for _, x := range xs {
		fields = append(fields, "xattr", x.name, hex.EncodeToString(x.value))
	}
	d.record(fields...)
	return nil
}

func (d *digester) content(e entry) (digest.Digest, error) {
	if d.req.ContentDigest != nil {
		return d.req.ContentDigest(d.ctx, e.host, e.fi)
	}
	f, err := os.Open(e.host)
	if err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", e.host, err)
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

func typeChar(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "d"
	case m&os.ModeSymlink != 0:
		return "l"
	case m&os.ModeCharDevice != 0:
		return "c"
	case m&os.ModeDevice != 0:
		return "b"
	case m&os.ModeNamedPipe != 0:
		return "p"
	case m&os.ModeSocket != 0:
		return "s"
	}
	return "f"
}
