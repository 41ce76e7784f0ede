package snapshot

import (
	"context"
	"fmt"
	"io"
	"sync"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// LayerOpener reads a layer blob back as an uncompressed tar; the store
// in production.
type LayerOpener interface {
	OpenLayer(ctx context.Context, d digest.Digest) (io.ReadCloser, error)
}

// ChainOf is the committed snapshot of the layers with these diff IDs,
// bottom first; it need not be unpacked yet.
func ChainOf(diffIDs []digest.Digest) Committed {
	return Committed{Chain: identity.ChainIDs(append([]digest.Digest(nil), diffIDs...))}
}

// Materialize unpacks the given layers (bottom first, read through src)
// that are not unpacked yet and returns their committed snapshot. Builds
// call it only for steps after a cache miss, so a fully cached build
// unpacks nothing; containers call it for their image.
func (s *Snapshotter) Materialize(ctx context.Context, src LayerOpener, layers []ocispec.Descriptor, diffIDs []digest.Digest) (Committed, error) {
	if len(layers) != len(diffIDs) {
		return Committed{}, fmt.Errorf("materialize: %d layers but %d diff IDs", len(layers), len(diffIDs))
	}
	full := ChainOf(diffIDs)
	for i, chainID := range full.Chain {
		if s.Has(chainID) {
			continue
		}
		if err := s.unpackOnce(ctx, src, Committed{Chain: full.Chain[:i]}, chainID, layers[i]); err != nil {
			return Committed{}, err
		}
	}
	return full, nil
}

// unpackOnce unpacks one layer, once per chain ID even when stages ask for
// it at the same time. Another process unpacking the same layer is safe
// too (see Unpack), only not shared.
func (s *Snapshotter) unpackOnce(ctx context.Context, src LayerOpener, parent Committed, chainID digest.Digest, layer ocispec.Descriptor) error {
	mu := s.unpackLock(chainID)
	mu.Lock()
	defer mu.Unlock()
	if s.Has(chainID) {
		return nil
	}
	rc, err := src.OpenLayer(ctx, layer.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := s.Unpack(ctx, parent, chainID, rc); err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	return nil
}

func (s *Snapshotter) unpackLock(chainID digest.Digest) *sync.Mutex {
	s.unpackMu.Lock()
	defer s.unpackMu.Unlock()
	if s.unpacks == nil {
		s.unpacks = map[digest.Digest]*sync.Mutex{}
	}
	mu := s.unpacks[chainID]
	if mu == nil {
		mu = &sync.Mutex{}
		s.unpacks[chainID] = mu
	}
	return mu
}
