package remotecache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// localRefName names the cache manifest in a layout directory's
// index.json.
const localRefName = "builder-cache"

// Local is a cache in the OCI image layout directory dir, which a CI
// system persists between runs; written with ggcr's layout package.
type Local struct {
	dir string
}

var _ Target = (*Local)(nil)

// NewLocal returns the cache in dir; the directory is made on the first
// export.
func NewLocal(dir string) *Local { return &Local{dir: dir} }

func (l *Local) String() string { return l.dir }

func (l *Local) path() (layout.Path, error) {
	p, err := layout.FromPath(l.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("cache directory %s: %w", l.dir, ErrNotFound)
		}
		return "", fmt.Errorf("cache directory %s: %w", l.dir, err)
	}
	return p, nil
}

func (l *Local) Manifest(ctx context.Context) ([]byte, error) {
	p, err := l.path()
	if err != nil {
		return nil, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", l.dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", l.dir, err)
	}
	for _, d := range im.Manifests {
		if d.Annotations[ocispec.AnnotationRefName] == localRefName {
			b, err := p.Bytes(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("cache directory %s: manifest %s: %w", l.dir, d.Digest, err)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("cache directory %s: %w", l.dir, ErrNotFound)
}

func (l *Local) blobPath(d ocispec.Descriptor) string {
	return filepath.Join(l.dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded())
}

func (l *Local) HasBlob(ctx context.Context, d ocispec.Descriptor) (bool, error) {
	fi, err := os.Stat(l.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// A blob of another size is a torn copy: written again.
	return fi.Mode().IsRegular() && fi.Size() == d.Size, nil
}

func (l *Local) OpenBlob(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	p, err := l.path()
	if err != nil {
		return nil, err
	}
	h, err := v1.NewHash(d.Digest.String())
	if err != nil {
		return nil, err
	}
	return p.Blob(h)
}

// create opens the layout at dir, making it when it is not there.
func (l *Local) create() (layout.Path, error) {
	p, err := layout.FromPath(l.dir)
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("cache directory %s: %w", l.dir, err)
	}
	if p, err = layout.Write(l.dir, empty.Index); err != nil {
		return "", fmt.Errorf("make cache directory %s: %w", l.dir, err)
	}
	return p, nil
}

func (l *Local) WriteBlob(ctx context.Context, d ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	p, err := l.create()
	if err != nil {
		return err
	}
	h, err := v1.NewHash(d.Digest.String())
	if err != nil {
		return err
	}
	// layout writes to a temporary file and renames it: a killed export
	// leaves no torn blob under the digest's name.
	_ = os.Remove(l.blobPath(d)) // a torn one (HasBlob said so) is not rewritten otherwise
	rc, err := open()
	if err != nil {
		return err
	}
	if err := p.WriteBlob(h, rc); err != nil {
		return fmt.Errorf("write blob %s to %s: %w", d.Digest, l.dir, err)
	}
	return nil
}

func (l *Local) WriteManifest(ctx context.Context, raw []byte, d ocispec.Descriptor) error {
	p, err := l.create()
	if err != nil {
		return err
	}
	h, err := v1.NewHash(d.Digest.String())
	if err != nil {
		return err
	}
	if err := p.WriteBlob(h, io.NopCloser(bytesReader(raw))); err != nil {
		return fmt.Errorf("write cache manifest to %s: %w", l.dir, err)
	}
	// Drop the old cache's entry, then name the new one.
	if err := p.RemoveDescriptors(match.Annotation(ocispec.AnnotationRefName, localRefName)); err != nil {
		return fmt.Errorf("update %s: %w", l.dir, err)
	}
	err = p.AppendDescriptor(v1.Descriptor{
		MediaType:   types.OCIManifestSchema1,
		Digest:      h,
		Size:        d.Size,
		Annotations: map[string]string{ocispec.AnnotationRefName: localRefName},
	})
	if err != nil {
		return fmt.Errorf("update %s: %w", l.dir, err)
	}
	return l.prune()
}

// prune removes the blobs no manifest of the directory names: the old
// cache's layers that the new one dropped, so that a directory a CI
// system keeps does not grow with every run. A CI job restores the
// directory for itself, so no other build reads the old manifest. A
// directory holding anything but image manifests is left alone.
func (l *Local) prune() error {
	b, err := os.ReadFile(filepath.Join(l.dir, "index.json"))
	if err != nil {
		return fmt.Errorf("prune %s: %w", l.dir, err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("prune %s: %w", l.dir, err)
	}
	keep := map[string]bool{}
	for _, d := range idx.Manifests {
		if d.MediaType != ocispec.MediaTypeImageManifest {
			return nil
		}
		mb, err := os.ReadFile(l.blobPath(d))
		if err != nil {
			return fmt.Errorf("prune %s: %w", l.dir, err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(mb, &m); err != nil {
			return nil
		}
		keep[d.Digest.Encoded()], keep[m.Config.Digest.Encoded()] = true, true
		for _, layer := range m.Layers {
			keep[layer.Digest.Encoded()] = true
		}
	}
	dir := filepath.Join(l.dir, "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("prune %s: %w", l.dir, err)
	}
	for _, e := range entries {
		if !keep[e.Name()] && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("prune %s: %w", l.dir, err)
			}
		}
	}
	return nil
}
