package store

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/builder-dev/builder/internal/ctxio"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.etcd.io/bbolt"
)

// layersBucket maps a layer blob's digest to its LayerInfo.
var layersBucket = []byte("layers.v1")

// LayerInfo is what the store remembers of a layer blob's uncompressed
// content, so that listing sizes never has to read the layer.
type LayerInfo struct {
	// Size is the layer's content size as Docker counts it (images,
	// history, inspect, and the unpacked layer's size in ps -s): the bytes
	// of its regular files, each once however many hard links it has,
	// plus its symlinks' targets; directories, devices and whiteouts
	// count 0. An empty RUN layer is 0.
	Size int64 `json:"size"`
	// TarSize is the length of the uncompressed tar (what a docker-archive
	// holds).
	TarSize int64 `json:"tarSize"`
}

// tarCounter is an io.Writer that reads the tar stream written to it and
// counts a LayerInfo, telling on Close whether the stream was a tar at
// all. archive/tar does the parsing, in a goroutine fed through a pipe.
type tarCounter struct {
	pw   *io.PipeWriter
	done chan struct{}
	info LayerInfo
	err  error // the tar's error, if it is not one
}

func newTarCounter() *tarCounter {
	pr, pw := io.Pipe()
	c := &tarCounter{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		// Buffered: the tar reader's small reads would each be a
		// handoff between goroutines.
		c.info.Size, c.err = contentSize(bufio.NewReaderSize(pr, 64<<10))
		if c.err == nil {
			// Padding after the end-of-archive blocks (tar writes
			// whole records), read so the writer never blocks, but
			// bounded: /dev/zero is a valid empty tar followed by
			// endless padding.
			if n, _ := io.Copy(io.Discard, io.LimitReader(pr, maxTrailing+1)); n > maxTrailing {
				c.err = fmt.Errorf("more than %d bytes after the end of the archive", maxTrailing)
			}
		}
		if c.err != nil {
			// Not a tar: stop the writer now rather than take in the
			// rest of a stream that may never end (import
			// /dev/urandom wrote to the disk until it was full).
			pr.CloseWithError(errNotTar)
		}
	}()
	return c
}

// maxTrailing bounds what may follow a layer tar's end-of-archive blocks:
// tar pads to its record size, 10 KiB by default, 1 MiB for the largest
// blocking factors in use.
const maxTrailing = 8 << 20

// errNotTar is what a tarCounter's Write returns once it has found the
// stream is no tar; Close says why.
var errNotTar = errors.New("not a tar archive")

func (c *tarCounter) Write(p []byte) (int, error) {
	c.info.TarSize += int64(len(p))
	// The reader never stops reading before the pipe is closed.
	return c.pw.Write(p)
}

// Close ends the stream and returns what was counted, or why the stream
// is not a tar.
func (c *tarCounter) Close() (LayerInfo, error) {
	c.pw.Close()
	<-c.done
	if c.err == nil && c.info.TarSize == 0 {
		c.err = fmt.Errorf("empty stream")
	}
	if errors.Is(c.err, ErrInvalid) {
		return c.info, c.err // a tar, with an entry no layer may have
	}
	if c.err != nil {
		return c.info, fmt.Errorf("not a tar archive (%v): %w", c.err, ErrInvalid)
	}
	return c.info, nil
}

// contentSize reads the tar r up to its end-of-archive blocks and returns
// its content size (see LayerInfo.Size).
func contentSize(r io.Reader) (int64, error) {
	tr := tar.NewReader(r)
	var n int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if leavesRoot(h.Name) || (h.Typeflag == tar.TypeLink && leavesRoot(h.Linkname)) {
			// No unpacker may write it, so no image could use the
			// layer: refused when it comes in (import, load), not at
			// each run.
			return n, fmt.Errorf("layer entry %q (link %q) leaves the root: %w", h.Name, h.Linkname, ErrInvalid)
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old tars still use '\x00'
			n += h.Size
		case tar.TypeSymlink:
			n += int64(len(h.Linkname))
		}
	}
}

// leavesRoot reports whether a relative tar entry name climbs above the
// layer's root ("../x", "a/../../x"). An absolute name is read from the
// root, as unpackers do; a symlink's target is not a name (it resolves in
// the container, or in the root when unpacking).
func leavesRoot(name string) bool {
	if path.IsAbs(name) {
		return false
	}
	c := path.Clean(name)
	return c == ".." || strings.HasPrefix(c, "../")
}

