package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/registry"
	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store/storetest"
)

// uploads counts what an in-memory registry is sent: blob upload starts
// (POST) by whether they mount.
type uploads struct {
	mu            sync.Mutex
	posts, mounts int
}

func memRegistry(t *testing.T) (string, *uploads) {
	t.Helper()
	u := &uploads{}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") {
			u.mu.Lock()
			if r.URL.Query().Get("from") != "" {
				u.mounts++
			} else {
				u.posts++
			}
			u.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), u
}

func (u *uploads) take() (posts, mounts int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	p, m := u.posts, u.mounts
	u.posts, u.mounts = 0, 0
	return p, m
}

func TestPushKeepsManifestAndSkipsPresentBlobs(t *testing.T) {
	ctx := context.Background()
	host, up := memRegistry(t)
	s := storetest.NewStore(t)
	ref := host + "/a/app:1"
	m := storetest.PutImage(t, s, storetest.BusyboxLayers(t), ref)
	opts := &registry.Options{}
	p, err := Push(ctx, s, m, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Manifest.Digest != m.Digest {
		t.Errorf("pushed %s, stored %s", p.Manifest.Digest, m.Digest)
	}
	r, _ := name.ParseReference(ref)
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("pushed image: %v", err)
	}
	if posts, _ := up.take(); posts != 3 {
		t.Errorf("first push started %d uploads, want 3 (config, two layers)", posts)
	}
	if _, err := Push(ctx, s, m, ref, opts); err != nil {
		t.Fatal(err)
	}
	if posts, mounts := up.take(); posts+mounts != 0 {
		t.Errorf("second push started %d uploads and %d mounts", posts, mounts)
	}
	// Another repository of the registry: each blob has a source to
	// mount from (the in-memory registry shares blobs between
	// repositories, so the mount itself is seen only against a real one,
	// in cmd/builder's e2e tests).
	target, _ := name.ParseReference(host + "/b/other:1")
	src := mountSources(ctx, s.Content(), target)
	_, mf, _ := storetest.LoadImage(t, s, ref)
	for _, d := range append([]ocispec.Descriptor{mf.Config}, mf.Layers...) {
		if r := src[d.Digest]; r == nil || r.Context().RepositoryStr() != "a/app" {
			t.Errorf("blob %s: mount source %v, want a/app", d.Digest, r)
		}
	}
	if src := mountSources(ctx, s.Content(), r); len(src) != 0 {
		t.Errorf("mount sources for the image's own repository: %v", src)
	}
}

// A layer the store keeps uncompressed (as a docker archive brings it) is
// pushed gzip-compressed, under a new OCI manifest.
func TestPushCompressesUncompressedLayer(t *testing.T) {
	ctx := context.Background()
	host, _ := memRegistry(t)
	s := storetest.NewStore(t)
	layer := testutil.Tar(t, testutil.TarEntry{Name: "f", Body: "plain\n"})
	l, err := s.Content().Ingest(ctx, ocispec.MediaTypeImageLayer, bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := s.Content().PutImage(ctx, storetest.Config(layer), []ocispec.Descriptor{l})
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/plain/app:1"
	p, err := Push(ctx, s, m, ref, &registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(ref)
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("pushed image: %v", err)
	}
	rm, _ := img.Manifest()
	if rm.Layers[0].MediaType != types.OCILayer || rm.Layers[0].Digest.String() == l.Digest.String() {
		t.Errorf("pushed layer %+v, want a gzip layer", rm.Layers[0])
	}
	if d, _ := img.Digest(); d.String() != p.Manifest.Digest.String() {
		t.Errorf("Push reports %s, registry has %s", p.Manifest.Digest, d)
	}
}

// A registry's refusals that another client's push of the same blobs can
// cause are retried; others are not.
func TestRacedUpload(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&transport.Error{Errors: []transport.Diagnostic{{Code: transport.DigestInvalidErrorCode}}}, true},
		{fmt.Errorf("put manifest: %w", &transport.Error{Errors: []transport.Diagnostic{{Code: transport.ManifestBlobUnknownErrorCode}, {Code: transport.DigestInvalidErrorCode}}}), true},
		{&transport.Error{Errors: []transport.Diagnostic{{Code: transport.UnauthorizedErrorCode}}}, false},
		{&transport.Error{StatusCode: 500}, false},
		{errors.New("connection refused"), false},
	} {
		if got := racedUpload(tc.err); got != tc.want {
			t.Errorf("racedUpload(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
