package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.etcd.io/bbolt"
)

// A layer is kept in the form it came in: a docker archive's tar as an
// uncompressed blob (application/vnd.oci.image.layer.v1.tar, whose digest
// is the layer's diff ID), a registry's gzip or zstd blob as it is, a
// built layer as gzip (IngestLayer: a push needs it compressed, and a
// step's layer is small). An output that needs the other form makes it
// from the blob: CompressedLayer gzips an uncompressed layer once and
// remembers the gzip blob in meta.db under the diff ID, so that the next
// push or OCI archive of the layer reuses it; OpenUncompressed reads a
// compressed layer's tar, from an uncompressed blob of the same diff ID
// when the store has one.

// gzipBucket maps a layer's diff ID to the descriptor (JSON) of a gzip
// blob of that layer: every gzip layer blob the store commits with its
// diff ID known (StagedBlob.DiffID), built, loaded, pulled or made by
// CompressedLayer. An entry is only a hint: its blob may have been
// removed since (a prune, store verify --remove), which every reader
// checks.
var gzipBucket = []byte("layergzip.v1")

// MediaTypeDockerLayerGzip is Docker's gzip layer, which a Docker
// schema2 manifest lists.
const MediaTypeDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"

// LayerCompression tells a layer blob's compression from its media type
// (OCI's and Docker's, nondistributable ones included).
func LayerCompression(mediaType string) Compression {
	switch {
	case strings.HasSuffix(mediaType, "+gzip") || strings.HasSuffix(mediaType, ".gzip"):
		return Gzip
	case strings.HasSuffix(mediaType, "+zstd") || strings.HasSuffix(mediaType, ".zstd"):
		return Zstd
	}
	return Uncompressed
}

// LayerMediaType is the OCI media type of a layer blob compressed with c.
func LayerMediaType(c Compression) string {
	switch c {
	case Gzip:
		return ocispec.MediaTypeImageLayerGzip
	case Zstd:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

// CompressedLayer returns the layer blob layer (of diff ID diffID) in a
// compressed form, as a push or an OCI archive needs it: layer itself when
// it is gzip or zstd, else the gzip blob remembered for diffID, else one
// made now from layer's blob (pgzip, the same bytes IngestLayer writes for
// the same tar), committed and remembered, so it is made once. The
// descriptor keeps layer's annotations. Since it may write a blob, its
// caller holds the build lock (Store.LockBuild), as for any write: the
// blob is kept by what is remembered, which a prune must not come
// between.
func (s *Content) CompressedLayer(ctx context.Context, layer ocispec.Descriptor, diffID digest.Digest) (ocispec.Descriptor, error) {
	if LayerCompression(layer.MediaType) != Uncompressed {
		return layer, nil
	}
	if layer.Digest != diffID {
		// An uncompressed blob is its tar: its digest is the diff ID.
		return ocispec.Descriptor{}, fmt.Errorf("compress layer %s: uncompressed, but its diff ID is %s: %w", layer.Digest, diffID, ErrInvalid)
	}
	d, ok, err := s.gzipForm(ctx, diffID)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("compress layer %s: %w", layer.Digest, err)
	}
	if !ok {
		// One compression per layer, however many callers want it
		// at once (a push of several images sharing a base).
		v, err, _ := s.compressing.Do(string(diffID), func() (any, error) {
			return s.gzipLayer(ctx, layer)
		})
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		d = v.(ocispec.Descriptor)
	}
	d.Annotations = layer.Annotations
	return d, nil
}

// gzipLayer compresses the uncompressed layer blob layer into the store.
func (s *Content) gzipLayer(ctx context.Context, layer ocispec.Descriptor) (ocispec.Descriptor, error) {
	rc, err := s.OpenBlob(ctx, layer.Digest)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("compress layer: %w", err)
	}
	defer rc.Close()
	// The blob's verifier fails the read at its end if the file changed:
	// no gzip of damaged bytes is ever committed.
	b, diffID, err := s.StageLayer(ctx, rc)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("compress layer %s: %w", layer.Digest, err)
	}
	if diffID != layer.Digest {
		b.Discard()
		return ocispec.Descriptor{}, fmt.Errorf("compress layer %s: read %s: %w", layer.Digest, diffID, ErrDigest)
	}
	if err := b.Commit(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("compress layer %s: %w", layer.Digest, err)
	}
	return b.Desc, nil
}

// gzipForm returns the gzip blob remembered for diffID, if the store
// still has it whole (as far as its size tells).
func (s *Content) gzipForm(ctx context.Context, diffID digest.Digest) (ocispec.Descriptor, bool, error) {
	var d ocispec.Descriptor
	err := s.db.View(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(gzipBucket)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(diffID)); v != nil && json.Unmarshal(v, &d) != nil {
			d = ocispec.Descriptor{} // unreadable: made again
		}
		return nil
	})
	if err != nil || d.Digest.Validate() != nil {
		return ocispec.Descriptor{}, false, err
	}
	fi, err := os.Lstat(s.blobPath(d.Digest))
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != d.Size {
		return ocispec.Descriptor{}, false, nil
	}
	return d, true, nil
}

