package solver_test

import (
	"context"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
)

// fakeRemote is an imported cache: the records another store made, whose
// blobs it copies from that store when asked, counting.
type fakeRemote struct {
	from    *store.Store
	to      *store.Store
	records map[digest.Digest]cache.Record

	mu      sync.Mutex
	lookups int
	fetched []digest.Digest
}

func newFakeRemote(from, to *store.Store, recs []cache.Record) *fakeRemote {
	r := &fakeRemote{from: from, to: to, records: map[digest.Digest]cache.Record{}}
	for _, rec := range recs {
		r.records[rec.Key] = rec
	}
	return r
}

func (r *fakeRemote) Lookup(ctx context.Context, key digest.Digest) (*cache.Record, error) {
	r.mu.Lock()
	r.lookups++
	r.mu.Unlock()
	rec, ok := r.records[key]
	if !ok {
		return nil, nil
	}
	return &rec, nil
}

// FetchBlob copies d when it is the layer of one of the records; another
// blob is a layer this build made, which the real ops find unpacked.
func (r *fakeRemote) FetchBlob(ctx context.Context, d digest.Digest) error {
	if !slices.ContainsFunc(slices.Collect(maps.Values(r.records)), func(rec cache.Record) bool { return rec.Layer.Digest == d }) {
		return nil
	}
	r.mu.Lock()
	r.fetched = append(r.fetched, d)
	r.mu.Unlock()
	rc, err := r.from.Content().OpenBlob(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = r.to.Content().Ingest(ctx, "application/vnd.oci.image.layer.v1.tar+gzip", io.Reader(rc))
	return err
}

// A fresh store whose solver has another store's records as a remote
// cache runs nothing, fetches no blob, and makes the very same image; a
// changed last step fetches only the layers it runs on.
func TestRemoteCacheHitRunsAndFetchesNothing(t *testing.T) {
	a := newHarness(t)
	first := a.mustSolve(chain("x"), solver.Options{})
	if len(first.Records) != 3 {
		t.Fatalf("result has %d records, want 3", len(first.Records))
	}

	b := newHarness(t)
	remote := newFakeRemote(a.st, b.st, first.Records)
	b.ops.fetch = remote.FetchBlob
	second := b.mustSolve(chain("x"), solver.Options{Remote: remote})
	if b.ops.total() != 0 {
		t.Fatalf("ran %v", b.ops.runs)
	}
	for text, s := range b.statuses() {
		if s != solver.StatusCached {
			t.Errorf("%s: %s, want cached", text, s)
		}
	}
	if len(remote.fetched) != 0 {
		t.Errorf("fetched %v before anything asked", remote.fetched)
	}
	for _, l := range second.Layers {
		if b.st.Content().HasBlob(l.Digest) {
			t.Errorf("layer %s in the store though no one fetched it", l.Digest)
		}
	}
	if !slices.Equal(first.DiffIDs, second.DiffIDs) || !first.Config.Created.Equal(*second.Config.Created) {
		t.Errorf("diff IDs %v created %v, remote-cached %v created %v", first.DiffIDs, first.Config.Created, second.DiffIDs, second.Config.Created)
	}
	// The records of the hits are the build's records too: an export of
	// this build is complete.
	if len(second.Records) != 3 {
		t.Errorf("remote-cached result has %d records, want 3", len(second.Records))
	}

	// The last step changes: it runs on the two layers below it, which it
	// fetches; the first two steps still come from the remote cache.
	changed := chain("x")
	changed.Stages[0].Steps[3] = run(5, "three", "changed")
	b.mustSolve(changed, solver.Options{Remote: remote})
	if b.ops.total() != 1 || b.ops.count(b.ops.runs, "three changed") != 1 {
		t.Errorf("ran %v, want only the changed step", b.ops.runs)
	}
	if want := second.Layers[:2]; len(remote.fetched) != 2 || remote.fetched[0] != want[0].Digest || remote.fetched[1] != want[1].Digest {
		t.Errorf("fetched %v, want the two layers below the changed step", remote.fetched)
	}
}

// A remote record made on other layers than the ones the step runs on is
// a miss, as a local one is (Record.ParentChain).
func TestRemoteCacheParentChainMismatchMisses(t *testing.T) {
	a := newHarness(t)
	first := a.mustSolve(chain("x"), solver.Options{})
	recs := slices.Clone(first.Records)
	var two digest.Digest
	for i := range recs {
		if recs[i].Step.Text == "RUN two x" {
			recs[i].ParentChain = digest.FromString("other layers")
			two = recs[i].Key
		}
	}
	if two == "" {
		t.Fatal("no record of RUN two x")
	}
	b := newHarness(t)
	remote := newFakeRemote(a.st, b.st, recs)
	b.ops.fetch = remote.FetchBlob
	b.mustSolve(chain("x"), solver.Options{Remote: remote})
	got := b.statuses()
	want := map[string]solver.Status{"RUN one": solver.StatusCached, "RUN two x": solver.StatusDone, "RUN three": solver.StatusDone}
	for text, s := range want {
		if got[text] != s {
			t.Errorf("%s: %s, want %s", text, got[text], s)
		}
	}
}

// A local hit never asks the remote cache.
func TestRemoteCacheAskedOnlyAfterLocalMiss(t *testing.T) {
	h := newHarness(t)
	h.mustSolve(chain("x"), solver.Options{})
	remote := newFakeRemote(h.st, h.st, nil)
	h.mustSolve(chain("x"), solver.Options{Remote: remote})
	if remote.lookups != 0 {
		t.Errorf("%d remote lookups for a build the local cache has", remote.lookups)
	}
}
