package solver

import (
	"context"
	"encoding/json"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

var cacheBucket = []byte("cache.v1")

// record is what a cache key resolves to: the layer the step made.
type record struct {
	Layer    ocispec.Descriptor `json:"layer"`
	DiffID   digest.Digest      `json:"diffID"`
	Step     string             `json:"step"`
	Created  time.Time          `json:"created"`
	LastUsed time.Time          `json:"lastUsed"`
}

func (s *Solver) lookup(ctx context.Context, key digest.Digest) (*record, error) {
	var rec *record
	err := s.Store.View(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(cacheBucket)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return nil // an unreadable record is a miss, not a failure
		}
		rec = &r
		return nil
	})
	if err != nil || rec == nil {
		return nil, err
	}
	// A record whose blob was pruned is a miss.
	if !s.Store.HasBlob(rec.Layer.Digest) {
		return nil, nil
	}
	return rec, nil
}

func (s *Solver) remember(ctx context.Context, key digest.Digest, rec record) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.Store.Update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(cacheBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), v)
	})
}