// LayerInfos returns the LayerInfo of each layer blob in blobs: remembered
// in meta.db when the layer was written or loaded, else counted once from
// the blob (verified as it is read) and remembered for next time.
func (s *Store) LayerInfos(ctx context.Context, blobs []digest.Digest) (map[digest.Digest]LayerInfo, error) {
	out := make(map[digest.Digest]LayerInfo, len(blobs))
	var missing []digest.Digest
	err := s.meta.View(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(layersBucket)
		for _, d := range blobs {
			if _, ok := out[d]; ok {
				continue
			}
			var v []byte
			if b != nil {
				v = b.Get([]byte(d))
			}
			var li LayerInfo
			if v == nil || json.Unmarshal(v, &li) != nil {
				missing = append(missing, d)
				out[d] = LayerInfo{Size: -1}
				continue
			}
			out[d] = li
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read layer sizes: %w", err)
	}
	if len(missing) == 0 {
		return out, nil
	}
	counted := map[digest.Digest]LayerInfo{}
	for _, d := range missing {
		li, err := s.countLayer(ctx, d)
		if err != nil {
			return nil, err
		}
		out[d] = li
		counted[d] = li
	}
	if err := s.setLayerInfos(ctx, counted); err != nil {
		return nil, err
	}
	return out, nil
}

// countLayer reads the layer blob d through and counts its LayerInfo.
func (s *Store) countLayer(ctx context.Context, d digest.Digest) (LayerInfo, error) {
	rc, err := s.content.OpenLayer(ctx, d)
	if err != nil {
		return LayerInfo{}, fmt.Errorf("size of layer %s: %w", d, err)
	}
	defer rc.Close()
	c := newTarCounter()
	_, err = io.Copy(c, ctxio.Reader(ctx, rc))
	li, cerr := c.Close()
	if err == nil {
		err = cerr
	}
	if err != nil {
		return LayerInfo{}, fmt.Errorf("size of layer %s: %w", d, err)
	}
	return li, nil
}

// setLayerInfos remembers the LayerInfo of layer blobs (see LayerInfos),
// without an fsync: they can always be counted again from the blobs.
func (s *Store) setLayerInfos(ctx context.Context, infos map[digest.Digest]LayerInfo) error {
	err := s.meta.Lazy().Update(ctx, func(tx *bbolt.Tx) error { return putLayerInfos(tx, infos) })
	if err != nil {
		return fmt.Errorf("remember layer sizes: %w", err)
	}
	return nil
}

func putLayerInfos(tx *bbolt.Tx, infos map[digest.Digest]LayerInfo) error {
	b, err := tx.CreateBucketIfNotExists(layersBucket)
	if err != nil {
		return err
	}
	for d, li := range infos {
		v, err := json.Marshal(li)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(d), v); err != nil {
			return err
		}
	}
	return nil
}

// CountTarFile is CountTar of the uncompressed layer tar f, from its
// start, reading only the entries' headers: their contents are seeked
// over, and the bytes after the end-of-archive blocks are bounded as a
// layer's stream is (see maxTrailing). The layer's content is not
// checked against a digest: f is a file whose digest its writer took.
func CountTarFile(f *os.File) (LayerInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return LayerInfo{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return LayerInfo{}, err
	}
	li := LayerInfo{TarSize: fi.Size()}
	if li.TarSize == 0 {
		return li, fmt.Errorf("not a tar archive (empty): %w", ErrInvalid)
	}
	// archive/tar seeks over an entry's content when its reader can.
	li.Size, err = contentSize(f)
	if err != nil {
		if !errors.Is(err, ErrInvalid) {
			err = fmt.Errorf("not a tar archive (%v): %w", err, ErrInvalid)
		}
		return li, err
	}
	end, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return li, err
	}
	if li.TarSize-end > maxTrailing {
		return li, fmt.Errorf("not a tar archive (more than %d bytes after the end of the archive): %w", maxTrailing, ErrInvalid)
	}
	return li, nil
}

// CountTar reads the uncompressed layer tar r to its end and returns its
// LayerInfo; ErrInvalid if r is not a tar.
func CountTar(r io.Reader) (LayerInfo, error) {
	cr := &countingReader{r: r}
	size, err := contentSize(cr)
	if err == nil {
		_, err = io.Copy(io.Discard, cr)
	} else if !errors.Is(err, ErrDigest) && !errors.Is(err, ErrInvalid) {
		err = fmt.Errorf("not a tar archive (%v): %w", err, ErrInvalid)
	}
	if err == nil && cr.n == 0 {
		err = fmt.Errorf("not a tar archive (empty): %w", ErrInvalid)
	}
	return LayerInfo{Size: size, TarSize: cr.n}, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ContentSize is the size of an image's layers as Docker shows it (images,
// inspect): the sum of their LayerInfo sizes.
func (s *Store) ContentSize(ctx context.Context, layers []ocispec.Descriptor) (int64, error) {
	infos, err := s.LayerInfos(ctx, layerDigests(layers))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range layers {
		n += infos[l.Digest].Size
	}
	return n, nil
}

func layerDigests(layers []ocispec.Descriptor) []digest.Digest {
	out := make([]digest.Digest, len(layers))
	for i, l := range layers {
		out[i] = l.Digest
	}
	return out
}
