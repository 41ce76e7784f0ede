package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store"
)

// NewStore opens a store on a temporary root.
func NewStore(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Created is the creation time of Config's images and history.
var Created = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// Config is an image config over layers (uncompressed tars).
func Config(layers ...[]byte) ocispec.Image {
	cfg := ocispec.Image{Created: &Created, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	cfg.Config.Env = []string{"PATH=/bin"}
	cfg.Config.Cmd = []string{"/bin/sh"}
	cfg.RootFS.Type = "layers"
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
		cfg.History = append(cfg.History, ocispec.History{Created: &Created, CreatedBy: "test"})
	}
	return cfg
}

// PutImage stores an image of layers (uncompressed tars, stored gzip)
// with Config's config and tags it with names.
func PutImage(t testing.TB, s *store.Store, layers [][]byte, names ...string) ocispec.Descriptor {
	t.Helper()
	return putImage(t, s, store.Gzip, layers, names)
}

// PutUncompressedImage is PutImage with the layers stored uncompressed,
// as a load of a docker archive keeps them.
func PutUncompressedImage(t testing.TB, s *store.Store, layers [][]byte, names ...string) ocispec.Descriptor {
	t.Helper()
	return putImage(t, s, store.Uncompressed, layers, names)
}

func putImage(t testing.TB, s *store.Store, form store.Compression, layers [][]byte, names []string) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	var descs []ocispec.Descriptor
	for _, l := range layers {
		b := l
		if form == store.Gzip {
			b = testutil.Gzip(t, l)
		}
		d, err := s.Content().Ingest(ctx, store.LayerMediaType(form), bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, d)
	}
	m, _, err := s.Content().PutImage(ctx, Config(layers...), descs)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := s.Content().Tag(ctx, n, m); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// BusyboxLayers are the layers of a small busybox image: busybox-static's
// root file system and a layer adding /etc/hello.
func BusyboxLayers(t testing.TB) [][]byte {
	return [][]byte{testutil.BusyboxLayer(t), testutil.Tar(t, testutil.TarEntry{Name: "etc/hello", Body: "hi\n"})}
}

// LoadImage reads the image ref back: its manifest descriptor, manifest
// and config.
func LoadImage(t testing.TB, s *store.Store, ref string) (ocispec.Descriptor, ocispec.Manifest, ocispec.Image) {
	t.Helper()
	ctx := context.Background()
	d, err := s.Content().Resolve(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	m, cfg, err := s.Content().LoadImage(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	return d, m, cfg
}

// ValidateLayout runs go-containerregistry's validator over the image m
// of the OCI layout dir: digests, sizes and diff_ids all checked against
// the blobs. Its validator reads every layer as gzip, so an image with
// uncompressed layers gets its structural checks (validate.Fast) and
// CheckLayers instead.
func ValidateLayout(t testing.TB, dir string, m digest.Digest) {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(m.String())
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var opts []validate.Option
	for _, l := range mf.Layers {
		if store.LayerCompression(string(l.MediaType)) == store.Uncompressed {
			opts = append(opts, validate.Fast)
			CheckLayers(t, dir, m)
			break
		}
	}
	if err := validate.Image(img, opts...); err != nil {
		t.Fatalf("validate %s: %v", m, err)
	}
}

// CheckLayers checks every layer blob of the image m of the OCI layout
// dir: its bytes match its descriptor (digest, size), its content's
// compression is the one its media type says, and its uncompressed
// content hashes to the config's diff ID.
func CheckLayers(t testing.TB, dir string, m digest.Digest) {
	t.Helper()
	read := func(d digest.Digest) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		if digest.FromBytes(b) != d {
			t.Fatalf("blob %s does not match its digest", d)
		}
		return b
	}
	var mf ocispec.Manifest
	var cfg ocispec.Image
	if err := json.Unmarshal(read(m), &mf); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(read(mf.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.RootFS.DiffIDs) != len(mf.Layers) {
		t.Fatalf("image %s: %d layers, %d diff_ids", m, len(mf.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range mf.Layers {
		b := read(l.Digest)
		if int64(len(b)) != l.Size {
			t.Errorf("image %s layer %d: %d bytes, descriptor says %d", m, i, len(b), l.Size)
		}
		c, _, err := store.DetectCompression(bytes.NewReader(b))
		if err != nil || c != store.LayerCompression(l.MediaType) {
			t.Errorf("image %s layer %d: media type %s for content compressed %v (%v)", m, i, l.MediaType, c, err)
		}
		rc, err := store.Decompress(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		u, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("image %s layer %d: %v", m, i, err)
		}
		if digest.FromBytes(u) != cfg.RootFS.DiffIDs[i] {
			t.Errorf("image %s layer %d: uncompressed content is not diff_id %s", m, i, cfg.RootFS.DiffIDs[i])
		}
	}
}
