package gc

import (
	"context"
	"fmt"
	"slices"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/du"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
)

// Collector reads and collects the garbage of one store.
type Collector struct {
	Store *store.Store
	Snap  *snapshot.Snapshotter
	// Roots, if set, names more things that must stay whatever happens
	// to images and records: for example the blobs and chains of stopped
	// containers' images, whose writable layers sit on those chains.
	Roots func(ctx context.Context) (Roots, error)
	// Containers, if set, lists what containers own. Then Sweep (and so
	// Prune) removes every other writable snapshot and every other
	// directory of ContainersDir, which a killed build or container
	// creation left; without it, they are never touched.
	Containers func(ctx context.Context) (Owned, error)
	// ContainersDir is where containers have their directories, named by
	// their IDs; "" for none.
	ContainersDir string
}

// Roots are blobs and unpacked layers (by chain ID) that are live without
// an image or record holding them.
type Roots struct {
	Blobs  []digest.Digest
	Chains []digest.Digest
}

// image is one listed manifest and what it holds.
type image struct {
	names    []string // tags; none for an untagged image
	id       digest.Digest
	manifest digest.Digest
	config   digest.Digest
	layers   []ocispec.Descriptor
	diffIDs  []digest.Digest
	chains   []digest.Digest
}

// shownAs is how an image is named where records list their users: its
// tags, or its short ID when it has none.
func (im *image) shownAs() []string {
	if len(im.names) > 0 {
		return im.names
	}
	return []string{store.ShortID(im.id)}
}

// position is one place a layer takes in an image.
type position struct {
	diffID digest.Digest
	chain  digest.Digest
}

// state is what one scan of the store found. Everything in it is read
// before anything is removed.
type state struct {
	c *Collector

	images  []*image
	records map[digest.Digest]cache.Record

	blobs map[digest.Digest]int64 // blob files present, by file size
	dirs  map[digest.Digest]bool  // unpacked layers present, by chain ID
	// notDirs are chain IDs whose name under the layers holds no
	// directory (a symlink, a file): damage, never a layer.
	notDirs []digest.Digest

	imageBlobs  map[digest.Digest]bool
	imageChains map[digest.Digest]bool
	layerUsers  map[digest.Digest][]*image   // layer blob -> images holding it
	positions   map[digest.Digest][]position // layer blob -> where images hold it
	roots       Roots

	recChains map[digest.Digest][]digest.Digest // record key -> chains, memoized
	dirSizes  map[digest.Digest]int64
	parents   []digest.Digest // chains a record's layer may sit on, for matching
}

