package solver

import (
	"context"
	"fmt"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
	"github.com/builder-dev/builder/store/meta"
)

// This file is all the solver's use of the store's metadata: cache record
// lookups, the records it writes, the marks of use. (The build lock is the
// caller's: see Solve.)

// touch marks the records of keys used now. Last-used times are advisory,
// so they are written without the commit fsync (meta's Lazy).
func (s *Solver) touch(ctx context.Context, keys []digest.Digest) error {
	return cache.Touch(ctx, s.Store.Meta().Lazy(), keys, time.Now().UTC())
}

// previous is the closest earlier record of step, for explaining a miss.
func (s *Solver) previous(ctx context.Context, step cache.Step) (*cache.Record, error) {
	return cache.Previous(ctx, s.Store.Meta(), step)
}

// reader looks up cache records for one stage through a read session kept
// open across the stage's cached steps, instead of opening the database
// once per step; it is closed at the first miss, before any work, because
// the session's shared lock keeps writers waiting. After a local miss it
// asks the remote cache, if there is one.
type reader struct {
	store  *store.Store
	remote RemoteCache
	sess   *meta.ReadSession
}

// lookup returns the record of key when its layer is still in the store,
// else the remote cache's record of key (whose layer is fetched when it is
// read).
func (r *reader) lookup(ctx context.Context, key digest.Digest) (*cache.Record, error) {
	rec, err := r.lookupLocal(ctx, key)
	if err != nil || rec != nil || r.remote == nil {
		return rec, err
	}
	rec, err = r.remote.Lookup(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("look up cache key %s in the imported cache: %w", key, err)
	}
	return rec, nil
}

func (r *reader) lookupLocal(ctx context.Context, key digest.Digest) (*cache.Record, error) {
	if r.sess == nil {
		sess, err := r.store.Meta().OpenReadSession(ctx)
		if err != nil {
			return nil, err
		}
		r.sess = sess
	}
	rec, err := cache.Get(ctx, r.sess, key)
	if err != nil || rec == nil {
		return nil, err
	}
	if !r.store.Content().HasBlob(rec.Layer.Digest) {
		return nil, nil // pruned: a miss
	}
	return rec, nil
}

func (r *reader) close() {
	if r.sess != nil {
		_ = r.sess.Close()
		r.sess = nil
	}
}

// recorder puts the steps' layer blobs into the store and writes their
// cache records, in the background, batching what arrives while it works:
// a blob's sync and a transaction's fsync are then off the path from one
// RUN to the next. A record is written only once its blob is in the store,
// so a record never points at a missing blob; a crash may lose the newest
// records, which only costs a re-run.
type recorder struct {
	db   meta.DB
	mu   sync.Mutex
	cond *sync.Cond
	buf  []recorded
	busy bool
	err  error
}

// recorded is a step's staged layer blob and its record.
type recorded struct {
	blob *store.StagedBlob
	rec  cache.Record
}

func newRecorder(db meta.DB) *recorder {
	r := &recorder{db: db}
	r.cond = sync.NewCond(&r.mu)
	return r
}

// add queues blob and rec; a batch starts at once unless one is running.
func (r *recorder) add(ctx context.Context, blob *store.StagedBlob, rec cache.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, recorded{blob, rec})
	if !r.busy {
		r.busy = true
		go r.loop(context.WithoutCancel(ctx))
	}
}

func (r *recorder) loop(ctx context.Context) {
	r.mu.Lock()
	for len(r.buf) > 0 {
		batch := r.buf
		r.buf = nil
		r.mu.Unlock()
		err := r.write(ctx, batch)
		r.mu.Lock()
		if err != nil && r.err == nil {
			r.err = err
		}
	}
	r.busy = false
	r.cond.Broadcast()
	r.mu.Unlock()
}

// write commits the batch's blobs, then records those that made it in
// one transaction. The blobs are committed at the same time: the file
// system's journal then syncs them in one commit rather than one each,
// which counts where the disk is slow to flush.
func (r *recorder) write(ctx context.Context, batch []recorded) error {
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	for i, b := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.blob.Commit()
		}()
	}
	wg.Wait()
	crashpoint.Hit("solver.blobs.committed")
	var first error
	recs := make([]cache.Record, 0, len(batch))
	for i, b := range batch {
		if errs[i] != nil {
			if first == nil {
				first = errs[i]
			}
			continue
		}
		recs = append(recs, b.rec)
	}
	if len(recs) > 0 {
		if err := cache.Put(ctx, r.db, recs...); err != nil && first == nil {
			first = err
		}
		crashpoint.Hit("solver.records.written")
	}
	return first
}

// wait blocks until every queued blob is in the store and its record
// written, and returns the first error.
func (r *recorder) wait() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.busy {
		r.cond.Wait()
	}
	return r.err
}