// GzipForms returns every gzip blob remembered for a diff ID (see
// CompressedLayer), by diff ID, whether or not it is still present:
// garbage collection keeps the gzip form of an uncompressed layer blob as
// long as that blob is kept.
func (s *Content) GzipForms(ctx context.Context) (map[digest.Digest]digest.Digest, error) {
	out := map[digest.Digest]digest.Digest{}
	err := s.db.View(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(gzipBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var d ocispec.Descriptor
			if json.Unmarshal(v, &d) == nil && d.Digest.Validate() == nil {
				out[digest.Digest(k)] = d.Digest
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read layers' gzip forms: %w", err)
	}
	return out, nil
}

// ForgetGzipForms drops what is remembered of the gzip blobs in removed,
// which the caller removed (a prune, a repair), so that nothing
// remembered names a blob that is gone. A caller killed before this
// leaves entries that CompressedLayer finds stale and replaces.
func (s *Content) ForgetGzipForms(ctx context.Context, removed []digest.Digest) error {
	if len(removed) == 0 {
		return nil
	}
	gone := make(map[digest.Digest]bool, len(removed))
	for _, d := range removed {
		gone[d] = true
	}
	err := s.db.Update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(gzipBucket)
		if b == nil {
			return nil
		}
		var drop [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var d ocispec.Descriptor
			if json.Unmarshal(v, &d) != nil || gone[d.Digest] {
				drop = append(drop, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forget layers' gzip forms: %w", err)
	}
	return nil
}

// rememberLayer keeps what a committed layer blob's writer knew of it: its
// LayerInfo, and for a gzip blob of known diff ID, that it is the layer's
// gzip form. Nothing for a blob that is no layer.
func (s *Content) rememberLayer(ctx context.Context, desc ocispec.Descriptor, info *LayerInfo, diffID digest.Digest) error {
	gzipForm := diffID != "" && LayerCompression(desc.MediaType) == Gzip
	if info == nil && !gzipForm {
		return nil
	}
	return s.db.Update(ctx, func(tx *bbolt.Tx) error {
		if info != nil {
			if err := putLayerInfos(tx, map[digest.Digest]LayerInfo{desc.Digest: *info}); err != nil {
				return err
			}
		}
		if !gzipForm {
			return nil
		}
		b, err := tx.CreateBucketIfNotExists(gzipBucket)
		if err != nil {
			return err
		}
		v, err := json.Marshal(ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size})
		if err != nil {
			return err
		}
		return b.Put([]byte(diffID), v)
	})
}

// OpenUncompressed opens the tar of the layer blob layer (of diff ID
// diffID), as a docker archive needs it: layer's blob itself when it is
// uncompressed or the store has an uncompressed blob of diffID, else
// layer's blob decompressed as it is read. No uncompressed copy is kept:
// decompressing costs a fraction of compressing, and a tar takes two to
// four times its gzip's space. Read it to its end (see OpenLayer).
func (s *Content) OpenUncompressed(ctx context.Context, layer ocispec.Descriptor, diffID digest.Digest) (io.ReadCloser, error) {
	if LayerCompression(layer.MediaType) != Uncompressed && s.HasBlob(diffID) {
		rc, err := s.OpenLayer(ctx, diffID)
		if !errors.Is(err, ErrNotFound) {
			return rc, err
		}
		// Removed meanwhile: the layer's own blob serves.
	}
	return s.OpenLayer(ctx, layer.Digest)
}

// CompressedImage returns the image manifest md as a push or an OCI
// archive sends it, with every layer compressed (see CompressedLayer),
// and its bytes: md and the stored bytes when every layer is compressed
// already, else a manifest made now over the same config (so the image
// ID is the same) and not stored, since the store keeps the image as it
// came. Layers are compressed in order, each once.
func (s *Content) CompressedImage(ctx context.Context, md ocispec.Descriptor) (ocispec.Descriptor, []byte, error) {
	raw, err := s.ReadBlob(ctx, md.Digest)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("compress image %s: %w", md.Digest, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("compress image %s: decode manifest: %w", md.Digest, err)
	}
	all := true
	for _, l := range m.Layers {
		all = all && LayerCompression(l.MediaType) != Uncompressed
	}
	if all {
		return md, raw, nil
	}
	_, cfg, err := s.LoadImage(ctx, md)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("compress image: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return ocispec.Descriptor{}, nil, fmt.Errorf("compress image %s: %d layers but %d diff_ids: %w", md.Digest, len(m.Layers), len(cfg.RootFS.DiffIDs), ErrInvalid)
	}
	for i, l := range m.Layers {
		c, err := s.CompressedLayer(ctx, l, cfg.RootFS.DiffIDs[i])
		if err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("compress image %s: %w", md.Digest, err)
		}
		if m.MediaType == MediaTypeDockerManifest && LayerCompression(c.MediaType) == Gzip {
			// A docker manifest lists docker media types only.
			c.MediaType = MediaTypeDockerLayerGzip
		}
		m.Layers[i] = c
	}
	out, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("compress image %s: %w", md.Digest, err)
	}
	mt := m.MediaType
	if mt == "" {
		mt = ocispec.MediaTypeImageManifest
	}
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(out), Size: int64(len(out))}, out, nil
}
