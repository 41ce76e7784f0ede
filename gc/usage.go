package gc

import (
	"context"
	"fmt"
	"slices"

	"github.com/builder-dev/builder/store/cache"
)

// Entry is one cache record with what it holds.
type Entry struct {
	cache.Record
	// Size is its layer blob's size plus the disk usage of its unpacked
	// layers; records sharing a blob or layer each count it.
	Size int64
	// Images are the listed images holding its layer: their tags, or the
	// short ID of an untagged one.
	Images []string
	// Missing: its layer blob is gone, so it can never be a hit again
	// and any prune removes it.
	Missing bool
}

// List returns every cache record, most recently used first (records of
// one build, used at the same time, in the order they were made).
func (c *Collector) List(ctx context.Context) ([]Entry, error) {
	s, err := c.scan(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("list cache: %w", err)
	}
	out := make([]Entry, 0, len(s.records))
	for _, r := range s.records {
		e := Entry{Record: r, Images: s.users(r)}
		_, present := s.blobs[r.Layer.Digest]
		e.Missing = !present
		for _, it := range s.items(r) {
			e.Size += s.size(it)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.LastUsed.Compare(a.LastUsed); c != 0 {
			return c
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return compareDigest(a.Key, b.Key)
	})
	return out, nil
}

// Usage is the disk usage of the build cache. Blobs count by file size,
// unpacked layers by the blocks they take (du), and each blob or unpacked
// layer once however many records hold it.
type Usage struct {
	Records int
	// Total is what the records hold: their layer blobs and their
	// unpacked layers.
	Total int64
	// Shared is the part of Total that listed images (or roots) also
	// hold, which no prune frees.
	Shared int64
	// Reclaimable is Total - Shared: what prune --all frees on top of
	// Unreferenced.
	Reclaimable int64
	// Unreferenced is what nothing holds: blobs and unpacked layers of
	// neither an image nor a record, and temporary files (those of a
	// build running meanwhile too: a prune waits for it, and it removes
	// them). Any prune frees it.
	Unreferenced int64
}

// DiskUsage measures the build cache.
func (c *Collector) DiskUsage(ctx context.Context) (Usage, error) {
	s, err := c.scan(ctx, false)
	if err != nil {
		return Usage{}, fmt.Errorf("cache disk usage: %w", err)
	}
	u := Usage{Records: len(s.records)}
	seen := map[item]bool{}
	for _, k := range sortedKeys(s.records) {
		for _, it := range s.items(s.records[k]) {
			if seen[it] {
				continue
			}
			seen[it] = true
			n := s.size(it)
			u.Total += n
			if s.imageHolds(it) {
				u.Shared += n
			}
		}
	}
	u.Reclaimable = u.Total - u.Shared
	liveBlobs, liveChains := s.live()
	for d, n := range s.blobs {
		if !liveBlobs[d] {
			u.Unreferenced += n
		}
	}
	for ch := range s.dirs {
		if !liveChains[ch] {
			u.Unreferenced += s.dirSize(ch)
		}
	}
	for _, tmp := range []func(context.Context) (int64, error){c.Store.TmpUsage, c.Snap.TmpUsage} {
		n, err := tmp(ctx)
		if err != nil {
			return u, fmt.Errorf("cache disk usage: %w", err)
		}
		u.Unreferenced += n
	}
	return u, nil
}
