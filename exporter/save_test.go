package exporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/storetest"
)

func TestSaveDocker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.NewStore(t)
	layers := storetest.BusyboxLayers(t)
	storetest.PutImage(t, s, layers, "base/busybox:1", "app")
	storetest.PutImage(t, s, [][]byte{layers[0]}, "reg:5000/x/y:t")
	_, mf, cfg := storetest.LoadImage(t, s, "app")

	var buf bytes.Buffer
	if err := SaveDocker(ctx, s, []string{"base/busybox:1", "app", "reg:5000/x/y:t", "app:latest"}, &buf); err != nil {
		t.Fatal(err)
	}
	files, _ := testutil.ReadTar(t, buf.Bytes())

	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v\n%s", err, files["manifest.json"])
	}
	if len(manifest) != 2 {
		t.Fatalf("manifest.json = %s", files["manifest.json"])
	}
	for _, e := range manifest {
		if slices.Contains(e.RepoTags, "reg:5000/x/y:t") {
			if len(e.Layers) != 1 {
				t.Errorf("reg image layers = %v", e.Layers)
			}
			continue
		}
		slices.Sort(e.RepoTags)
		if !slices.Equal(e.RepoTags, []string{"app:latest", "base/busybox:1"}) {
			t.Errorf("RepoTags = %v", e.RepoTags)
		}
		if e.Config != mf.Config.Digest.Encoded()+".json" || digest.FromBytes(files[e.Config]) != mf.Config.Digest {
			t.Errorf("config %s does not hold the image's config bytes", e.Config)
		}
		if len(e.Layers) != len(layers) {
			t.Fatalf("layers = %v", e.Layers)
		}
		for i, l := range e.Layers {
			// Uncompressed, named by diff ID, the bytes the diff ID names.
			if l != cfg.RootFS.DiffIDs[i].Encoded()+".tar" || !bytes.Equal(files[l], layers[i]) {
				t.Errorf("layer %d: %s (%d bytes) is not the uncompressed layer", i, l, len(files[l]))
			}
		}
	}
	var repos map[string]map[string]string
	if err := json.Unmarshal(files["repositories"], &repos); err != nil {
		t.Fatalf("repositories: %v\n%s", err, files["repositories"])
	}
	if repos["base/busybox"]["1"] != cfg.RootFS.DiffIDs[1].Encoded() || repos["app"]["latest"] == "" || repos["reg:5000/x/y"]["t"] == "" {
		t.Errorf("repositories = %s", files["repositories"])
	}

	// skopeo reads it, by each name, and copies it to an OCI layout.
	skopeo := testutil.LookTool(t, "skopeo")
	archive := testutil.WriteFile(t, t.TempDir(), "x.tar", buf.Bytes())
	for _, n := range []string{"base/busybox:1", "app:latest", "reg:5000/x/y:t"} {
		got := skopeoConfig(t, "docker-archive:"+archive+":"+n)
		want := cfg.RootFS.DiffIDs
		if n == "reg:5000/x/y:t" {
			want = want[:1]
		}
		if !slices.Equal(got.RootFS.DiffIDs, want) {
			t.Errorf("skopeo %s: diff_ids %v, want %v", n, got.RootFS.DiffIDs, want)
		}
	}
	dst := filepath.Join(t.TempDir(), "oci")
	testutil.Run(t, skopeo, "copy", "docker-archive:"+archive+":app:latest", "oci:"+dst+":copied")
	got := skopeoConfig(t, "oci:"+dst+":copied")
	if !slices.Equal(got.RootFS.DiffIDs, cfg.RootFS.DiffIDs) || !slices.Equal(got.Config.Env, cfg.Config.Env) {
		t.Errorf("copied config = %+v", got)
	}
}

func TestSaveOCI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.NewStore(t)
	layers := storetest.BusyboxLayers(t)
	m := storetest.PutImage(t, s, layers, "acceptance-diff/001-x", "app")
	_, mf, cfg := storetest.LoadImage(t, s, "app")

	var buf bytes.Buffer
	if err := SaveOCI(ctx, s, []string{"acceptance-diff/001-x", "app", mf.Config.Digest.Encoded()[:8]}, &buf); err != nil {
		t.Fatal(err)
	}
	files, _ := testutil.ReadTar(t, buf.Bytes())
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range idx.Manifests {
		if e.Digest != m.Digest {
			t.Errorf("index entry %+v", e)
		}
		names = append(names, e.Annotations[ocispec.AnnotationRefName])
	}
	// Named by ID prefix: an untagged entry.
	if !slices.Equal(names, []string{"acceptance-diff/001-x:latest", "app:latest", ""}) {
		t.Errorf("ref names = %q", names)
	}
	if got := idx.Manifests[1].Annotations[annotationImageName]; got != "docker.io/library/app:latest" {
		t.Errorf("%s = %q", annotationImageName, got)
	}
	for _, d := range append([]ocispec.Descriptor{m, mf.Config}, mf.Layers...) {
		b, ok := files[blobPath(d.Digest)]
		if !ok || digest.FromBytes(b) != d.Digest {
			t.Errorf("blob %s missing or wrong", d.Digest)
		}
	}

	// go-containerregistry validates the layout it unpacks to.
	dir := t.TempDir()
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := mkdirWrite(p, b); err != nil {
			t.Fatal(err)
		}
	}
	storetest.ValidateLayout(t, dir, m.Digest)

	skopeo := testutil.LookTool(t, "skopeo")
	archive := testutil.WriteFile(t, t.TempDir(), "x.oci.tar", buf.Bytes())
	got := skopeoConfig(t, "oci-archive:"+archive+":acceptance-diff/001-x:latest")
	if !slices.Equal(got.RootFS.DiffIDs, cfg.RootFS.DiffIDs) {
		t.Errorf("skopeo: diff_ids %v", got.RootFS.DiffIDs)
	}
	dst := filepath.Join(t.TempDir(), "oci")
	testutil.Run(t, skopeo, "copy", "oci-archive:"+archive+":app:latest", "oci:"+dst+":copied")
	out := testutil.Run(t, skopeo, "inspect", "--raw", "oci:"+dst+":copied")
	if digest.FromBytes(out) != m.Digest {
		t.Errorf("skopeo copy changed the manifest:\n%s", out)
	}
}

func TestSaveErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.NewStore(t)
	var buf bytes.Buffer
	for name, save := range map[string]func(context.Context, *store.Store, []string, *bytes.Buffer) error{
		"docker": func(ctx context.Context, s *store.Store, r []string, w *bytes.Buffer) error {
			return SaveDocker(ctx, s, r, w)
		},
		"oci": func(ctx context.Context, s *store.Store, r []string, w *bytes.Buffer) error {
			return SaveOCI(ctx, s, r, w)
		},
	} {
		if err := save(ctx, s, []string{"missing"}, &buf); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s save of a missing image = %v", name, err)
		}
		if err := save(ctx, s, nil, &buf); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s save of nothing = %v", name, err)
		}
	}
}

// An image whose layers the store keeps uncompressed (loaded from a docker
// archive): a docker archive copies them as they are, writing nothing to
// the store; an OCI archive has them gzip, made once: the second save
// writes the same archive from the same blobs and compresses nothing.
func TestSaveUncompressedLayers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.NewStore(t)
	layers := storetest.BusyboxLayers(t)
	m := storetest.PutUncompressedImage(t, s, layers, "plain:1")
	_, mf, cfg := storetest.LoadImage(t, s, "plain:1")
	blobs := func() map[digest.Digest]bool {
		out := map[digest.Digest]bool{}
		err := s.Content().Walk(ctx, func(d digest.Digest, _ int64) error { out[d] = true; return nil })
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := blobs()

	var docker bytes.Buffer
	if err := SaveDocker(ctx, s, []string{"plain:1"}, &docker); err != nil {
		t.Fatal(err)
	}
	files, _ := testutil.ReadTar(t, docker.Bytes())
	for i, l := range layers {
		if got := files[cfg.RootFS.DiffIDs[i].Encoded()+".tar"]; !bytes.Equal(got, l) {
			t.Errorf("docker archive layer %d: %d bytes, not the stored tar", i, len(got))
		}
	}
	if got := blobs(); len(got) != len(before) {
		t.Errorf("docker save wrote %d blobs", len(got)-len(before))
	}

	var first, second bytes.Buffer
	if err := SaveOCI(ctx, s, []string{"plain:1"}, &first); err != nil {
		t.Fatal(err)
	}
	made := blobs()
	if len(made) != len(before)+len(layers) {
		t.Fatalf("oci save made %d blobs, want one gzip form per layer", len(made)-len(before))
	}
	forms, err := s.Content().GzipForms(ctx)
	if err != nil || len(forms) != len(layers) {
		t.Fatalf("GzipForms = %v, %v", forms, err)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if before[forms[d]] || !made[forms[d]] {
			t.Errorf("no new gzip form remembered for %s", d)
		}
	}
	if err := SaveOCI(ctx, s, []string{"plain:1"}, &second); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) || len(blobs()) != len(made) {
		t.Error("the second oci save differs or wrote blobs")
	}

	files, _ = testutil.ReadTar(t, first.Bytes())
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("index.json = %s, %v", files["index.json"], err)
	}
	md := idx.Manifests[0]
	var out ocispec.Manifest
	if err := json.Unmarshal(files[blobPath(md.Digest)], &out); err != nil {
		t.Fatal(err)
	}
	// The same image (ID), another manifest: its layers gzip.
	if md.Digest == m.Digest || out.Config.Digest != mf.Config.Digest {
		t.Errorf("manifest %s (store's %s), config %s (image's %s)", md.Digest, m.Digest, out.Config.Digest, mf.Config.Digest)
	}
	for i, l := range out.Layers {
		if l.MediaType != ocispec.MediaTypeImageLayerGzip || l.Digest != forms[cfg.RootFS.DiffIDs[i]] {
			t.Errorf("layer %d: %+v", i, l)
		}
	}
	dir := t.TempDir()
	for name, b := range files {
		if err := mkdirWrite(filepath.Join(dir, filepath.FromSlash(name)), b); err != nil {
			t.Fatal(err)
		}
	}
	storetest.ValidateLayout(t, dir, md.Digest)
	archive := testutil.WriteFile(t, t.TempDir(), "x.oci.tar", first.Bytes())
	if got := skopeoConfig(t, "oci-archive:"+archive+":plain:1"); !slices.Equal(got.RootFS.DiffIDs, cfg.RootFS.DiffIDs) {
		t.Errorf("skopeo: diff_ids %v", got.RootFS.DiffIDs)
	}
}
