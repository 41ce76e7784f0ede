package ops

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store"
)

// fakeFetcher copies blobs from another store, counting.
type fakeFetcher struct {
	from, to *store.Store
	fetched  []digest.Digest
}

func (f *fakeFetcher) FetchBlob(ctx context.Context, d digest.Digest) error {
	f.fetched = append(f.fetched, d)
	rc, err := f.from.Content().OpenBlob(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = f.to.Content().Ingest(ctx, "application/vnd.oci.image.layer.v1.tar+gzip", rc)
	return err
}

// A layer the store lacks is fetched before it is read, once; one it has
// is read as it is.
func TestFetchingOpener(t *testing.T) {
	ctx := context.Background()
	open := func() *store.Store {
		st, err := store.Open(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	remote, local := open(), open()
	var buf bytes.Buffer
	w := testutil.NewTarWriter(&buf)
	if err := w.Add(testutil.TarEntry{Name: "f", Body: "remote layer", ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tarBytes := buf.Bytes()
	desc, _, err := remote.Content().IngestLayer(ctx, bytes.NewReader(tarBytes))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFetcher{from: remote, to: local}
	r := &Resolver{cfg: Config{Store: local, Fetcher: f}}
	for range 2 {
		rc, err := r.layers().OpenLayer(ctx, desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, tarBytes) {
			t.Fatalf("read %d bytes (%v), want the layer's tar", len(got), err)
		}
	}
	if len(f.fetched) != 1 || f.fetched[0] != desc.Digest {
		t.Errorf("fetched %v, want the layer once", f.fetched)
	}
	// Without a fetcher the store is read directly.
	if _, ok := (&Resolver{cfg: Config{Store: local}}).layers().(*store.Content); !ok {
		t.Error("no fetcher: not the store's content")
	}
}
