package remotecache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
	"github.com/builder-dev/builder/store/meta"
)

// Importer holds the records of the caches a build imports, and fetches
// their layer blobs into the store on demand. It is the solver's
// RemoteCache and solver/ops' BlobFetcher.
type Importer struct {
	content *store.Content
	records map[digest.Digest]Record // by key; the first cache's record wins
	blobs   map[digest.Digest]blobSource
	sizes   map[digest.Digest]int64 // layer blob -> uncompressed size, where known

	mu       sync.Mutex
	fetching map[digest.Digest]*sync.Mutex
	fetched  Stats
	hits     map[digest.Digest]bool // keys Lookup found
}

// blobSource is where a layer blob can be fetched from.
type blobSource struct {
	desc ocispec.Descriptor
	from Target
}

// Stats counts what a cache import downloaded or an export uploaded.
type Stats struct {
	Blobs int
	Bytes int64
}

// Open reads the manifest and config of each source (nothing else) into
// an Importer that fetches blobs into c. A source that holds no cache yet
// (ErrNotFound) or holds something else (ErrInvalid) is reported through
// warn and skipped, as a cold cache: a build never fails for a cache it
// could not use. Other errors (auth, network) fail: a CI job whose cache
// is misconfigured should say so.
func Open(ctx context.Context, c *store.Content, sources []Target, warn func(string)) (*Importer, error) {
	im := &Importer{content: c, records: map[digest.Digest]Record{}, blobs: map[digest.Digest]blobSource{},
		sizes:    map[digest.Digest]int64{},
		fetching: map[digest.Digest]*sync.Mutex{}, hits: map[digest.Digest]bool{}}
	for _, src := range sources {
		recs, err := readCache(ctx, src)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
			if warn != nil {
				warn(fmt.Sprintf("cache %s not imported: %v", src, err))
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("import cache %s: %w", src, err)
		}
		for _, r := range recs {
			if _, ok := im.records[r.Key]; !ok {
				im.records[r.Key] = r
			}
			if _, ok := im.blobs[r.Layer.Digest]; !ok {
				im.blobs[r.Layer.Digest] = blobSource{desc: r.Layer, from: src}
			}
			if r.UncompressedSize > 0 {
				im.sizes[r.Layer.Digest] = r.UncompressedSize
			}
		}
	}
	return im, nil
}

