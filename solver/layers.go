package solver

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/pgzip"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/snapshot/archive"
)

type baseImage struct {
	manifest ocispec.Descriptor
	layers   []ocispec.Descriptor
	diffIDs  []digest.Digest
	config   ocispec.Image
}

// image loads an image of the store by reference.
func (s *Solver) image(ctx context.Context, ref string) (*baseImage, error) {
	desc, err := s.Store.Resolve(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	m, cfg, err := s.Store.LoadImage(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("load image %q: %w", ref, err)
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("image %q: %d layers but %d diff IDs", ref, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	return &baseImage{manifest: desc, layers: m.Layers, diffIDs: cfg.RootFS.DiffIDs, config: cfg}, nil
}

func chainOf(diffIDs []digest.Digest) snapshot.Committed {
	return snapshot.Committed{Chain: identity.ChainIDs(append([]digest.Digest(nil), diffIDs...))}
}

// materialize unpacks every layer of st that is not unpacked yet and returns
// the committed snapshot. Only steps after a cache miss call it, so a fully
// cached build never unpacks anything.
func (s *Solver) materialize(ctx context.Context, st state) (snapshot.Committed, error) {
	return s.Materialize(ctx, st.layers, st.diffIDs)
}

// Materialize unpacks the given layers (bottom first) as needed and returns
// their committed snapshot.
func (s *Solver) Materialize(ctx context.Context, layers []ocispec.Descriptor, diffIDs []digest.Digest) (snapshot.Committed, error) {
	full := chainOf(diffIDs)
	for i, chainID := range full.Chain {
		if s.Snap.Has(chainID) {
			continue
		}
		if err := s.unpackOne(ctx, snapshot.Committed{Chain: full.Chain[:i]}, chainID, layers[i]); err != nil {
			return snapshot.Committed{}, err
		}
	}
	return full, nil
}

// unpackOne unpacks one layer, once per chain ID even when stages ask for it
// at the same time.
func (s *Solver) unpackOne(ctx context.Context, parent snapshot.Committed, chainID digest.Digest, layer ocispec.Descriptor) error {
	s.unpackMu.Lock()
	if s.unpacks == nil {
		s.unpacks = map[digest.Digest]*sync.Mutex{}
	}
	mu := s.unpacks[chainID]
	if mu == nil {
		mu = &sync.Mutex{}
		s.unpacks[chainID] = mu
	}
	s.unpackMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if s.Snap.Has(chainID) {
		return nil
	}
	rc, err := s.openLayer(ctx, layer)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := s.Snap.Unpack(ctx, parent, chainID, rc); err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	return nil
}

// openLayer returns the uncompressed tar stream of a layer blob.
func (s *Solver) openLayer(ctx context.Context, layer ocispec.Descriptor) (io.ReadCloser, error) {
	return OpenLayer(ctx, s.Store, layer)
}

// BlobOpener is the part of the store OpenLayer reads from.
type BlobOpener interface {
	OpenBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, error)
}

// OpenLayer opens a layer blob as an uncompressed tar stream.
func OpenLayer(ctx context.Context, st BlobOpener, layer ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := st.OpenBlob(ctx, layer.Digest)
	if err != nil {
		return nil, fmt.Errorf("open layer %s: %w", layer.Digest, err)
	}
	if !strings.Contains(layer.MediaType, "gzip") {
		return rc, nil
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("decompress layer %s: %w", layer.Digest, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, rc}, nil
}

// commit writes the active snapshot's changes as a gzip layer into the store
// (streamed: tar -> diffID hash + pgzip -> blob) and commits the snapshot
// under the new chain ID.
func (s *Solver) commit(ctx context.Context, parent snapshot.Committed, active *snapshot.Active) (ocispec.Descriptor, digest.Digest, error) {
	pr, pw := io.Pipe()
	diff := digest.SHA256.Digester()
	go func() {
		gz := pgzip.NewWriter(pw)
		err := archive.WriteLayer(ctx, active.UpperDir(), io.MultiWriter(diff.Hash(), gz), archive.WriteOptions{})
		if cerr := gz.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	desc, err := s.Store.Ingest(ctx, ocispec.MediaTypeImageLayerGzip, pr)
	pr.CloseWithError(err)
	if err != nil {
		_ = active.Remove(context.WithoutCancel(ctx))
		return ocispec.Descriptor{}, "", fmt.Errorf("write layer: %w", err)
	}
	diffID := diff.Digest()
	chainID := diffID
	if len(parent.Chain) > 0 {
		chainID = identity.ChainID([]digest.Digest{parent.Top(), diffID})
	}
	if _, err := active.Commit(ctx, chainID); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("commit snapshot: %w", err)
	}
	return desc, diffID, nil
}
