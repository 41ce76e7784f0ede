package remotecache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
)

// Mode says which records an export writes.
type Mode string

const (
	// ModeMin exports the records of the result's layers.
	ModeMin Mode = "min"
	// ModeMax exports the records of every step of every stage the build
	// solved.
	ModeMax Mode = "max"
)

// Select returns the records of recs that mode exports for a result whose
// layers have diffIDs: for ModeMin those that made the result's layers,
// on the very layers below them.
func Select(recs []cache.Record, diffIDs []digest.Digest, mode Mode) []cache.Record {
	if mode == ModeMax {
		return recs
	}
	// The chain ID below each of the result's layers, by layer.
	below := map[digest.Digest][]digest.Digest{}
	for i, d := range diffIDs {
		var parent digest.Digest
		if i > 0 {
			parent = identity.ChainID(diffIDs[:i])
		}
		below[d] = append(below[d], parent)
	}
	var out []cache.Record
	for _, r := range recs {
		for _, p := range below[r.DiffID] {
			if p == r.ParentChain {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// Source is where an export finds a layer blob that neither the store nor
// the destination has: the imported cache (an *Importer), whose blob is
// copied across without being stored. Nil: none.
type Source interface {
	OpenBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, error)
	TarSize(d digest.Digest) (int64, bool)
}

// exportConcurrency bounds the blob checks and uploads at once, as
// registries and docker push do (ggcr's default jobs is 4 as well).
const exportConcurrency = 4

// Export writes recs as the cache at dst, replacing the one there. Only
// what dst lacks is uploaded (see the package doc); the Stats say what
// was.
func Export(ctx context.Context, st *store.Store, dst Target, recs []cache.Record, src Source) (Stats, error) {
	out, err := records(ctx, st, recs, src)
	if err != nil {
		return Stats{}, err
	}
	e, err := encode(out)
	if err != nil {
		return Stats{}, err
	}
	// With the same records the manifest is not written again; the blobs
	// are checked all the same, as a manifest may outlive a blob an
	// operator deleted.
	current, err := dst.Manifest(ctx)
	unchanged := err == nil && bytes.Equal(current, e.manifest)
	var stats Stats
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(exportConcurrency)
	put := func(d ocispec.Descriptor, open func() (io.ReadCloser, error)) {
		g.Go(func() error {
			ok, err := dst.HasBlob(gctx, d)
			if err != nil || ok {
				return err
			}
			if err := dst.WriteBlob(gctx, d, open); err != nil {
				return err
			}
			mu.Lock()
			stats.Blobs++
			stats.Bytes += d.Size
			mu.Unlock()
			return nil
		})
	}
	for _, l := range e.layers {
		put(l, func() (io.ReadCloser, error) {
			if !st.Content().HasBlob(l.Digest) && src != nil {
				return src.OpenBlob(gctx, l.Digest)
			}
			return st.Content().OpenBlob(gctx, l.Digest)
		})
	}
	put(e.configDesc, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(e.config)), nil })
	if err := g.Wait(); err != nil {
		return stats, fmt.Errorf("export cache to %s: %w", dst, err)
	}
	if unchanged {
		return stats, nil
	}
	if err := dst.WriteManifest(ctx, e.manifest, e.manifestDesc); err != nil {
		return stats, fmt.Errorf("export cache to %s: %w", dst, err)
	}
	return stats, nil
}

// records converts recs to the cache's form, with each layer's
// uncompressed size from the imported cache or else from the store, which
// remembers it for the layers it wrote (a layer fetched without a size is
// read once and then remembered too).
func records(ctx context.Context, st *store.Store, recs []cache.Record, src Source) ([]Record, error) {
	sizes := map[digest.Digest]int64{}
	var local []digest.Digest
	for _, r := range recs {
		d := r.Layer.Digest
		if src != nil {
			if n, ok := src.TarSize(d); ok {
				sizes[d] = n
				continue
			}
		}
		if st.Content().HasBlob(d) {
			local = append(local, d)
		}
	}
	infos, err := st.LayerInfos(ctx, local)
	if err != nil {
		return nil, fmt.Errorf("export cache: %w", err)
	}
	for d, li := range infos {
		if li.TarSize > 0 {
			sizes[d] = li.TarSize
		}
	}
	out := make([]Record, 0, len(recs))
	for _, r := range recs {
		step := r.Step
		// The expanded op holds ARG and ENV values (a token given to a
		// build stage with --build-arg): a cache pushed to a registry must
		// not publish them. The key covers them as a digest; only
		// --explain's detail of an imported record is lost.
		step.Op = nil
		step.Files = nil
		out = append(out, Record{Key: r.Key, ParentChain: r.ParentChain, Layer: r.Layer, DiffID: r.DiffID,
			UncompressedSize: sizes[r.Layer.Digest], Created: r.Created.UTC(), Step: step})
	}
	return out, nil
}
