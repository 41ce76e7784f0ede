package fsutil

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// compression is how an archive is compressed, told by its first bytes.
type compression int

const (
	uncompressed compression = iota
	gzipped
	bzipped
	xzed
	zstded
)

var magics = []struct {
	c     compression
	magic []byte
}{
	{gzipped, []byte{0x1f, 0x8b, 0x08}},
	{bzipped, []byte("BZh")},
	{xzed, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{zstded, []byte{0x28, 0xb5, 0x2f, 0xfd}},
}

// decompress returns the decompressed stream of r, whatever of Docker's
// compressions it uses; close releases the decoder.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(6) // a short file is simply uncompressed
	c := uncompressed
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			c = m.c
			break
		}
	}
	switch c {
	case gzipped:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case bzipped:
		return bzip2.NewReader(br), func() {}, nil
	case xzed:
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return xr, func() {}, nil
	case zstded:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// isTarArchive reports whether the file at p is a tar archive, compressed
// or not: Docker's test is that a first tar header reads.
func isTarArchive(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	r, done, err := decompress(f)
	if err != nil {
		return false, nil
	}
	defer done()
	_, err = tar.NewReader(r).Next()
	return err == nil, nil
}

// extract hands s to req.Extract when it is a local tar archive, as ADD
// does, and reports whether it did. The destination is always a directory:
// Dest, made with its parents, as BuildKit's unpack does.
func (c *copier) extract(ctx context.Context, s selection) (bool, error) {
	src := *s.entries[0]
	if !src.fi.Mode().IsRegular() {
		return false, nil
	}
	ok, err := isTarArchive(src.host)
	if err != nil {
		return false, fmt.Errorf("add %s: %w", s.name, err)
	}
	if !ok {
		return false, nil
	}
	dir, err := c.mkdirAll(path.Join("/", c.req.Dest))
	if err != nil {
		return false, err
	}
	f, err := os.Open(src.host)
	if err != nil {
		return false, fmt.Errorf("add %s: %w", s.name, err)
	}
	defer f.Close()
	r, done, err := decompress(f)
	if err != nil {
		return false, fmt.Errorf("add %s: decompress: %w", s.name, err)
	}
	defer done()
	if err := c.req.Extract(ctx, r, dir); err != nil {
		return false, fmt.Errorf("add %s: extract to %s: %w", s.name, c.req.Dest, err)
	}
	return true, nil
}
