package source

import (
	"context"
	"fmt"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/store"
)

// Image is an image as a build, a container or inspect reads it. Every
// reader of an image by reference goes through Lookup, so that the next
// source (a registry) is one place to add.
type Image struct {
	// Descriptor is the manifest's. Cache keys name the image by its ID
	// instead: the manifest changes with the form its layers are kept in.
	Descriptor ocispec.Descriptor
	Manifest   ocispec.Manifest
	// Config is Docker's image type, which keeps Healthcheck, OnBuild and
	// Shell; its digest (Manifest.Config.Digest) is the image ID.
	Config dockerspec.DockerOCIImage
	// Layers and DiffIDs are in step, bottom first.
	Layers  []ocispec.Descriptor
	DiffIDs []digest.Digest
}

// ID is the image ID: its config's digest.
func (i Image) ID() digest.Digest { return i.Manifest.Config.Digest }

// Lookup finds the image ref names in st; "name@<index digest>" names the
// host platform's image of an index a pull stored. Its layers are not
// unpacked: snapshot.Snapshotter.Materialize does that when a step needs
// them.
func Lookup(ctx context.Context, st *store.Store, ref string) (Image, error) {
	return lookupFor(ctx, st, ref, HostPlatform())
}

// lookupStore finds the image ref names among the store's manifests.
func lookupStore(ctx context.Context, st *store.Store, ref string) (Image, error) {
	desc, err := st.Content().Resolve(ctx, ref)
	if err != nil {
		return Image{}, fmt.Errorf("image %q: %w", ref, err)
	}
	var cfg dockerspec.DockerOCIImage
	m, err := st.Content().LoadImageAs(ctx, desc, &cfg)
	if err != nil {
		return Image{}, err // it says "load image <digest>"
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return Image{}, fmt.Errorf("image %q: %d layers but %d diff IDs", ref, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	return Image{Descriptor: desc, Manifest: m, Config: cfg, Layers: m.Layers, DiffIDs: cfg.RootFS.DiffIDs}, nil
}
