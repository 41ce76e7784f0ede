package exporter

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/ctxio"
	"github.com/builder-dev/builder/store"
)

// annotationImageName is containerd's (and Docker's) full image name
// annotation; ref.name alone is often read as a bare tag.
const annotationImageName = "io.containerd.image.name"

// epoch is the mtime of every archive entry, so that saving the same images
// twice gives the same archive.
var epoch = time.Unix(0, 0)

// SaveOCI writes an oci-archive of the images refs name to w: a tar of an
// OCI image layout whose index.json lists each image, tagged ones annotated
// with org.opencontainers.image.ref.name (the store's name, so
// `skopeo copy oci-archive:x.tar:app:latest` finds it) and
// io.containerd.image.name. Blobs are streamed from the store; layers go
// out compressed, each gzipped once in the store if it came uncompressed
// (see store.Content.CompressedImage), so an image loaded from a docker
// archive has another manifest digest here, and the same ID. As it may
// write to the store, its caller holds the build lock.
func SaveOCI(ctx context.Context, s *store.Store, refs []string, w io.Writer) error {
	targets, err := resolveRefs(ctx, s, refs)
	if err != nil {
		return fmt.Errorf("save oci archive: %w", err)
	}
	tw := tar.NewWriter(w)
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := writeFile(tw, ocispec.ImageLayoutFile, layout); err != nil {
		return fmt.Errorf("save oci archive: %w", err)
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return fmt.Errorf("save oci archive: %w", err)
		}
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	written := map[digest.Digest]bool{}
	for _, t := range targets {
		// Layers the store keeps uncompressed (loaded from a docker
		// archive) go out gzip, under a manifest made for the archive.
		md, raw, err := s.Content().CompressedImage(ctx, t.manifest)
		if err != nil {
			return fmt.Errorf("save oci archive: image %s: %w", t.shownAs(), err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("save oci archive: image %s: manifest %s: %w", t.shownAs(), md.Digest, err)
		}
		if !written[md.Digest] {
			if err := writeFile(tw, blobName(md.Digest), raw); err != nil {
				return fmt.Errorf("save oci archive: image %s: %w", t.shownAs(), err)
			}
			written[md.Digest] = true
		}
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if written[d.Digest] {
				continue
			}
			if err := writeBlob(ctx, tw, s, d); err != nil {
				return fmt.Errorf("save oci archive: image %s: %w", t.shownAs(), err)
			}
			written[d.Digest] = true
		}
		entry := ocispec.Descriptor{MediaType: md.MediaType, Digest: md.Digest, Size: md.Size}
		if t.name != "" {
			entry.Annotations = map[string]string{
				ocispec.AnnotationRefName: t.name,
				annotationImageName:       qualifiedName(t.name),
			}
		}
		idx.Manifests = append(idx.Manifests, entry)
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("save oci archive: %w", err)
	}
	if err := writeFile(tw, ocispec.ImageIndexFile, b); err != nil {
		return fmt.Errorf("save oci archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("save oci archive: %w", err)
	}
	return nil
}

// writeFile adds a regular file holding b.
func writeFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := tw.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// writeBlob streams the blob d from the store into the archive under
// blobs/<alg>/<hex>, checking it against its digest on the way (the copy
// fails at the end on a changed blob).
func writeBlob(ctx context.Context, tw *tar.Writer, s *store.Store, d ocispec.Descriptor) error {
	rc, err := s.Content().OpenBlob(ctx, d.Digest)
	if err != nil {
		return fmt.Errorf("write blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: blobName(d.Digest), Mode: 0o644, Size: d.Size, ModTime: epoch}); err != nil {
		return fmt.Errorf("write blob %s: %w", d.Digest, err)
	}
	// A blob longer than d.Size fails the tar writer, a shorter one the
	// digest check.
	if _, err := io.Copy(tw, ctxio.Reader(ctx, rc)); err != nil {
		return fmt.Errorf("write blob %s: %w", d.Digest, err)
	}
	return nil
}

// blobName is where an OCI layout keeps the blob d.
func blobName(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}
