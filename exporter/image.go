package exporter

import (
	"context"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/store"
)

// StoreImage writes a built image into the store (its config and
// manifest; the layers are there already) and names it by each of tags.
// It returns the manifest and config descriptors; the config's digest is
// the image ID.
func StoreImage(ctx context.Context, s *store.Store, config any, layers []ocispec.Descriptor, tags []string) (manifest, cfg ocispec.Descriptor, err error) {
	manifest, cfg, err = s.Content().PutImage(ctx, config, layers)
	if err != nil {
		return ocispec.Descriptor{}, ocispec.Descriptor{}, fmt.Errorf("write image: %w", err)
	}
	for _, t := range tags {
		if err := s.Content().Tag(ctx, t, manifest); err != nil {
			return ocispec.Descriptor{}, ocispec.Descriptor{}, fmt.Errorf("tag %s: %w", t, err)
		}
	}
	return manifest, cfg, nil
}
