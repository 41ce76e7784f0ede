package exporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/registry"
	"github.com/builder-dev/builder/store"
)

// Pushed is what a push wrote: the manifest as the registry has it (its
// digest is what `docker pull NAME@DIGEST` names) and its config.
type Pushed struct {
	Ref      string // the reference pushed to, as parsed ("registry/repo:tag")
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor
}

// Push uploads the store's image manifest to ref: each blob the registry
// lacks (go-containerregistry asks with a HEAD first), concurrently; a blob
// that another repository of the same registry has, by the store's tags,
// is mounted from there rather than uploaded; then the manifest, whose
// bytes are the store's unless a layer had to be compressed for the push.
func Push(ctx context.Context, s *store.Store, manifest ocispec.Descriptor, ref string, opts *registry.Options) (Pushed, error) {
	r, err := opts.ParseReference(ref)
	if err != nil {
		return Pushed{}, fmt.Errorf("push: %w: %w", store.ErrInvalid, err)
	}
	wrap := func(err error) error { return registry.Wrap("push", r.String(), r.Context().RegistryStr(), err) }
	img, err := newPushImage(ctx, s, manifest, r)
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", r, err)
	}
	ropts, err := opts.Remote(ctx, r.Context().Registry)
	if err != nil {
		return Pushed{}, err
	}
	for attempt := 1; ; attempt++ {
		err = remote.Write(r, img, ropts...)
		if err == nil || attempt == pushAttempts || !racedUpload(err) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return Pushed{}, wrap(err)
	}
	return Pushed{Ref: r.String(), Manifest: img.desc, Config: img.manifest.Config}, nil
}

// pushAttempts bounds the writes of one push that racedUpload lets retry.
const pushAttempts = 3

// racedUpload reports an error a registry gives when another client
// pushes the same blobs to the same repository at the same time: the
// distribution registry's storage is not atomic there, so an upload can
// be refused as not matching its digest, or a manifest as naming a blob
// the repository does not have yet. Writing again HEADs every blob and
// uploads only what is still missing, which is what settles it.
func racedUpload(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	for _, d := range te.Errors {
		switch d.Code {
		case transport.DigestInvalidErrorCode, transport.ManifestBlobUnknownErrorCode, transport.BlobUnknownErrorCode:
			return true
		}
	}
	return false
}

// pushImage is a stored image as go-containerregistry writes it.
type pushImage struct {
	v1.Image
	desc     ocispec.Descriptor
	manifest ocispec.Manifest
	layers   []v1.Layer
	// configFrom is a repository of the registry that has the config
	// blob, nil if none is known.
	configFrom name.Reference
}

func newPushImage(ctx context.Context, s *store.Store, desc ocispec.Descriptor, target name.Reference) (*pushImage, error) {
	c := s.Content()
	raw, err := c.ReadBlob(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	cfg, err := c.ReadBlob(ctx, m.Config.Digest)
	if err != nil {
		return nil, err
	}
	var rootfs struct {
		RootFS ocispec.RootFS `json:"rootfs"`
	}
	if err := json.Unmarshal(cfg, &rootfs); err != nil || len(rootfs.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("config %s: %d diff_ids for %d layers: %w", m.Config.Digest, len(rootfs.RootFS.DiffIDs), len(m.Layers), store.ErrInvalid)
	}
	changed := false
	blobs := map[digest.Digest]ocispec.Descriptor{}
	for i, l := range m.Layers {
		pl, err := pushLayer(ctx, c, l, rootfs.RootFS.DiffIDs[i])
		if err != nil {
			return nil, err
		}
		if pl.Digest != l.Digest {
			changed = true
			m.Layers[i] = pl
		}
		blobs[pl.Digest] = pl
	}
	if changed {
		// A layer compressed for the push changes the manifest, which is
		// then an OCI one.
		m.MediaType = ocispec.MediaTypeImageManifest
		m.Config.MediaType = ocispec.MediaTypeImageConfig
		if raw, err = json.Marshal(m); err != nil {
			return nil, err
		}
		desc = ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	}
	core := &storeImage{ctx: ctx, c: c, raw: raw, cfg: cfg, mediaType: desc.MediaType, blobs: blobs}
	base, err := partial.CompressedToImage(core)
	if err != nil {
		return nil, err
	}
	mounts := mountSources(ctx, c, target)
	img := &pushImage{Image: base, desc: desc, manifest: m, configFrom: mounts[m.Config.Digest]}
	for _, l := range m.Layers {
		cl, err := core.LayerByDigest(v1.Hash{Algorithm: l.Digest.Algorithm().String(), Hex: l.Digest.Encoded()})
		if err != nil {
			return nil, err
		}
		vl, err := partial.CompressedToLayer(cl)
		if err != nil {
			return nil, err
		}
		if from, ok := mounts[l.Digest]; ok {
			vl = &remote.MountableLayer{Layer: vl, Reference: from}
		}
		img.layers = append(img.layers, vl)
	}
	return img, nil
}

// Layers are the image's layers, as mountable ones where a source
// repository is known: go-containerregistry mounts only those.
func (i *pushImage) Layers() ([]v1.Layer, error) { return i.layers, nil }

// ConfigLayer is the config blob, mountable where a source repository is
// known (partial.ConfigLayer asks the image for it first).
func (i *pushImage) ConfigLayer() (v1.Layer, error) {
	l, err := partial.ConfigLayer(i.Image)
	if err != nil || i.configFrom == nil {
		return l, err
	}
	return &remote.MountableLayer{Layer: l, Reference: i.configFrom}, nil
}

// pushLayer is the blob a push sends for the stored layer l (of diff ID
// diffID): l itself when it is compressed, else its gzip form, made once
// and remembered by the store (Content.CompressedLayer).
func pushLayer(ctx context.Context, c *store.Content, l ocispec.Descriptor, diffID digest.Digest) (ocispec.Descriptor, error) {
	desc, err := c.CompressedLayer(ctx, l, diffID)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("compress layer %s: %w", l.Digest, err)
	}
	return desc, nil
}