// scan reads the index, the cache records and what is on disk. An image
// that cannot be read stops it, unless skipDamaged (for Check, which
// reports such images itself).
func (c *Collector) scan(ctx context.Context, skipDamaged bool) (*state, error) {
	s := &state{
		c:           c,
		records:     map[digest.Digest]cache.Record{},
		blobs:       map[digest.Digest]int64{},
		dirs:        map[digest.Digest]bool{},
		imageBlobs:  map[digest.Digest]bool{},
		imageChains: map[digest.Digest]bool{},
		layerUsers:  map[digest.Digest][]*image{},
		positions:   map[digest.Digest][]position{},
		recChains:   map[digest.Digest][]digest.Digest{},
		dirSizes:    map[digest.Digest]int64{},
	}
	if err := s.scanImages(ctx, skipDamaged); err != nil {
		return nil, err
	}
	recs, err := cache.List(ctx, c.Store.Meta())
	if err != nil {
		return nil, fmt.Errorf("list cache records: %w", err)
	}
	for _, r := range recs {
		s.records[r.Key] = r
	}
	err = c.Store.Content().Walk(ctx, func(d digest.Digest, size int64) error {
		s.blobs[d] = size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan blobs: %w", err)
	}
	err = c.Snap.Walk(ctx, func(ch digest.Digest, damaged bool) error {
		if damaged {
			s.notDirs = append(s.notDirs, ch)
		} else {
			s.dirs[ch] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan unpacked layers: %w", err)
	}
	if c.Roots != nil {
		if s.roots, err = c.Roots(ctx); err != nil {
			return nil, fmt.Errorf("gc roots: %w", err)
		}
	}
	// Candidate parents of a record whose parent record is unknown: scratch,
	// every chain of an image (its base) and every unpacked layer.
	seen := map[digest.Digest]bool{}
	s.parents = []digest.Digest{""}
	for _, set := range []map[digest.Digest]bool{s.imageChains, s.dirs} {
		for ch := range set {
			if !seen[ch] {
				seen[ch] = true
				s.parents = append(s.parents, ch)
			}
		}
	}
	s.keepIndexes(ctx)
	return s, nil
}

// scanImages reads every listed image. An image that cannot be read stops
// the scan: without knowing what it holds nothing can safely be removed.
func (s *state) scanImages(ctx context.Context, skipDamaged bool) error {
	list, err := s.c.Store.Content().Images(ctx)
	if err != nil {
		return fmt.Errorf("scan images: %w", err)
	}
	byManifest := map[digest.Digest]*image{}
	for _, li := range list {
		if li.Err != nil && skipDamaged {
			continue
		}
		if li.Err != nil {
			return fmt.Errorf("scan images: %w (see builder store verify)", li.Err)
		}
		im := byManifest[li.Manifest.Digest]
		if im == nil {
			m, cfg, err := s.c.Store.Content().LoadImage(ctx, li.Manifest)
			if err != nil && skipDamaged {
				continue
			}
			if err != nil {
				return fmt.Errorf("scan images: %w", err)
			}
			im = &image{
				id:       m.Config.Digest,
				manifest: li.Manifest.Digest,
				config:   m.Config.Digest,
				layers:   m.Layers,
				diffIDs:  cfg.RootFS.DiffIDs,
				// ChainIDs rewrites its argument in place.
				chains: identity.ChainIDs(slices.Clone(cfg.RootFS.DiffIDs)),
			}
			byManifest[li.Manifest.Digest] = im
			s.images = append(s.images, im)
		}
		if li.Name != "" {
			im.names = append(im.names, li.Name)
		}
	}
	for _, im := range s.images {
		s.imageBlobs[im.manifest] = true
		s.imageBlobs[im.config] = true
		for i, l := range im.layers {
			s.imageBlobs[l.Digest] = true
			if !slices.Contains(s.layerUsers[l.Digest], im) {
				s.layerUsers[l.Digest] = append(s.layerUsers[l.Digest], im)
			}
			// A manifest and config that disagree on the layer count
			// still keep their blobs; only the chains are unknown.
			if len(im.diffIDs) == len(im.layers) {
				s.positions[l.Digest] = append(s.positions[l.Digest], position{diffID: im.diffIDs[i], chain: im.chains[i]})
			}
		}
		if len(im.diffIDs) == len(im.layers) {
			for _, ch := range im.chains {
				s.imageChains[ch] = true
			}
		}
	}
	return nil
}

// chainOf is the chain ID of layer diffID on top of chain parent ("" for
// the bottom layer), as the solver commits it.
func chainOf(parent, diffID digest.Digest) digest.Digest {
	if parent == "" {
		return diffID
	}
	return identity.ChainID([]digest.Digest{parent, diffID})
}

// chains returns the chain IDs the record key's layer has been unpacked or
// committed at, as far as they can be told: where images hold its layer,
// on top of its parent record's chains, or else an unpacked layer named
// for it on top of any known chain.
func (s *state) chains(key digest.Digest) []digest.Digest {
	if ch, ok := s.recChains[key]; ok {
		return ch
	}
	s.recChains[key] = nil // a cycle cannot happen with hashes; stop one anyway
	r := s.records[key]
	var out []digest.Digest
	add := func(ch digest.Digest) {
		if !slices.Contains(out, ch) {
			out = append(out, ch)
		}
	}
	for _, p := range s.positions[r.Layer.Digest] {
		if p.diffID == r.DiffID {
			add(p.chain)
		}
	}
	var parentChains []digest.Digest
	if _, ok := s.records[r.Step.Parent]; ok {
		parentChains = s.chains(r.Step.Parent)
		for _, pc := range parentChains {
			add(chainOf(pc, r.DiffID))
		}
	}
	present := slices.ContainsFunc(out, func(ch digest.Digest) bool { return s.dirs[ch] })
	// Matching costs one hash per known chain; it is only needed for a
	// record that sits on a base image or after a config-only step, whose
	// parent chain nothing else tells.
	if !present && len(parentChains) == 0 && r.DiffID != "" {
		for _, p := range s.parents {
			if ch := chainOf(p, r.DiffID); s.dirs[ch] {
				add(ch)
			}
		}
	}
	s.recChains[key] = out
	return out
}

// dirSize is the disk usage of the unpacked layer chain, memoized.
func (s *state) dirSize(ch digest.Digest) int64 {
	if n, ok := s.dirSizes[ch]; ok {
		return n
	}
	n := du.Size(s.c.Snap.LayerDir(ch))
	s.dirSizes[ch] = n
	return n
}

// items are what a record holds on disk: its layer blob when present and
// its unpacked layers.
func (s *state) items(r cache.Record) []item {
	var out []item
	if _, ok := s.blobs[r.Layer.Digest]; ok {
		out = append(out, item{blob: r.Layer.Digest})
	}
	for _, ch := range s.chains(r.Key) {
		if s.dirs[ch] {
			out = append(out, item{chain: ch})
		}
	}
	return out
}

// item is one blob or one unpacked layer.
type item struct {
	blob  digest.Digest
	chain digest.Digest
}

func (s *state) size(it item) int64 {
	if it.blob != "" {
		return s.blobs[it.blob]
	}
	return s.dirSize(it.chain)
}

// imageHolds reports whether a listed image (or a root) needs it.
func (s *state) imageHolds(it item) bool {
	if it.blob != "" {
		return s.imageBlobs[it.blob] || slices.Contains(s.roots.Blobs, it.blob)
	}
	return s.imageChains[it.chain] || slices.Contains(s.roots.Chains, it.chain)
}

// users are the names of the listed images holding r's layer.
func (s *state) users(r cache.Record) []string {
	var out []string
	for _, im := range s.layerUsers[r.Layer.Digest] {
		out = append(out, im.shownAs()...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// maxIndexSize bounds the blobs keepIndexes reads: an index is a few
// kilobytes.
const maxIndexSize = 1 << 20

// keepIndexes keeps the image indexes a pull stored beside the manifest it
// picked (so that "name@<index digest>" resolves offline, see
// source.Resolver): an unlisted small blob that is an index naming a
// listed image's manifest is held as that image's.
func (s *state) keepIndexes(ctx context.Context) {
	for d, size := range s.blobs {
		if s.imageBlobs[d] || size > maxIndexSize {
			continue
		}
		var idx struct {
			MediaType string               `json:"mediaType"`
			Config    *ocispec.Descriptor  `json:"config"`
			Manifests []ocispec.Descriptor `json:"manifests"`
		}
		if s.c.Store.Content().ReadJSON(ctx, d, &idx) != nil || idx.Config != nil {
			continue
		}
		if slices.ContainsFunc(idx.Manifests, func(m ocispec.Descriptor) bool { return s.imageBlobs[m.Digest] }) {
			s.imageBlobs[d] = true
		}
	}
}
