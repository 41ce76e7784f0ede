package solver

import (
	"context"
	"sync"

	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
	"github.com/builder-dev/builder/store/meta"
)

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
