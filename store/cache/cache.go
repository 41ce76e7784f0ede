package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/builder-dev/builder/store/meta"
)

var (
	recordsBucket = []byte("cache.v1")       // key -> Record (without Files)
	filesBucket   = []byte("cache.files.v1") // key -> []File of context copies
	stepsBucket   = []byte("cache.steps.v1") // step identity -> latest key
)

// Record is what a cache key resolved to.
type Record struct {
	Key digest.Digest `json:"key"`
	// ParentChain is the chain ID of the layers the step ran on. Keys are
	// computed from inputs, so a key can outlive the record of an earlier
	// step that a prune removed; a layer is only reused on the very layers
	// it was made on.
	ParentChain digest.Digest      `json:"parentChain,omitempty"`
	Layer       ocispec.Descriptor `json:"layer"`
	DiffID      digest.Digest      `json:"diffID"`
	Created     time.Time          `json:"created"`
	LastUsed    time.Time          `json:"lastUsed"`
	Step        Step               `json:"step"`
}

// Step describes the step that made a record, with everything its key
// covered, so a later miss can be explained against it.
type Step struct {
	Dockerfile string          `json:"dockerfile,omitempty"`
	Stage      string          `json:"stage,omitempty"`
	Index      int             `json:"index"`
	Line       int             `json:"line,omitempty"`
	Text       string          `json:"text"`
	Parent     digest.Digest   `json:"parent,omitempty"`
	Kind       string          `json:"kind"`
	Op         json.RawMessage `json:"op,omitempty"`
	Input      digest.Digest   `json:"input,omitempty"`
	// Files are the per-file digests of a context copy; stored apart from
	// the record because a big context makes them large.
	Files []File `json:"-"`
}

// File is one selected path of a context copy and the digest of its
// metadata and content.
type File struct {
	Path   string        `json:"p"`
	Digest digest.Digest `json:"d"`
}

// identity names a step independently of its inputs: the same instruction
// position in the same Dockerfile, for finding "the closest earlier record".
func (s Step) identity() []byte {
	return []byte(fmt.Sprintf("%s\x00%s\x00%d", s.Dockerfile, s.Stage, s.Index))
}

// Get returns the record of key, or nil when there is none.
func Get(ctx context.Context, db meta.Viewer, key digest.Digest) (*Record, error) {
	var rec *Record
	err := db.View(ctx, func(tx *bolt.Tx) error {
		r, err := get(tx, key)
		rec = r
		return err
	})
	return rec, err
}

func get(tx *bolt.Tx, key digest.Digest) (*Record, error) {
	b := tx.Bucket(recordsBucket)
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		// An unreadable record is a miss, not a failure: it is rewritten.
		return nil, nil
	}
	return &r, nil
}

// Put stores recs in one transaction and makes each the latest record of
// its step.
func Put(ctx context.Context, db meta.DB, recs ...Record) error {
	type encoded struct{ key, v, files, id []byte }
	enc := make([]encoded, 0, len(recs))
	for _, rec := range recs {
		v, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode cache record: %w", err)
		}
		e := encoded{key: []byte(rec.Key), v: v, id: rec.Step.identity()}
		if len(rec.Step.Files) > 0 {
			if e.files, err = json.Marshal(rec.Step.Files); err != nil {
				return fmt.Errorf("encode cache record files: %w", err)
			}
		}
		enc = append(enc, e)
	}
	return db.Update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(recordsBucket)
		if err != nil {
			return err
		}
		fb, err := tx.CreateBucketIfNotExists(filesBucket)
		if err != nil {
			return err
		}
		sb, err := tx.CreateBucketIfNotExists(stepsBucket)
		if err != nil {
			return err
		}
		for _, e := range enc {
			if err := b.Put(e.key, e.v); err != nil {
				return err
			}
			if e.files != nil {
				if err := fb.Put(e.key, e.files); err != nil {
					return err
				}
			}
			if err := sb.Put(e.id, e.key); err != nil {
				return err
			}
		}
		return nil
	})
}

// Previous returns the latest record made by the same step (same
// Dockerfile, stage and position) with its Files, or nil.
func Previous(ctx context.Context, db meta.Viewer, step Step) (*Record, error) {
	var rec *Record
	err := db.View(ctx, func(tx *bolt.Tx) error {
		sb := tx.Bucket(stepsBucket)
		if sb == nil {
			return nil
		}
		k := sb.Get(step.identity())
		if k == nil {
			return nil
		}
		r, err := get(tx, digest.Digest(k))
		if err != nil || r == nil {
			return err
		}
		if fb := tx.Bucket(filesBucket); fb != nil {
			if v := fb.Get(k); v != nil {
				_ = json.Unmarshal(v, &r.Step.Files)
			}
		}
		rec = r
		return nil
	})
	return rec, err
}

// Touch sets LastUsed of the given keys to t, in one transaction.
func Touch(ctx context.Context, db meta.DB, keys []digest.Digest, t time.Time) error {
	if len(keys) == 0 {
		return nil
	}
	return db.Update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(recordsBucket)
		if b == nil {
			return nil
		}
		for _, k := range keys {
			r, err := get(tx, k)
			if err != nil || r == nil {
				continue
			}
			r.LastUsed = t
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// List returns every record (without Files).
func List(ctx context.Context, db meta.Viewer) ([]Record, error) {
	var out []Record
	err := db.View(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(recordsBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r Record
			if json.Unmarshal(v, &r) == nil {
				out = append(out, r)
			}
			return nil
		})
	})
	return out, err
}

// Delete removes the records of keys and their step index entries.
func Delete(ctx context.Context, db meta.DB, keys []digest.Digest) error {
	if len(keys) == 0 {
		return nil
	}
	return db.Update(ctx, func(tx *bolt.Tx) error {
		for _, k := range keys {
			r, _ := get(tx, k)
			if b := tx.Bucket(recordsBucket); b != nil {
				if err := b.Delete([]byte(k)); err != nil {
					return err
				}
			}
			if fb := tx.Bucket(filesBucket); fb != nil {
				if err := fb.Delete([]byte(k)); err != nil {
					return err
				}
			}
			if sb := tx.Bucket(stepsBucket); sb != nil && r != nil {
				id := r.Step.identity()
				if string(sb.Get(id)) == string(k) {
					if err := sb.Delete(id); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
}
