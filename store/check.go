package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/builder-dev/builder/internal/ctxio"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BadBlob is a blob that Verify found corrupt (its content does not hash to
// its name, or it cannot be read) or missing (an image refers to it).
type BadBlob struct {
	Digest  digest.Digest
	Missing bool
	Err     error // why it is corrupt; nil when Missing
	// Images that refer to it: their tags, or the manifest digest of an
	// untagged one, and their manifests.
	Images    []string
	Manifests []digest.Digest
}

// Verify rehashes every blob under content/blobs and follows every listed
// image's manifest to its config and layers, reporting blobs that are
// corrupt or missing, with the images that refer to them, sorted by
// digest. Nothing is changed.
func (s *Content) Verify(ctx context.Context) ([]BadBlob, error) {
	bad := map[digest.Digest]*BadBlob{}
	entries, err := os.ReadDir(s.blobsDir())
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue // not a blob: not ours to judge
		}
		// Named as a blob but no regular file (a symlink, a
		// directory, a FIFO): checkBlob reports it without reading.
		if err := s.checkBlob(ctx, d); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			bad[d] = &BadBlob{Digest: d, Err: err}
		}
	}
	idx, err := s.readIndex()
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	refer := func(d digest.Digest, name string, manifest digest.Digest) {
		b := bad[d]
		if b == nil {
			if s.HasBlob(d) {
				return
			}
			b = &BadBlob{Digest: d, Missing: true}
			bad[d] = b
		}
		if !slices.Contains(b.Images, name) {
			b.Images = append(b.Images, name)
		}
		if !slices.Contains(b.Manifests, manifest) {
			b.Manifests = append(b.Manifests, manifest)
		}
	}
	for _, e := range idx.Manifests {
		name := refName(e)
		if name == "" {
			name = e.Digest.String()
		}
		refer(e.Digest, name, e.Digest)
		if bad[e.Digest] != nil {
			continue
		}
		m, err := s.readManifest(ctx, e.Digest)
		if err != nil {
			// A good blob that is no manifest: the entry is as broken.
			bad[e.Digest] = &BadBlob{Digest: e.Digest, Err: err, Images: []string{name}, Manifests: []digest.Digest{e.Digest}}
			continue
		}
		refer(m.Config.Digest, name, e.Digest)
		for _, l := range m.Layers {
			refer(l.Digest, name, e.Digest)
		}
		if bad[m.Config.Digest] != nil {
			continue
		}
		if err := s.checkImage(ctx, e.Digest, m); err != nil {
			// Every blob is good but they do not make an image:
			// building on it or running it fails, so the manifest is
			// as broken as a corrupt one.
			bad[e.Digest] = &BadBlob{Digest: e.Digest, Err: err, Images: []string{name}, Manifests: []digest.Digest{e.Digest}}
		}
	}
	out := make([]BadBlob, 0, len(bad))
	for _, b := range bad {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b BadBlob) int { return cmpDigest(a.Digest, b.Digest) })
	return out, nil
}

// checkImage checks that the manifest m (stored as d) and its config
// agree: one diff ID per layer.
func (s *Content) checkImage(ctx context.Context, d digest.Digest, m ocispec.Manifest) error {
	var cfg ocispec.Image
	if err := s.ReadJSON(ctx, m.Config.Digest, &cfg); err != nil {
		return fmt.Errorf("manifest %s: config: %w", d, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("manifest %s lists %d layers but its config %d diff IDs: %w", d, len(m.Layers), len(cfg.RootFS.DiffIDs), ErrInvalid)
	}
	return nil
}

func cmpDigest(a, b digest.Digest) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkBlob reads the blob d whole through its verifier.
func (s *Content) checkBlob(ctx context.Context, d digest.Digest) error {
	rc, err := s.OpenBlob(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, ctxio.Reader(ctx, rc))
	if err != nil && !errors.Is(err, ErrDigest) {
		err = fmt.Errorf("read blob %s: %w", d, err)
	}
	return err
}

// RemoveBlob deletes the blob d (for repairing a store: a corrupt blob is
// worse than a missing one). A missing blob is not an error.
func (s *Content) RemoveBlob(ctx context.Context, d digest.Digest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("remove blob %q: %w: %v", d, ErrInvalid, err)
	}
	// RemoveAll: a directory in a blob's place goes too; a symlink is
	// removed, not followed.
	if err := os.RemoveAll(s.blobPath(d)); err != nil {
		return fmt.Errorf("remove blob %s: %w", d, err)
	}
	return nil
}
