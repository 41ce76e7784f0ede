package source

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
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

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var testCreated = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// testConfig is a config over layers (uncompressed tars).
func testConfig(layers ...[]byte) ocispec.Image {
	cfg := ocispec.Image{Created: &testCreated, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	cfg.Config.Env = []string{"PATH=/bin"}
	cfg.Config.Cmd = []string{"/bin/sh"}
	cfg.RootFS.Type = "layers"
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
		cfg.History = append(cfg.History, ocispec.History{Created: &testCreated, CreatedBy: "test"})
	}
	return cfg
}

// putImage stores an image of layers (uncompressed tars, stored gzip) and
// tags it with names.
func putImage(t *testing.T, s *store.Store, layers [][]byte, names ...string) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	var descs []ocispec.Descriptor
	for _, l := range layers {
		d, err := s.Content().Ingest(ctx, ocispec.MediaTypeImageLayerGzip, bytes.NewReader(testutil.Gzip(t, l)))
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, d)
	}
	m, _, err := s.Content().PutImage(ctx, testConfig(layers...), descs)
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

// busyboxLayers are the layers of the test busybox image.
func busyboxLayers(t *testing.T) [][]byte {
	return [][]byte{testutil.BusyboxLayer(t), testutil.Tar(t, testutil.TarEntry{Name: "etc/hello", Body: "hi\n"})}
}

// readTar reads a (small) tar into a map of regular files and symlinks.
func readTar(t *testing.T, b []byte) (files map[string][]byte, links map[string]string) {
	t.Helper()
	files, links = map[string][]byte{}, map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, links
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = data
		case tar.TypeSymlink:
			links[h.Name] = h.Linkname
		}
	}
}

// validateStoreImage runs go-containerregistry's validator over the store's
// image m: digests, sizes and diff_ids all checked against the blobs.
func validateStoreImage(t *testing.T, s *store.Store, m ocispec.Descriptor) {
	t.Helper()
	validateLayout(t, s.Content().ContentDir(), m.Digest)
}

func validateLayout(t *testing.T, dir string, m digest.Digest) {
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
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate %s: %v", m, err)
	}
}

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install -y %s)", name, name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

func writeFileT(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func loadImage(t *testing.T, s *store.Store, ref string) (ocispec.Descriptor, ocispec.Manifest, ocispec.Image) {
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
