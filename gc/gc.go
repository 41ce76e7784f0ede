package gc

import (
	"context"
	"fmt"
	"slices"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/store/cache"
)

// PruneOptions say which cache records Prune removes; see plan.choose.
type PruneOptions struct {
	// All removes every record, not only those no image or container
	// uses; with KeepStorage, it only widens the candidates.
	All bool
	// KeepStorage, if > 0, removes least recently used records only until
	// what records alone hold (Usage.Reclaimable) is at most this many
	// bytes, and only records whose removal frees bytes: those whose
	// layers an image, a container or another record keeps stay.
	KeepStorage int64
	// Until, if > 0, removes only records last used (they and their
	// descendants) more than Until ago.
	Until time.Duration
	// Now is the time Until counts back from; zero means time.Now().
	Now time.Time
	// Waiting is called once if Prune has to wait for running builds.
	Waiting func()
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Records   []cache.Record // removed, descendants before their parents
	Blobs     int            // blob files deleted
	Layers    int            // unpacked layer directories deleted
	TempFiles int            // entries of tmp/ deleted
	Actives   int            // writable snapshots of killed builds deleted
	// ContainerDirs are directories of killed container creations deleted.
	ContainerDirs int
	// Reclaimed is the bytes freed: blob sizes plus the disk usage of
	// the rest, which is what DiskUsage's Reclaimable plus Unreferenced
	// go down by.
	Reclaimed int64
}

// Prune removes the cache records opt selects, then every blob no listed
// image, kept record or root holds, every unpacked layer none of them
// needs, and what killed processes left (see Sweep). It waits for running
// builds first and keeps them out until it is done.
func (c *Collector) Prune(ctx context.Context, opt PruneOptions) (PruneReport, error) {
	var rep PruneReport
	lock, err := c.Store.LockGC(ctx, opt.Waiting)
	if err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	defer lock.Release()
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	s, err := c.scan(ctx, false)
	if err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	pol := policy{all: opt.All, keep: opt.KeepStorage}
	if opt.Until > 0 {
		pol.before = now.Add(-opt.Until)
	}
	gone := s.plan().choose(pol)
	goneKeys := make([]digest.Digest, 0, len(gone))
	for _, n := range gone {
		goneKeys = append(goneKeys, n.rec.Key)
		rep.Records = append(rep.Records, n.rec)
	}
	// Records go first: a kill after this leaves unreferenced files for
	// the next prune, never a record whose layer is gone (which would be
	// a miss anyway).
	if err := cache.Delete(ctx, c.Store.Meta(), goneKeys); err != nil {
		return rep, fmt.Errorf("prune: delete cache records: %w", err)
	}
	crashpoint.Hit("gc.records.deleted")
	for _, k := range goneKeys {
		delete(s.records, k)
	}
	liveBlobs, liveChains := s.live()
	var removed []digest.Digest
	for _, d := range sortedKeys(s.blobs) {
		if liveBlobs[d] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := c.Store.Content().RemoveBlob(ctx, d); err != nil {
			return rep, fmt.Errorf("prune: %w", err)
		}
		removed = append(removed, d)
		rep.Blobs++
		rep.Reclaimed += s.blobs[d]
		crashpoint.Hit("gc.blob.removed")
	}
	if err := c.Store.Content().ForgetGzipForms(ctx, removed); err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	for _, ch := range sortedKeys(s.dirs) {
		if liveChains[ch] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		size := s.dirSize(ch)
		if err := c.Snap.Remove(ctx, ch); err != nil {
			return rep, fmt.Errorf("prune: %w", err)
		}
		rep.Layers++
		rep.Reclaimed += size
		crashpoint.Hit("gc.layer.removed")
	}
	// Holding the GC lock, nothing under tmp/ is in use.
	sw, err := c.Sweep(ctx)
	rep.TempFiles, rep.Actives, rep.ContainerDirs = sw.TempFiles, sw.Actives, sw.ContainerDirs
	rep.Reclaimed += sw.Reclaimed
	if err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	return rep, nil
}

// plan builds the record tree of what s found.
func (s *state) plan() *plan {
	nodes := make([]*node, 0, len(s.records))
	for _, r := range s.records {
		_, present := s.blobs[r.Layer.Digest]
		items := s.items(r)
		nodes = append(nodes, &node{
			rec:   r,
			used:  len(s.layerUsers[r.Layer.Digest]) > 0 || slices.ContainsFunc(items, s.imageHolds),
			dead:  !present,
			items: items,
		})
	}
	return newPlan(nodes, s.size, s.imageHolds)
}

// live returns the blobs and chains that listed images, the records left in
// s and the roots hold.
func (s *state) live() (map[digest.Digest]bool, map[digest.Digest]bool) {
	blobs := map[digest.Digest]bool{}
	chains := map[digest.Digest]bool{}
	for d := range s.imageBlobs {
		blobs[d] = true
	}
	for ch := range s.imageChains {
		chains[ch] = true
	}
	for _, d := range s.roots.Blobs {
		blobs[d] = true
	}
	for _, ch := range s.roots.Chains {
		chains[ch] = true
	}
	for k, r := range s.records {
		blobs[r.Layer.Digest] = true
		for _, ch := range s.chains(k) {
			chains[ch] = true
		}
	}
	// A layer loaded uncompressed keeps the gzip made of it for a push or
	// an OCI archive: smaller than the layer, and seconds to make again.
	for diffID, gz := range s.gzipForms {
		if blobs[diffID] {
			blobs[gz] = true
		}
	}
	return blobs, chains
}

func sortedKeys[V any](m map[digest.Digest]V) []digest.Digest {
	out := make([]digest.Digest, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
