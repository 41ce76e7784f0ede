package exporter

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/snapshot/archive"
	"github.com/builder-dev/builder/store"
)

// DefaultPath is the PATH an imported image gets unless cfg sets one, as
// Docker's.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Import makes a one-layer image of a root filesystem, src: a directory
// (written as a deterministic layer tar) or a tar file, plain, gzip or
// zstd. The config is cfg for linux/runtime.GOARCH, with PATH defaulted,
// and a history entry "Imported from src". A non-empty name tags the image.
func Import(ctx context.Context, s *store.Store, src string, name string, cfg ocispec.ImageConfig) (ocispec.Descriptor, error) {
	if name != "" {
		// Fail on a bad name before the work.
		if _, err := store.NormalizeName(name); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
		}
	}
	fi, err := os.Stat(src)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
	}
	var layer ocispec.Descriptor
	var diffID digest.Digest
	if fi.IsDir() {
		layer, diffID, err = ingestDir(ctx, s, src)
	} else {
		layer, diffID, err = ingestTarFile(ctx, s, src)
	}
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
	}

	created := time.Now().UTC()
	if !slices.ContainsFunc(cfg.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		cfg.Env = append([]string{DefaultPath}, cfg.Env...)
	}
	img := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History:  []ocispec.History{{Created: &created, Comment: "Imported from " + src}},
	}
	m, _, err := s.PutImage(ctx, img, []ocispec.Descriptor{layer})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
	}
	if name != "" {
		if err := s.Tag(ctx, name, m); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
		}
	}
	return m, nil
}

// ingestDir writes the directory as a layer tar straight into the store's
// compressor, through a pipe: the tar is never held whole.
func ingestDir(ctx context.Context, s *store.Store, dir string) (ocispec.Descriptor, digest.Digest, error) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(archive.WriteLayer(ctx, dir, pw, archive.WriteOptions{}))
	}()
	desc, diffID, err := s.IngestLayer(ctx, pr)
	pr.CloseWithError(io.ErrClosedPipe) // stops the writer if ingest failed
	<-done
	return desc, diffID, err
}

// ingestTarFile stores a tar file, whatever its compression, as a gzip
// layer.
func ingestTarFile(ctx context.Context, s *store.Store, path string) (ocispec.Descriptor, digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer f.Close()
	rc, err := store.Decompress(f)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer rc.Close()
	return s.IngestLayer(ctx, rc)
}
