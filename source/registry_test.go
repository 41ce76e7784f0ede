package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/registry"
	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/storetest"
)

// memRegistry is go-containerregistry's in-memory registry on loopback,
// counting the blob GETs it serves.
func memRegistry(t *testing.T) (host string, blobGets *atomic.Int64) {
	t.Helper()
	blobGets = &atomic.Int64{}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			blobGets.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), blobGets
}

// variant is an image whose one layer holds /platform saying says.
func variant(t *testing.T, arch, says string) v1.Image {
	t.Helper()
	tb := testutil.Tar(t, testutil.TarEntry{Name: "platform", Body: says + "\n"})
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tb)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func puller() *Puller {
	return &Puller{Registry: &registry.Options{Backoff: remote.Backoff{Steps: 1}}, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
}

func TestPullIndexPicksPlatform(t *testing.T) {
	ctx := context.Background()
	host, _ := memRegistry(t)
	amd, arm := variant(t, "amd64", "amd"), variant(t, "arm64", "arm")
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	ref := host + "/multi:1"
	r, _ := name.ParseReference(ref)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()

	for _, tc := range []struct {
		arch string
		want v1.Image
	}{{"amd64", amd}, {"arm64", arm}} {
		st := storetest.NewStore(t)
		p := puller()
		p.Platform.Architecture = tc.arch
		img, err := p.Pull(ctx, st, ref)
		if err != nil {
			t.Fatal(err)
		}
		wantDigest, _ := tc.want.Digest()
		if img.Descriptor.Digest.String() != wantDigest.String() {
			t.Errorf("%s: pulled %s, want %s", tc.arch, img.Descriptor.Digest, wantDigest)
		}
		validateStoreImage(t, st, img.Descriptor)
		// The tag and the index's digest resolve in the store, offline.
		if got, err := Lookup(ctx, st, ref); err != nil || got.Descriptor.Digest != img.Descriptor.Digest {
			t.Errorf("%s: tag lookup %v, %v", tc.arch, got.Descriptor.Digest, err)
		}
		byIndex := host + "/multi@" + idxDigest.String()
		got, err := lookupFor(ctx, st, byIndex, p.Platform)
		if err != nil || got.Descriptor.Digest != img.Descriptor.Digest {
			t.Errorf("%s: index digest lookup %v, %v", tc.arch, got.Descriptor.Digest, err)
		}
	}

	st := storetest.NewStore(t)
	p := puller()
	p.Platform.Architecture = "s390x"
	if _, err := p.Pull(ctx, st, ref); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "linux/arm64") {
		t.Errorf("a platform the index lacks: %v", err)
	}
}

func TestPullDockerSchema2KeepsManifest(t *testing.T) {
	ctx := context.Background()
	host, _ := memRegistry(t)
	img := mutate.MediaType(variant(t, "amd64", "x"), types.DockerManifestSchema2)
	img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	ref := host + "/docker/app:1"
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	st := storetest.NewStore(t)
	got, err := puller().Pull(ctx, st, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.Descriptor.Digest.String() != want.String() || got.Descriptor.MediaType != string(types.DockerManifestSchema2) {
		t.Errorf("stored %+v, registry has %s", got.Descriptor, want)
	}
	list, err := st.Content().Images(ctx)
	if err != nil || len(list) != 1 || list[0].Err != nil || list[0].Name != ref {
		t.Errorf("images %+v %v", list, err)
	}
}

func TestPullWrongDiffIDStoresNothing(t *testing.T) {
	ctx := context.Background()
	host, _ := memRegistry(t)
	// static.NewLayer's diff_id is the gzip's digest, not the tar's.
	gz := testutil.Gzip(t, testutil.Tar(t, testutil.TarEntry{Name: "f", Body: "x"}))
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(gz, types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/bad:1"
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	st := storetest.NewStore(t)
	_, err = puller().Pull(ctx, st, ref)
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "diff_id") {
		t.Fatalf("pull of a wrong diff_id: %v", err)
	}
	n := 0
	st.Content().Walk(ctx, func(_ digest.Digest, _ int64) error { n++; return nil })
	if n != 0 {
		t.Errorf("a failed pull stored %d blobs", n)
	}
}

func TestResolverPullsOnce(t *testing.T) {
	ctx := context.Background()
	host, blobGets := memRegistry(t)
	img := variant(t, "amd64", "x")
	ref := host + "/app:1"
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	st := storetest.NewStore(t)
	res := &Resolver{Store: st, Puller: puller()}
	if _, err := res.Lookup(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Lookup(ctx, ref); err != nil {
		t.Fatal(err)
	}
	first := blobGets.Load()
	if first != 2 { // config and layer
		t.Errorf("first resolve fetched %d blobs, want 2", first)
	}
	// A new build: the store has it, nothing is fetched; with Pull only
	// the manifest.
	if _, err := (&Resolver{Store: st, Puller: puller()}).Lookup(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Resolver{Store: st, Puller: puller(), Pull: true}).Lookup(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if n := blobGets.Load(); n != first {
		t.Errorf("resolving a stored image fetched %d more blobs", n-first)
	}
	// An image ID prefix is never pulled.
	if _, err := (&Resolver{Store: st, Puller: puller()}).Lookup(ctx, "abcdef12"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown ID prefix: %v", err)
	}
}

func TestParsePlatform(t *testing.T) {
	for in, ok := range map[string]bool{"linux/amd64": true, "linux/arm/v7": true, "linux": false, "linux/": false, "a/b/c/d": false} {
		if _, err := ParsePlatform(in); (err == nil) != ok {
			t.Errorf("ParsePlatform(%q): %v", in, err)
		}
	}
}
