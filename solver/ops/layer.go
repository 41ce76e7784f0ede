package ops

import (
	"context"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"

	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/snapshot/archive"
	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/store"
)

// layer runs fn over a fresh snapshot of parent (unpacking what is not
// unpacked yet) and makes its changes the new layer.
func (r *Resolver) layer(ctx context.Context, parent solver.Chain, fn func(context.Context, *snapshot.Active) error) (solver.Layer, error) {
	base, err := r.cfg.Snap.Materialize(ctx, r.layers(), parent.Layers, parent.DiffIDs)
	if err != nil {
		return solver.Layer{}, err
	}
	active, err := r.cfg.Snap.Prepare(ctx, base)
	if err != nil {
		return solver.Layer{}, fmt.Errorf("prepare snapshot: %w", err)
	}
	if err := fn(ctx, active); err != nil {
		_ = active.Remove(context.WithoutCancel(ctx))
		return solver.Layer{}, err
	}
	blob, diffID, err := r.commit(ctx, base, active)
	if err != nil {
		return solver.Layer{}, err
	}
	return solver.Layer{Blob: blob, DiffID: diffID}, nil
}

// layers is where Materialize reads the layers it unpacks: the store,
// through the fetcher when there is one.
func (r *Resolver) layers() snapshot.LayerOpener {
	if r.cfg.Fetcher == nil {
		return r.cfg.Store.Content()
	}
	return fetchingOpener{c: r.cfg.Store.Content(), f: r.cfg.Fetcher}
}

// fetchingOpener fetches a layer blob the store lacks before opening it.
// Materialize opens only the layers that are not unpacked yet, so a layer
// whose snapshot is there is never downloaded.
type fetchingOpener struct {
	c *store.Content
	f BlobFetcher
}

func (o fetchingOpener) OpenLayer(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	if !o.c.HasBlob(d) {
		if err := o.f.FetchBlob(ctx, d); err != nil {
			return nil, err
		}
	}
	return o.c.OpenLayer(ctx, d)
}

// commit writes the active snapshot's changes as a gzip layer (streamed:
// tar -> pgzip -> a staged blob, hashing the tar for the diff ID) and
// commits the snapshot under the new chain ID. The blob is returned staged:
// the solver commits it into the store, so that the next step need not
// wait for the disk to sync it.
func (r *Resolver) commit(ctx context.Context, parent snapshot.Committed, active *snapshot.Active) (*store.StagedBlob, digest.Digest, error) {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(archive.WriteLayer(ctx, active.UpperDir(), pw, archive.WriteOptions{}))
	}()
	blob, diffID, err := r.cfg.Store.Content().StageLayer(ctx, pr)
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
