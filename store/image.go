package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's schema2 media types, which the store reads but never writes.
const (
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerConfig   = "application/vnd.docker.container.image.v1+json"
)

// minIDPrefix is the shortest image ID prefix Resolve accepts, as Docker.
const minIDPrefix = 4

// Image is one entry of the store's index: a tag (or an untagged image,
// Name "") and what it points to.
type Image struct {
	Name     string // normalized tag, "" for an untagged image
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor // its digest is the image ID
	Created  time.Time
	Layers   []ocispec.Descriptor
	Err      error // why the manifest or config could not be read, if so
}

// PutImage writes config, an image configuration (OCI's ocispec.Image or
// a type that extends it, as Docker's does), and an OCI manifest over
// layers, which must be in the store already, and lists the image untagged
// unless the index has it. It returns the manifest's descriptor and the
// config's, whose digest is the image ID. The config's rootfs must be of
// type "layers" with a diff ID per layer.
func (s *Content) PutImage(ctx context.Context, config any, layers []ocispec.Descriptor) (manifest, configDesc ocispec.Descriptor, err error) {
	b, err := json.Marshal(config)
	if err != nil {
		return ocispec.Descriptor{}, ocispec.Descriptor{}, fmt.Errorf("put image: marshal config: %w", err)
	}
	var probe struct {
		RootFS ocispec.RootFS `json:"rootfs"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return ocispec.Descriptor{}, ocispec.Descriptor{}, fmt.Errorf("put image: %w", err)
	}
	if probe.RootFS.Type != "layers" || len(probe.RootFS.DiffIDs) != len(layers) {
		return ocispec.Descriptor{}, ocispec.Descriptor{}, fmt.Errorf("put image: rootfs of type %q with %d diff_ids for %d layers: %w",
			probe.RootFS.Type, len(probe.RootFS.DiffIDs), len(layers), ErrInvalid)
	}
	cdesc, err := s.writeBytes(ctx, ocispec.MediaTypeImageConfig, b)
	if err != nil {
		return ocispec.Descriptor{}, ocispec.Descriptor{}, fmt.Errorf("put image config: %w", err)
	}
	m, err := s.PutManifest(ctx, cdesc, layers)
	return m, cdesc, err
}

// PutManifest writes an OCI manifest over a config blob and layer blobs
// already in the store (a loaded image keeps its config bytes, and so its
// ID) and lists it untagged unless the index has it already.
func (s *Content) PutManifest(ctx context.Context, config ocispec.Descriptor, layers []ocispec.Descriptor) (ocispec.Descriptor, error) {
	for _, d := range append([]ocispec.Descriptor{config}, layers...) {
		if !s.HasBlob(d.Digest) {
			return ocispec.Descriptor{}, fmt.Errorf("put manifest: blob %s: %w", d.Digest, ErrNotFound)
		}
	}
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    plain(config),
		Layers:    make([]ocispec.Descriptor, len(layers)),
	}
	m.SchemaVersion = 2
	for i, l := range layers {
		m.Layers[i] = plain(l)
		m.Layers[i].Annotations = l.Annotations
	}
	desc, err := s.WriteJSON(ctx, ocispec.MediaTypeImageManifest, m)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("put manifest: %w", err)
	}
	if err := s.AddManifest(ctx, desc); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("put manifest: %w", err)
	}
	return desc, nil
}

// AddManifest lists the manifest blob desc, already in the store, as an
// untagged image unless the index has it already. Load uses it to keep an
// archive's manifest bytes, and so its digest.
func (s *Content) AddManifest(ctx context.Context, desc ocispec.Descriptor) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !s.HasBlob(desc.Digest) {
		return fmt.Errorf("add manifest %s: %w", desc.Digest, ErrNotFound)
	}
	if desc.MediaType == "" {
		desc.MediaType = ocispec.MediaTypeImageManifest
	}
	err := s.updateIndex(func(idx *ocispec.Index) error {
		if slices.ContainsFunc(idx.Manifests, func(e ocispec.Descriptor) bool { return e.Digest == desc.Digest }) {
			return errUnchanged
		}
		idx.Manifests = append(idx.Manifests, plain(desc))
		return nil
	})
	if err != nil {
		return fmt.Errorf("add manifest %s: %w", desc.Digest, err)
	}
	return nil
}

// plain is d without annotations and other extras: what an index or
// manifest entry needs.
func plain(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}

// Tag points name (normalized) at manifest, replacing an existing tag of
// that name. The image the name left, if it has no other tag, stays listed
// untagged.
func (s *Content) Tag(ctx context.Context, ref string, manifest ocispec.Descriptor) error {
	n, err := NormalizeName(ref)
	if err != nil {
		return fmt.Errorf("tag: %w", err)
	}
	if !validTagName(n) {
		return fmt.Errorf("tag %s: a tag cannot hold a digest: %w", ref, ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !s.HasBlob(manifest.Digest) {
		return fmt.Errorf("tag %s: manifest %s: %w", n, manifest.Digest, ErrNotFound)
	}
	if manifest.MediaType == "" {
		manifest.MediaType = ocispec.MediaTypeImageManifest
	}
	entry := plain(manifest)
	entry.Annotations = map[string]string{ocispec.AnnotationRefName: n}
	err = s.updateIndex(func(idx *ocispec.Index) error {
		if slices.ContainsFunc(idx.Manifests, func(e ocispec.Descriptor) bool { return refName(e) == n && e.Digest == manifest.Digest }) {
			return errUnchanged
		}
		var old []ocispec.Descriptor
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(e ocispec.Descriptor) bool {
			if refName(e) == n {
				old = append(old, e)
				return true
			}
			// The untagged entry of this manifest gives way to the tag.
			return e.Digest == manifest.Digest && refName(e) == ""
		})
		idx.Manifests = append(idx.Manifests, entry)
		keepUntagged(idx, old)
		return nil
	})
	if err != nil {
		return fmt.Errorf("tag %s: %w", n, err)
	}
	return nil
}

// Untag removes the tag name. The image stays listed untagged if that was
// its last tag; Remove deletes it.
func (s *Content) Untag(ctx context.Context, ref string) error {
	n, err := NormalizeName(ref)
	if err != nil {
		return fmt.Errorf("untag: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err = s.updateIndex(func(idx *ocispec.Index) error {
		var old []ocispec.Descriptor
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(e ocispec.Descriptor) bool {
			if refName(e) == n {
				old = append(old, e)
				return true
			}
			return false
		})
		if len(old) == 0 {
			return ErrNotFound
		}
		keepUntagged(idx, old)
		return nil
	})
	if err != nil {
		return fmt.Errorf("untag %s: %w", n, err)
	}
	return nil
}

// Remove drops every index entry of the manifest d: its tags and its
// untagged entry. Blobs stay; garbage collection is not the index's job.
func (s *Content) Remove(ctx context.Context, d digest.Digest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.updateIndex(func(idx *ocispec.Index) error {
		n := len(idx.Manifests)
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(e ocispec.Descriptor) bool { return e.Digest == d })
		if len(idx.Manifests) == n {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove image %s: %w", d, err)
	}
	return nil
}

// keepUntagged adds an untagged entry for each manifest in old that no
// entry of idx points to any more.
func keepUntagged(idx *ocispec.Index, old []ocispec.Descriptor) {
	for _, o := range old {
		if !slices.ContainsFunc(idx.Manifests, func(e ocispec.Descriptor) bool { return e.Digest == o.Digest }) {
			idx.Manifests = append(idx.Manifests, plain(o))
		}
	}
}

func refName(d ocispec.Descriptor) string { return d.Annotations[ocispec.AnnotationRefName] }

// Resolve finds the manifest that ref names: a tag (normalized), a manifest
// digest ("sha256:..."), "name@sha256:...", or an image ID, which is the
// config digest with or without "sha256:", or a unique prefix of at least 4
// hex digits of it, like Docker. ErrNotFound if nothing matches, ErrInvalid
// if a prefix is ambiguous.
func (s *Content) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	if err := ctx.Err(); err != nil {
		return ocispec.Descriptor{}, err
	}
	idx, err := s.readIndex()
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	// A full digest: a manifest's, else an image ID.
	if d, err := digest.Parse(ref); err == nil {
		return s.resolveDigest(ctx, idx, d)
	}
	if isHex(ref) && len(ref) == 64 {
		return s.resolveDigest(ctx, idx, digest.NewDigestFromEncoded(digest.SHA256, ref))
	}
	// A tag, first: like Docker, a name wins over an ID prefix.
	if n, err := NormalizeName(ref); err == nil {
		for _, e := range idx.Manifests {
			if refName(e) == n {
				return plain(e), nil
			}
		}
		if _, dg, ok := strings.Cut(n, "@"); ok {
			if d, err := digest.Parse(dg); err == nil {
				return s.resolveDigest(ctx, idx, d)
			}
		}
	}
	prefix := strings.TrimPrefix(ref, digest.SHA256.String()+":")
	if len(prefix) >= minIDPrefix && isHex(prefix) {
		return s.resolveIDPrefix(ctx, idx, ref, prefix)
	}
	return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, ErrNotFound)
}

// resolveDigest finds d as a manifest digest (in the index or as a manifest
// blob), else as an image ID.
func (s *Content) resolveDigest(ctx context.Context, idx ocispec.Index, d digest.Digest) (ocispec.Descriptor, error) {
	for _, e := range idx.Manifests {
		if e.Digest == d {
			return plain(e), nil
		}
	}
	if s.HasBlob(d) {
		if desc, ok := s.manifestBlob(ctx, d); ok {
			return desc, nil
		}
	}
	if d.Algorithm() == digest.SHA256 {
		return s.resolveIDPrefix(ctx, idx, d.String(), d.Encoded())
	}
	return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", d, ErrNotFound)
}

// manifestBlob reports whether the blob d is an image manifest, and its
// descriptor.
func (s *Content) manifestBlob(ctx context.Context, d digest.Digest) (ocispec.Descriptor, bool) {
	b, err := s.readBlob(ctx, d)
	if err != nil {
		return ocispec.Descriptor{}, false
	}
	var m ocispec.Manifest
	if json.Unmarshal(b, &m) != nil || m.Config.Digest == "" {
		return ocispec.Descriptor{}, false
	}
	mt := m.MediaType
	if mt == "" {
		mt = ocispec.MediaTypeImageManifest
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}, true
}

// resolveIDPrefix finds the image whose config digest starts with prefix.
func (s *Content) resolveIDPrefix(ctx context.Context, idx ocispec.Index, ref, prefix string) (ocispec.Descriptor, error) {
	var found ocispec.Descriptor
	var foundID digest.Digest
	for _, e := range idx.Manifests {
		m, err := s.readManifest(ctx, e.Digest)
		if err != nil {
			continue // a broken entry must not hide the others
		}
		id := m.Config.Digest
		if id.Algorithm() != digest.SHA256 || !strings.HasPrefix(id.Encoded(), prefix) {
			continue
		}
		if foundID != "" && foundID != id {
			return ocispec.Descriptor{}, fmt.Errorf("resolve %s: ambiguous image ID prefix: %w", ref, ErrInvalid)
		}
		if foundID == "" {
			found, foundID = plain(e), id
		}
	}
	if foundID == "" {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, ErrNotFound)
	}
	return found, nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Content) readManifest(ctx context.Context, d digest.Digest) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := s.ReadJSON(ctx, d, &m); err != nil {
		return m, err
	}
	if m.Config.Digest == "" {
		return m, fmt.Errorf("manifest %s: no config: %w", d, ErrInvalid)
	}
	for i, l := range m.Layers {
		// The config's diff IDs name the layers' content, and an
		// unpacked layer is found by them alone: a layer descriptor
		// that is the config would go unnoticed into every image
		// built on this one.
		if l.Digest == m.Config.Digest {
			return m, fmt.Errorf("manifest %s: layer %d is its config %s: %w", d, i, l.Digest, ErrInvalid)
		}
	}
	return m, nil
}

// Images lists the index: one Image per tag, plus one per untagged image,
// newest first, then by name. An image whose manifest or config cannot be
// read (missing, or changed since it was written) is listed with Err set,
// so that one damaged image hides neither the others nor itself.
func (s *Content) Images(ctx context.Context) ([]Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var out []Image
	for _, e := range idx.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img := Image{Name: refName(e), Manifest: plain(e)}
		img.Err = s.readImage(ctx, &img)
		out = append(out, img)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// readImage fills img's config, creation time and size from its manifest.
func (s *Content) readImage(ctx context.Context, img *Image) error {
	m, err := s.readManifest(ctx, img.Manifest.Digest)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.Manifest.Digest, err)
	}
	img.Config = plain(m.Config)
	img.Layers = m.Layers
	var cfg ocispec.Image
	if err := s.ReadJSON(ctx, m.Config.Digest, &cfg); err != nil {
		return fmt.Errorf("image %s: config: %w", img.Manifest.Digest, err)
	}
	if cfg.Created != nil {
		img.Created = *cfg.Created
	}
	return nil
}

// LoadImage reads the manifest and config of an image. Docker schema2
// manifests read the same way.
func (s *Content) LoadImage(ctx context.Context, manifest ocispec.Descriptor) (ocispec.Manifest, ocispec.Image, error) {
	var cfg ocispec.Image
	m, err := s.LoadImageAs(ctx, manifest, &cfg)
	return m, cfg, err
}

// LoadImageAs is LoadImage reading the config into cfg, for a caller that
// wants it in another type (Docker's, which keeps Healthcheck, OnBuild and
// Shell) without reading it twice.
func (s *Content) LoadImageAs(ctx context.Context, manifest ocispec.Descriptor, cfg any) (ocispec.Manifest, error) {
	m, err := s.readManifest(ctx, manifest.Digest)
	if err != nil {
		return ocispec.Manifest{}, fmt.Errorf("load image %s: %w", manifest.Digest, err)
	}
	if err := s.ReadJSON(ctx, m.Config.Digest, cfg); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("load image %s: %w", manifest.Digest, err)
	}
	return m, nil
}

// ShortID is the 12 hex digits of an image ID that Docker displays.
func ShortID(id digest.Digest) string {
	e := id.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}
