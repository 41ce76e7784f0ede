package source

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/storetest"
)

// layerEntries lists the entries of the store layer d by name.
func layerEntries(t *testing.T, s *store.Store, d digest.Digest) map[string]*tar.Header {
	t.Helper()
	rc, err := s.Content().OpenLayer(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Clean(h.Name)] = h
	}
}

func checkImported(t *testing.T, s *store.Store, m ocispec.Descriptor, src string) ocispec.Image {
	t.Helper()
	mf, cfg, err := s.Content().LoadImage(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH || cfg.Created == nil {
		t.Errorf("platform %s/%s created %v", cfg.OS, cfg.Architecture, cfg.Created)
	}
	if len(mf.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 || mf.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("manifest %+v, diff_ids %v", mf, cfg.RootFS.DiffIDs)
	}
	if len(cfg.History) != 1 || cfg.History[0].Comment != "Imported from "+src {
		t.Errorf("history = %+v", cfg.History)
	}
	entries := layerEntries(t, s, mf.Layers[0].Digest)
	if h := entries["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
		t.Errorf("bin/busybox = %+v", h)
	}
	if h := entries["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
		t.Errorf("bin/sh = %+v", h)
	}
	validateStoreImage(t, s, m)
	return cfg
}

func TestImportDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.NewStore(t)
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	m, err := Import(ctx, s, rootfs, "imported/busybox", ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{"A=b"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Content().Resolve(ctx, "imported/busybox:latest"); err != nil || got.Digest != m.Digest {
		t.Errorf("Resolve = %v, %v", got, err)
	}
	cfg := checkImported(t, s, m, rootfs)
	if !slices.Equal(cfg.Config.Env, []string{DefaultPath, "A=b"}) || !slices.Equal(cfg.Config.Cmd, []string{"/bin/sh"}) {
		t.Errorf("config = %+v", cfg.Config)
	}

	// umoci unpacks it from the store's layout.
	testutil.RequiresRoot(t)
	umoci := testutil.LookTool(t, "umoci")
	bundle := filepath.Join(t.TempDir(), "bundle")
	out, err := exec.Command(umoci, "unpack", "--image", s.Content().ContentDir()+":imported/busybox:latest", bundle).CombinedOutput()
	if err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	fi, err := os.Stat(filepath.Join(bundle, "rootfs", "bin", "busybox"))
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("unpacked bin/busybox: %v, %v", fi, err)
	}
}

func TestImportTarFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	layer := testutil.BusyboxLayer(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"rootfs.tar", layer},
		{"rootfs.tar.gz", testutil.Gzip(t, layer)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.NewStore(t)
			src := testutil.WriteFile(t, dir, tc.name, tc.data)
			m, err := Import(ctx, s, src, "", ocispec.ImageConfig{Env: []string{"PATH=/bin"}})
			if err != nil {
				t.Fatal(err)
			}
			cfg := checkImported(t, s, m, src)
			if cfg.RootFS.DiffIDs[0] != digest.FromBytes(layer) {
				t.Errorf("diff_id %s is not the tar's digest", cfg.RootFS.DiffIDs[0])
			}
			if !slices.Equal(cfg.Config.Env, []string{"PATH=/bin"}) {
				t.Errorf("env = %v: a given PATH stays", cfg.Config.Env)
			}
			// Untagged: listed without a name.
			imgs, err := s.Content().Images(ctx)
			if err != nil || len(imgs) != 1 || imgs[0].Name != "" {
				t.Errorf("Images = %+v, %v", imgs, err)
			}
		})
	}
}

func TestImportErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.NewStore(t)
	if _, err := Import(ctx, s, t.TempDir(), "Bad Name", ocispec.ImageConfig{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := Import(ctx, s, filepath.Join(t.TempDir(), "missing"), "x", ocispec.ImageConfig{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing source: %v", err)
	}
}
