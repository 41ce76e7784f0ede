package source

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
// It returns the image's manifest.
func Import(ctx context.Context, s *store.Store, src string, name string, cfg ocispec.ImageConfig) (ocispec.Descriptor, error) {
	if err := checkName(name); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
	}
	if !fi.IsDir() {
		f, err := os.Open(src)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
		}
		defer f.Close()
		return ImportReader(ctx, s, f, src, name, cfg)
	}
	layer, err := stageDir(ctx, s, src)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
	}
	return putImported(ctx, s, layer, src, name, cfg)
}

// ImportReader is Import of a tar stream, such as stdin for `import -`;
// src names it in the history ("Imported from -"). A stream that is not a
// tar (plain, gzip or zstd) is ErrInvalid, and leaves the store as it was.
func ImportReader(ctx context.Context, s *store.Store, r io.Reader, src string, name string, cfg ocispec.ImageConfig) (ocispec.Descriptor, error) {
	if err := checkName(name); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
	}
	rc, err := store.Decompress(r)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
	}
	defer rc.Close()
	layer, err := stageLayer(ctx, s, rc)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
	}
	return putImported(ctx, s, layer, src, name, cfg)
}

// checkName fails on a bad name before any work.
func checkName(name string) error {
	if name == "" {
		return nil
	}
	_, err := store.NormalizeName(name)
	return err
}

// stagedLayer is an imported layer blob, not yet in the store, and its
// diff ID.
type stagedLayer struct {
	blob   *store.StagedBlob
	diffID digest.Digest
}

func stageLayer(ctx context.Context, s *store.Store, r io.Reader) (stagedLayer, error) {
	b, diffID, err := s.Content().StageLayer(ctx, r)
	return stagedLayer{b, diffID}, err
}

// putImported commits the layer and writes the image over it.
func putImported(ctx context.Context, s *store.Store, layer stagedLayer, src, name string, cfg ocispec.ImageConfig) (ocispec.Descriptor, error) {
	if err := layer.blob.Commit(); err != nil {
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
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.diffID}},
		History:  []ocispec.History{{Created: &created, Comment: "Imported from " + src}},
	}
	m, _, err := s.Content().PutImage(ctx, img, []ocispec.Descriptor{layer.blob.Desc})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
	}
	if name != "" {
		if err := s.Content().Tag(ctx, name, m); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
		}
	}
	return m, nil
}

// stageDir writes the directory as a layer tar straight into the store's
// compressor, through a pipe: the tar is never held whole.
func stageDir(ctx context.Context, s *store.Store, dir string) (stagedLayer, error) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(archive.WriteLayer(ctx, dir, pw, archive.WriteOptions{}))
	}()
	layer, err := stageLayer(ctx, s, pr)
	pr.CloseWithError(io.ErrClosedPipe) // stops the writer if ingest failed
	<-done
	return layer, err
}
