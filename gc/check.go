package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
	"github.com/builder-dev/builder/store/meta"
)

// Damage is what Check found wrong in a store: blobs that are corrupt or
// missing, and what depends on them.
type Damage struct {
	Blobs []store.BadBlob
	// Records are the cache records whose layer blob is bad, and their
	// descendants (a record is only valid on top of its parent's layer).
	Records []cache.Record
	// Chains are the unpacked layers made from a bad layer blob, or
	// sitting on one, or of a bad record.
	Chains []digest.Digest
	// Images are the manifests of the listed images that refer to a bad
	// blob.
	Images []digest.Digest
	// NotLayers are chain IDs whose unpacked layer is no directory (a
	// symlink to a host directory, a file): never mounted (see
	// snapshot.Has), removed by a repair.
	NotLayers []digest.Digest
	// MetaMovedTo, after a repair, is where a meta.db that was no
	// database went (see meta.File.Reset).
	MetaMovedTo string
	// IndexMovedTo, after a repair, is where an index.json that was no
	// JSON went, and IndexRecovered how many images the new one lists
	// (see store.RebuildIndex).
	IndexMovedTo   string
	IndexRecovered int
}

// Clean reports whether nothing was found.
func (d Damage) Clean() bool {
	return len(d.Blobs) == 0 && len(d.Records) == 0 && len(d.Chains) == 0 && len(d.Images) == 0 && len(d.NotLayers) == 0
}

// Check verifies every blob of the store (store.Verify) and finds what
// depends on the bad ones. With repair, it then removes, in this order so
// that a kill part way leaves nothing pointing at what is gone: the bad
// records, the images referring to a bad blob (their tags and untagged
// entries), the unpacked layers of bad blobs, and the corrupt blob files.
// With repair, an index.json that is no JSON is first rebuilt from the
// manifests among the blobs (store.RebuildIndex), and a meta.db that is no
// database moved aside for a new one (meta.File.Reset); without, they are
// the error.
// It holds the store's GC lock throughout, as Prune does.
func (c *Collector) Check(ctx context.Context, repair bool) (Damage, error) {
	var dmg Damage
	lock, err := c.Store.LockGC(ctx, nil)
	if err != nil {
		return dmg, fmt.Errorf("check: %w", err)
	}
	defer lock.Release()
	dmg.Blobs, err = c.Store.Content().Verify(ctx)
	if errors.Is(err, store.ErrIndexDamaged) && repair {
		if dmg.IndexMovedTo, dmg.IndexRecovered, err = c.Store.Content().RebuildIndex(ctx); err != nil {
			return dmg, fmt.Errorf("repair: %w", err)
		}
		dmg.Blobs, err = c.Store.Content().Verify(ctx)
	}
	if err != nil {
		return dmg, fmt.Errorf("check: %w", err)
	}
	s, err := c.scan(ctx, true)
	if errors.Is(err, meta.ErrDamaged) && repair {
		// Nothing in it can be read: what it held (records,
		// containers, sizes) is lost either way, and without it no
		// command works. The blobs and images do not depend on it.
		if dmg.MetaMovedTo, err = c.Store.Meta().Reset(ctx); err != nil {
			return dmg, fmt.Errorf("repair: %w", err)
		}
		s, err = c.scan(ctx, true)
	}
	if err != nil {
		return dmg, fmt.Errorf("check: %w", err)
	}
	badBlob := map[digest.Digest]bool{}
	for _, b := range dmg.Blobs {
		badBlob[b.Digest] = true
		for _, m := range b.Manifests {
			if !slices.Contains(dmg.Images, m) {
				dmg.Images = append(dmg.Images, m)
			}
		}
	}
	slices.Sort(dmg.Images)

	// Records on a bad (or missing) layer blob, then their descendants.
	gone := map[digest.Digest]bool{}
	for k, r := range s.records {
		if _, present := s.blobs[r.Layer.Digest]; badBlob[r.Layer.Digest] || (r.Layer.Digest != "" && !present) {
			gone[k] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for k, r := range s.records {
			if !gone[k] && gone[r.Step.Parent] {
				gone[k] = true
				changed = true
			}
		}
	}
	chains := map[digest.Digest]bool{}
	for _, k := range sortedKeys(gone) {
		dmg.Records = append(dmg.Records, s.records[k])
		for _, ch := range s.chains(k) {
			chains[ch] = true
		}
	}
	// An image's unpacked layers from its first bad layer up.
	for _, im := range s.images {
		if len(im.chains) != len(im.layers) {
			continue
		}
		for i, l := range im.layers {
			if badBlob[l.Digest] {
				for _, ch := range im.chains[i:] {
					chains[ch] = true
				}
				break
			}
		}
	}
	for _, ch := range sortedKeys(chains) {
		if s.dirs[ch] {
			dmg.Chains = append(dmg.Chains, ch)
		}
	}
	dmg.NotLayers = s.notDirs
	if !repair || dmg.Clean() {
		return dmg, nil
	}

	keys := make([]digest.Digest, 0, len(dmg.Records))
	for _, r := range dmg.Records {
		keys = append(keys, r.Key)
	}
	if err := cache.Delete(ctx, c.Store.Meta(), keys); err != nil {
		return dmg, fmt.Errorf("repair: delete cache records: %w", err)
	}
	for _, m := range dmg.Images {
		if err := c.Store.Content().Remove(ctx, m); err != nil {
			return dmg, fmt.Errorf("repair: %w", err)
		}
	}
	for _, ch := range append(slices.Clone(dmg.Chains), dmg.NotLayers...) {
		if err := c.Snap.Remove(ctx, ch); err != nil {
			return dmg, fmt.Errorf("repair: %w", err)
		}
	}
	var removed []digest.Digest
	for _, b := range dmg.Blobs {
		if b.Missing {
			continue
		}
		if err := c.Store.Content().RemoveBlob(ctx, b.Digest); err != nil {
			return dmg, fmt.Errorf("repair: %w", err)
		}
		removed = append(removed, b.Digest)
	}
	if err := c.Store.Content().ForgetGzipForms(ctx, removed); err != nil {
		return dmg, fmt.Errorf("repair: %w", err)
	}
	return dmg, nil
}
