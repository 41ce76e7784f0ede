package solver

import (
	"context"
	"fmt"
	"io"
	"sync"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/snapshot/archive"
	"github.com/builder-dev/builder/store"
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
	rc, err := s.Store.OpenLayer(ctx, layer.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := s.Snap.Unpack(ctx, parent, chainID, rc); err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	return nil
}

// commit writes the active snapshot's changes as a gzip layer (streamed:
// tar -> pgzip -> a staged blob, hashing the tar for the diff ID) and
// commits the snapshot under the new chain ID. The blob is returned staged:
// the caller commits it into the store (see recorder), so that the next
// step need not wait for the disk to sync it.
func (s *Solver) commit(ctx context.Context, parent snapshot.Committed, active *snapshot.Active) (*store.StagedBlob, digest.Digest, error) {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(archive.WriteLayer(ctx, active.UpperDir(), pw, archive.WriteOptions{}))
	}()
	blob, diffID, err := s.Store.StageLayer(ctx, pr)
	pr.CloseWithError(err)
	if err != nil {
		_ = active.Remove(context.WithoutCancel(ctx))
		return nil, "", fmt.Errorf("write layer: %w", err)
	}
	crashpoint.Hit("solver.layer.staged")
	chainID := diffID
	if len(parent.Chain) > 0 {
		chainID = identity.ChainID([]digest.Digest{parent.Top(), diffID})
	}
	if _, err := active.Commit(ctx, chainID); err != nil {
		blob.Discard()
		return nil, "", fmt.Errorf("commit snapshot: %w", err)
	}
	return blob, diffID, nil
}
