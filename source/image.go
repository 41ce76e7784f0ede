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
	// Descriptor is the manifest's: its digest names the image in cache
	// keys.
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
	// LoadImage checks the manifest; the config is read again in Docker's
	// type, which the OCI type LoadImage gives lacks.
	m, _, err := st.Content().LoadImage(ctx, desc)
	if err != nil {
		return Image{}, err // it says "load image <digest>"
	}
	var cfg dockerspec.DockerOCIImage
	if err := st.Content().ReadJSON(ctx, m.Config.Digest, &cfg); err != nil {
		return Image{}, fmt.Errorf("read config of %q: %w", ref, err)
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return Image{}, fmt.Errorf("image %q: %d layers but %d diff IDs", ref, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	return Image{Descriptor: desc, Manifest: m, Config: cfg, Layers: m.Layers, DiffIDs: cfg.RootFS.DiffIDs}, nil
}
