package remotecache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/store/cache"
)

// MediaTypeConfig is the media type of a cache manifest's config blob.
const MediaTypeConfig = "application/vnd.builder.cache.config.v1+json"

// schemaVersion is the Config's version; an importer ignores a cache of
// another version (a miss, not an error: the next export replaces it).
const schemaVersion = 1

// ErrNotFound says a destination holds no cache yet: the first CI run.
var ErrNotFound = errors.New("no cache")

// ErrInvalid says a cache is not one this package wrote, or was damaged.
var ErrInvalid = errors.New("invalid cache")

// Config is a cache manifest's config blob.
type Config struct {
	SchemaVersion int      `json:"schemaVersion"`
	Records       []Record `json:"records"`
}

// Record is one cache record as a cache stores it: a store/cache.Record
// without what is local to a store (last use, the per-file digests).
type Record struct {
	Key              digest.Digest      `json:"key"`
	ParentChain      digest.Digest      `json:"parentChain,omitempty"`
	Layer            ocispec.Descriptor `json:"layer"`
	DiffID           digest.Digest      `json:"diffID"`
	UncompressedSize int64              `json:"uncompressedSize,omitempty"`
	Created          time.Time          `json:"created"`
	Step             cache.Step         `json:"step"`
}

// cacheRecord is r as the solver takes it.
func (r Record) cacheRecord() cache.Record {
	return cache.Record{Key: r.Key, ParentChain: r.ParentChain, Layer: r.Layer, DiffID: r.DiffID, Created: r.Created, Step: r.Step}
}

// encoded is a cache's manifest and config, as bytes with their
// descriptors.
type encoded struct {
	manifest, config         []byte
	manifestDesc, configDesc ocispec.Descriptor
	layers                   []ocispec.Descriptor
}

// encode makes the manifest and config of recs: sorted by key, layers
// each once, so that the same records always give the same bytes.
func encode(recs []Record) (encoded, error) {
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b Record) int { return strings.Compare(string(a.Key), string(b.Key)) })
	recs = slices.CompactFunc(recs, func(a, b Record) bool { return a.Key == b.Key })
	var e encoded
	seen := map[digest.Digest]bool{}
	for i := range recs {
		l := plainDesc(recs[i].Layer)
		recs[i].Layer = l
		if !seen[l.Digest] {
			seen[l.Digest] = true
			e.layers = append(e.layers, l)
		}
	}
	if recs == nil {
		recs = []Record{}
	}
	var err error
	if e.config, err = json.Marshal(Config{SchemaVersion: schemaVersion, Records: recs}); err != nil {
		return encoded{}, fmt.Errorf("encode cache config: %w", err)
	}
	e.configDesc = ocispec.Descriptor{MediaType: MediaTypeConfig, Digest: digest.FromBytes(e.config), Size: int64(len(e.config))}
	layers := e.layers
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    e.configDesc,
		Layers:    layers,
	}
	if e.manifest, err = json.Marshal(m); err != nil {
		return encoded{}, fmt.Errorf("encode cache manifest: %w", err)
	}
	e.manifestDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(e.manifest), Size: int64(len(e.manifest))}
	return e, nil
}

// plainDesc keeps of d what a cache needs: annotations and the like are
// the image's, not the cache's.
func plainDesc(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}

// decodeManifest checks raw is a cache manifest and returns it.
func decodeManifest(raw []byte) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("%w: manifest: %v", ErrInvalid, err)
	}
	if m.MediaType != "" && m.MediaType != ocispec.MediaTypeImageManifest {
		return ocispec.Manifest{}, fmt.Errorf("%w: manifest of media type %q, not an OCI image manifest", ErrInvalid, m.MediaType)
	}
	if m.Config.MediaType != MediaTypeConfig {
		return ocispec.Manifest{}, fmt.Errorf("%w: config of media type %q, not %s (an image, not a builder cache?)", ErrInvalid, m.Config.MediaType, MediaTypeConfig)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("%w: config digest: %v", ErrInvalid, err)
	}
	return m, nil
}

// decodeConfig checks raw against desc and returns its records whose
// layers the manifest lists (the others could not be fetched).
func decodeConfig(raw []byte, desc ocispec.Descriptor, layers []ocispec.Descriptor) ([]Record, error) {
	if int64(len(raw)) != desc.Size || digest.FromBytes(raw) != desc.Digest {
		return nil, fmt.Errorf("%w: config %s does not match its digest", ErrInvalid, desc.Digest)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: config %s: %v", ErrInvalid, desc.Digest, err)
	}
	if c.SchemaVersion != schemaVersion {
		return nil, fmt.Errorf("%w: config schema version %d, want %d", ErrInvalid, c.SchemaVersion, schemaVersion)
	}
	listed := map[digest.Digest]ocispec.Descriptor{}
	for _, l := range layers {
		listed[l.Digest] = l
	}
	out := c.Records[:0]
	for _, r := range c.Records {
		l, ok := listed[r.Layer.Digest]
		if !ok || l.Size != r.Layer.Size || r.Key.Validate() != nil || r.DiffID.Validate() != nil || r.Layer.Digest.Validate() != nil {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}
