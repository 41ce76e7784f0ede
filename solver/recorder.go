package solver

import (
	"context"
	"sync"

	"github.com/builder-dev/builder/solver/cache"
)

// recorder writes cache records in the background, batching what arrives
// while a transaction is in flight: a transaction's fsync is then off the
// path from one RUN to the next. Records are only handed over after their
// layer blob is in the store, so a record never points at a missing blob;
// a crash may lose the newest records, which only costs a re-run.
type recorder struct {
	db   cache.DB
	mu   sync.Mutex
	cond *sync.Cond
	buf  []cache.Record
	busy bool
	err  error
}

func newRecorder(db cache.DB) *recorder {
	r := &recorder{db: db}
	r.cond = sync.NewCond(&r.mu)
	return r
}

// add queues rec; a batch starts at once unless one is running.
func (r *recorder) add(ctx context.Context, rec cache.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, rec)
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
		err := cache.Put(ctx, r.db, batch...)
		r.mu.Lock()
		if err != nil && r.err == nil {
			r.err = err
		}
	}
	r.busy = false
	r.cond.Broadcast()
	r.mu.Unlock()
}

// wait blocks until every queued record is written and returns the first
// error.
func (r *recorder) wait() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.busy {
		r.cond.Wait()
	}
	return r.err
}