// readCache reads the records of the cache in t.
func readCache(ctx context.Context, t Target) ([]Record, error) {
	raw, err := t.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	m, err := decodeManifest(raw)
	if err != nil {
		return nil, err
	}
	if m.Config.Size > maxConfig || m.Config.Size < 0 {
		return nil, fmt.Errorf("%w: config of %d bytes", ErrInvalid, m.Config.Size)
	}
	rc, err := t.OpenBlob(ctx, m.Config)
	if err != nil {
		return nil, fmt.Errorf("read cache config %s: %w", m.Config.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, m.Config.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read cache config %s: %w", m.Config.Digest, err)
	}
	return decodeConfig(b, m.Config, m.Layers)
}

// maxConfig bounds the config read into memory: a hundred thousand
// records are some 50 MB.
const maxConfig = 64 << 20

// Len is the number of records imported.
func (im *Importer) Len() int { return len(im.records) }

// Lookup returns the imported record of key, or nil.
func (im *Importer) Lookup(ctx context.Context, key digest.Digest) (*cache.Record, error) {
	r, ok := im.records[key]
	if !ok {
		return nil, nil
	}
	im.mu.Lock()
	im.hits[key] = true
	im.mu.Unlock()
	rec := r.cacheRecord()
	return &rec, nil
}

// Keep writes into db the records the build used whose layers are now in
// the store (the result's, and those later steps ran on): the next build
// on this runner hits them without the imported cache. A record whose
// layer was never fetched is not kept: the local cache never names a
// missing blob.
func (im *Importer) Keep(ctx context.Context, db meta.DB) error {
	im.mu.Lock()
	var keep []cache.Record
	now := time.Now().UTC()
	for k := range im.hits {
		r := im.records[k]
		if im.content.HasBlob(r.Layer.Digest) {
			rec := r.cacheRecord()
			rec.LastUsed = now
			keep = append(keep, rec)
		}
	}
	im.mu.Unlock()
	if len(keep) == 0 {
		return nil
	}
	if err := cache.Put(ctx, db, keep...); err != nil {
		return fmt.Errorf("keep imported cache records: %w", err)
	}
	return nil
}

// TarSize is the uncompressed size an imported record gives the layer
// blob d: a re-export neither downloads nor reads a layer to know it.
func (im *Importer) TarSize(d digest.Digest) (int64, bool) {
	n, ok := im.sizes[d]
	return n, ok
}

// FetchBlob downloads the layer blob d into the store, verifying its
// digest and size; a blob already there is not downloaded again. Two
// callers asking for one blob share one download.
func (im *Importer) FetchBlob(ctx context.Context, d digest.Digest) error {
	src, ok := im.blobs[d]
	if !ok {
		return fmt.Errorf("fetch blob %s: %w: no imported cache has it", d, ErrNotFound)
	}
	im.mu.Lock()
	mu := im.fetching[d]
	if mu == nil {
		mu = &sync.Mutex{}
		im.fetching[d] = mu
	}
	im.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if im.content.HasBlob(d) {
		return nil
	}
	rc, err := src.from.OpenBlob(ctx, src.desc)
	if err != nil {
		return fmt.Errorf("fetch blob %s from cache %s: %w", d, src.from, err)
	}
	defer rc.Close()
	b, err := im.content.Stage(ctx, src.desc.MediaType, io.LimitReader(rc, src.desc.Size+1))
	if err != nil {
		return fmt.Errorf("fetch blob %s from cache %s: %w", d, src.from, err)
	}
	if b.Desc.Digest != d || b.Desc.Size != src.desc.Size {
		b.Discard()
		return fmt.Errorf("fetch blob %s from cache %s: got %d bytes of digest %s: %w", d, src.from, b.Desc.Size, b.Desc.Digest, ErrInvalid)
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("fetch blob %s from cache %s: %w", d, src.from, err)
	}
	im.mu.Lock()
	im.fetched.Blobs++
	im.fetched.Bytes += src.desc.Size
	im.mu.Unlock()
	return nil
}

// OpenBlob reads the layer blob d from the imported cache that has it,
// checking its size and digest as it is read (the last Read fails on a
// mismatch), without storing it: for an export of a record whose layer
// this build never needed.
func (im *Importer) OpenBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	src, ok := im.blobs[d]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w: no imported cache has it", d, ErrNotFound)
	}
	rc, err := src.from.OpenBlob(ctx, src.desc)
	if err != nil {
		return nil, fmt.Errorf("read blob %s from cache %s: %w", d, src.from, err)
	}
	return &verifier{rc: rc, r: io.LimitReader(rc, src.desc.Size+1), want: src.desc, h: digest.Canonical.Digester()}, nil
}

// verifier checks a blob against its descriptor as it is read.
type verifier struct {
	rc   io.ReadCloser
	r    io.Reader
	want ocispec.Descriptor
	h    digest.Digester
	n    int64
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Hash().Write(p[:n])
	v.n += int64(n)
	if err == io.EOF && (v.n != v.want.Size || v.h.Digest() != v.want.Digest) {
		return n, fmt.Errorf("blob %s: got %d bytes of digest %s: %w", v.want.Digest, v.n, v.h.Digest(), ErrInvalid)
	}
	return n, err
}

func (v *verifier) Close() error { return v.rc.Close() }

// EnsureBlobs fetches those of layers the store lacks, a few at once:
// the result's image must have all its blobs in the store before it is
// written.
func (im *Importer) EnsureBlobs(ctx context.Context, layers []ocispec.Descriptor) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchConcurrency)
	for _, l := range layers {
		if im.content.HasBlob(l.Digest) {
			continue
		}
		g.Go(func() error { return im.FetchBlob(gctx, l.Digest) })
	}
	return g.Wait()
}

// fetchConcurrency bounds the downloads at once, as for a pull.
const fetchConcurrency = 4

// Fetched says what FetchBlob downloaded so far.
func (im *Importer) Fetched() Stats {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.fetched
}