// mountSources maps each layer blob of the store's images tagged in
// another repository of target's registry to that repository: the
// registry has it there (it was pulled from or pushed to it), so a push
// can mount it instead of uploading it.
func mountSources(ctx context.Context, c *store.Content, target name.Reference) map[digest.Digest]name.Reference {
	out := map[digest.Digest]name.Reference{}
	images, err := c.Images(ctx)
	if err != nil {
		return out
	}
	for _, im := range images {
		if im.Name == "" || im.Err != nil {
			continue
		}
		r, err := name.ParseReference(im.Name)
		if err != nil || r.Context().RegistryStr() != target.Context().RegistryStr() ||
			r.Context().RepositoryStr() == target.Context().RepositoryStr() {
			continue
		}
		for _, l := range append([]ocispec.Descriptor{im.Config}, im.Layers...) {
			if _, ok := out[l.Digest]; !ok {
				out[l.Digest] = r
			}
		}
	}
	return out
}

// storeImage is partial.CompressedImageCore over the store's blobs.
type storeImage struct {
	ctx       context.Context
	c         *store.Content
	raw, cfg  []byte
	mediaType string
	blobs     map[digest.Digest]ocispec.Descriptor
}

func (i *storeImage) RawConfigFile() ([]byte, error)      { return i.cfg, nil }
func (i *storeImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *storeImage) MediaType() (types.MediaType, error) { return types.MediaType(i.mediaType), nil }

func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	d := digest.Digest(h.String())
	if desc, ok := i.blobs[d]; ok {
		return &storeLayer{i: i, desc: desc}, nil
	}
	if cd := digest.FromBytes(i.cfg); cd == d {
		return &storeLayer{i: i, desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: d, Size: int64(len(i.cfg))}}, nil
	}
	return nil, fmt.Errorf("blob %s: %w", d, store.ErrNotFound)
}

// storeLayer is a blob of the store as go-containerregistry reads it.
type storeLayer struct {
	i    *storeImage
	desc ocispec.Descriptor
}

func (l *storeLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.desc.Digest.String()) }
func (l *storeLayer) Size() (int64, error)     { return l.desc.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}

func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	if l.desc.Digest == digest.FromBytes(l.i.cfg) {
		return io.NopCloser(bytes.NewReader(l.i.cfg)), nil
	}
	return l.i.c.OpenBlob(l.i.ctx, l.desc.Digest)
}

// Metadata is what `--metadata-file` holds, with buildx's keys.
func Metadata(p Pushed, names []string) map[string]any {
	return map[string]any{
		"containerimage.digest":        p.Manifest.Digest,
		"containerimage.config.digest": p.Config.Digest,
		"containerimage.descriptor":    p.Manifest,
		"image.name":                   joinNames(names),
	}
}

func joinNames(names []string) string {
	names = slices.Compact(slices.Clone(names))
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ","
		}
		out += n
	}
	return out
}
