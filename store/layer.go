package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/builder-dev/builder/internal/ctxio"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Compression is what a layer stream is compressed with.
type Compression int

// Compressions DetectCompression tells apart.
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// DetectCompression peeks at the start of r (which must then be read from
// the returned reader) and tells its compression by magic number.
func DetectCompression(r io.Reader) (Compression, io.Reader, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return Uncompressed, br, fmt.Errorf("detect compression: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip, br, nil
	case bytes.HasPrefix(head, zstdMagic):
		return Zstd, br, nil
	}
	return Uncompressed, br, nil
}

// Decompress returns the uncompressed stream of r, whatever its compression
// (gzip, zstd or none, told by content so a mislabelled blob still reads).
func Decompress(r io.Reader) (io.ReadCloser, error) {
	c, br, err := DetectCompression(r)
	if err != nil {
		return nil, err
	}
	switch c {
	case Gzip:
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gunzip: %w", err)
		}
		return zr, nil
	case Zstd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// OpenLayer opens the layer blob d uncompressed, whether it is stored as a
// gzip, zstd or plain tar. The blob is checked against d on the way: the
// read that reaches the end of the uncompressed stream fails with a
// DigestError if the blob was changed, as does any read that fails because
// of the change (a corrupt gzip stream reports the digest, not gzip's
// complaint). A tar reader stops before that end: read the rest (io.Copy
// to io.Discard) before trusting what was unpacked.
func (s *Content) OpenLayer(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	f, err := s.OpenBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	rc, err := Decompress(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open layer %s: %w", d, err)
	}
	return &layerReader{rc: rc, blob: f}, nil
}

// layerReader is a layer blob's uncompressed stream whose end (or failure)
// is only reported once the blob under it was read whole and verified.
type layerReader struct {
	rc   io.ReadCloser // the decompressor
	blob io.ReadCloser // the verified blob file
	err  error
}

func (l *layerReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.rc.Read(p)
	if err != nil {
		// The decompressor may stop before the blob's end (gzip's
		// trailer, or trailing bytes): read the rest so the digest is
		// checked, and let a digest error win over a decompression one.
		if derr := drain(l.blob); derr != nil {
			err = derr
		}
		l.err = err
	}
	return n, err
}

func (l *layerReader) Close() error {
	err := l.rc.Close()
	if cerr := l.blob.Close(); err == nil {
		err = cerr
	}
	return err
}

// gzipWriters keeps pgzip writers between layers: a new one allocates its
// block buffers, which costs more than compressing a small RUN's layer.
var gzipWriters sync.Pool

func getGzipWriter(w io.Writer) (*pgzip.Writer, error) {
	zw, ok := gzipWriters.Get().(*pgzip.Writer)
	if ok {
		zw.Reset(w)
	} else {
		var err error
		if zw, err = pgzip.NewWriterLevel(w, pgzip.DefaultCompression); err != nil {
			return nil, err
		}
	}
	// Fixed block size, so the output does not depend on the machine;
	// blocks in flight only bound memory.
	if err := zw.SetConcurrency(1<<20, max(2, runtime.GOMAXPROCS(0))); err != nil {
		return nil, err
	}
	return zw, nil
}

// IngestLayer compresses the uncompressed layer tar r with gzip (pgzip, in
// parallel) into the store and returns the blob's descriptor
// (application/vnd.oci.image.layer.v1.tar+gzip) and the digest of the
// uncompressed stream, the layer's diff ID. The same input gives the same
// blob.
func (s *Content) IngestLayer(ctx context.Context, r io.Reader) (ocispec.Descriptor, digest.Digest, error) {
	b, diffID, err := s.StageLayer(ctx, r)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := b.Commit(); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("ingest layer: %w", err)
	}
	return b.Desc, diffID, nil
}

// StageLayer is IngestLayer up to a staged blob, which the caller commits
// (or discards). The stream must be a tar (ErrInvalid otherwise); its
// content size is counted on the way and remembered when the blob is
// committed (see LayerInfos), as is the blob as the layer's gzip form
// (see CompressedLayer).
func (s *Content) StageLayer(ctx context.Context, r io.Reader) (*StagedBlob, digest.Digest, error) {
	pr, pw := io.Pipe()
	diffID := digest.Canonical.Digester()
	var layerInfo LayerInfo
	done := make(chan struct{})
	go func() {
		defer close(done)
		zw, err := getGzipWriter(pw)
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		counter := newTarCounter()
		_, err = io.Copy(zw, io.TeeReader(ctxio.Reader(ctx, r), io.MultiWriter(diffID.Hash(), counter)))
		info, terr := counter.Close()
		if err == nil || errors.Is(err, errNotTar) {
			// The counter's reason, when it is what stopped the copy.
			err = terr
			layerInfo = info
		}
		if cerr := zw.Close(); err == nil {
			err = cerr
			gzipWriters.Put(zw) // only a cleanly closed writer is reused
		}
		pw.CloseWithError(err) // nil closes with EOF
	}()
	b, err := s.Stage(ctx, ocispec.MediaTypeImageLayerGzip, pr)
	// Unblock the writer if Stage stopped early.
	pr.CloseWithError(io.ErrClosedPipe)
	<-done // r is the caller's again
	if err != nil {
		return nil, "", fmt.Errorf("ingest layer: %w", err)
	}
	b.Layer = &layerInfo
	b.DiffID = diffID.Digest()
	return b, b.DiffID, nil
}
