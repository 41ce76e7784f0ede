package source

import (
	"context"
	"fmt"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/store"
)

// Image is an image of the store as a build reads it: its manifest, its
// configuration and its layers with their diff IDs, bottom first.
type Image struct {
	Manifest ocispec.Descriptor
	Config   ocispec.Image
	Layers   []ocispec.Descriptor
	DiffIDs  []digest.Digest
}

// Lookup finds the image ref names in st. Its layers are not unpacked:
// snapshot.Snapshotter.Materialize does that when a step needs them.
func Lookup(ctx context.Context, st *store.Store, ref string) (Image, error) {
	desc, err := st.Content().Resolve(ctx, ref)
	if err != nil {
		return Image{}, fmt.Errorf("image %q: %w", ref, err)
	}
	m, cfg, err := st.Content().LoadImage(ctx, desc)
	if err != nil {
		return Image{}, fmt.Errorf("load image %q: %w", ref, err)
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return Image{}, fmt.Errorf("image %q: %d layers but %d diff IDs", ref, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	return Image{Manifest: desc, Config: cfg, Layers: m.Layers, DiffIDs: cfg.RootFS.DiffIDs}, nil
}
