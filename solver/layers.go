package solver

import (
	"context"
	"fmt"
	"io"

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
