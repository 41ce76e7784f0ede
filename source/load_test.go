package source

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/exporter"
	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/storetest"
)

// legacyImage is one image of a docker-save archive built by hand.
type legacyImage struct {
	tags   []string
	layers [][]byte
}

// legacyDockerArchive writes an archive as docker save (before Docker 25)
// does: <v1 id>/{VERSION,json,layer.tar} per layer, a layer already written
// for an earlier image linked with "../<id>/layer.tar", <config hex>.json,
// then manifest.json and repositories at the end.
func legacyDockerArchive(t *testing.T, images ...legacyImage) (archive []byte, configs []digest.Digest) {
	t.Helper()
	var entries []testutil.TarEntry
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []entry
	repos := map[string]map[string]string{}
	written := map[digest.Digest]string{}
	for i, img := range images {
		var paths []string
		for j, l := range img.layers {
			d := digest.FromBytes(l)
			id := digest.FromString(fmt.Sprintf("v1-%d-%d", i, j)).Encoded()
			entries = append(entries,
				testutil.TarEntry{Name: id + "/VERSION", Body: "1.0"},
				testutil.TarEntry{Name: id + "/json", Body: `{"id":"` + id + `"}`})
			if first, ok := written[d]; ok {
				entries = append(entries, testutil.TarEntry{Name: id + "/layer.tar", Type: tar.TypeSymlink, Mode: 0o777, Linkname: "../" + first + "/layer.tar"})
			} else {
				entries = append(entries, testutil.TarEntry{Name: id + "/layer.tar", Body: string(l)})
				written[d] = id
			}
			paths = append(paths, id+"/layer.tar")
		}
		cfg, err := json.Marshal(storetest.Config(img.layers...))
		if err != nil {
			t.Fatal(err)
		}
		cd := digest.FromBytes(cfg)
		configs = append(configs, cd)
		entries = append(entries, testutil.TarEntry{Name: cd.Encoded() + ".json", Body: string(cfg)})
		manifest = append(manifest, entry{Config: cd.Encoded() + ".json", RepoTags: img.tags, Layers: paths})
		for _, tag := range img.tags {
			repo, tg, ok := strings.Cut(tag, ":")
			if !ok {
				tg = "latest"
			}
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			repos[repo][tg] = paths[len(paths)-1]
		}
	}
	mb, _ := json.Marshal(manifest)
	rb, _ := json.Marshal(repos)
	entries = append(entries, testutil.TarEntry{Name: "manifest.json", Body: string(mb)}, testutil.TarEntry{Name: "repositories", Body: string(rb)})
	return testutil.Tar(t, entries...), configs
}

// checkLoaded checks the stored image ref: its config is the archive's
// (same ID), its layers are blobs in the forms given (as they came in the
// archive: an uncompressed one's digest is its diff ID) whose content
// matches the diff_ids, and the image validates.
func checkLoaded(t *testing.T, s *store.Store, ref string, config digest.Digest, layers [][]byte, forms []store.Compression) {
	t.Helper()
	ctx := context.Background()
	d, m, cfg := storetest.LoadImage(t, s, ref)
	if m.Config.Digest != config || m.Config.MediaType != ocispec.MediaTypeImageConfig || m.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("%s: manifest %+v, want config %s", ref, m, config)
	}
	if len(m.Layers) != len(layers) || len(cfg.RootFS.DiffIDs) != len(layers) {
		t.Fatalf("%s: %d layers, %d diff_ids, want %d", ref, len(m.Layers), len(cfg.RootFS.DiffIDs), len(layers))
	}
	for i, l := range m.Layers {
		if l.MediaType != store.LayerMediaType(forms[i]) {
			t.Errorf("%s layer %d: media type %s, want %s", ref, i, l.MediaType, store.LayerMediaType(forms[i]))
		}
		if forms[i] == store.Uncompressed && l.Digest != cfg.RootFS.DiffIDs[i] {
			t.Errorf("%s layer %d: uncompressed blob %s, diff_id %s", ref, i, l.Digest, cfg.RootFS.DiffIDs[i])
		}
		rc, err := s.Content().OpenLayer(ctx, l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, layers[i]) || digest.FromBytes(b) != cfg.RootFS.DiffIDs[i] {
			t.Errorf("%s layer %d: content does not match", ref, i)
		}
	}
	validateStoreImage(t, s, d)
}

// plain is n layers kept uncompressed.
func plain(n int) []store.Compression { return make([]store.Compression, n) }

func TestLoadLegacyDockerArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bb := storetest.BusyboxLayers(t)
	archive, configs := legacyDockerArchive(t,
		legacyImage{tags: []string{"base/busybox:1"}, layers: bb[:1]},
		legacyImage{tags: []string{"app:1", "docker.io/library/app:2"}, layers: bb},
	)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"plain", archive},
		{"gzip", testutil.Gzip(t, archive)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.NewStore(t)
			names, err := Load(ctx, s, bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names, []string{"base/busybox:1", "app:1", "app:2"}) {
				t.Errorf("names = %v", names)
			}
			// A docker archive's layers are kept uncompressed.
			checkLoaded(t, s, "base/busybox:1", configs[0], bb[:1], plain(1))
			checkLoaded(t, s, "app:1", configs[1], bb, plain(2))
			checkLoaded(t, s, "app:2", configs[1], bb, plain(2))
			// The shared layer is stored once.
			_, m1, _ := storetest.LoadImage(t, s, "base/busybox:1")
			_, m2, _ := storetest.LoadImage(t, s, "app:1")
			if m1.Layers[0].Digest != m2.Layers[0].Digest {
				t.Error("shared layer stored twice")
			}
			if entries, _ := os.ReadDir(s.TmpDir()); len(entries) != 0 {
				t.Errorf("tmp/ left: %v", entries)
			}
		})
	}
}

// TestLoadSkopeoDockerArchive loads what skopeo writes as a docker-archive.
func TestLoadSkopeoDockerArchive(t *testing.T) {
	t.Parallel()
	skopeo := testutil.LookTool(t, "skopeo")
	ctx := context.Background()
	src := storetest.NewStore(t)
	layers := storetest.BusyboxLayers(t)
	storetest.PutImage(t, src, layers, "app")
	_, _, cfg := storetest.LoadImage(t, src, "app")

	archive := filepath.Join(t.TempDir(), "x.tar")
	testutil.Run(t, skopeo, "copy", "oci:"+src.Content().ContentDir()+":app:latest", "docker-archive:"+archive+":img/x:1")
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := storetest.NewStore(t)
	names, err := Load(ctx, s, f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"img/x:1"}) {
		t.Errorf("names = %v", names)
	}
	_, m, got := storetest.LoadImage(t, s, "img/x:1")
	if !slices.Equal(got.RootFS.DiffIDs, cfg.RootFS.DiffIDs) || !slices.Equal(got.Config.Env, cfg.Config.Env) {
		t.Errorf("config = %+v", got)
	}
	checkLoaded(t, s, "img/x:1", m.Config.Digest, layers, plain(len(layers)))
}

func TestSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := storetest.NewStore(t)
	layers := storetest.BusyboxLayers(t)
	m := storetest.PutImage(t, src, layers, "acceptance-diff/001-x", "reg:5000/x/y:t")
	_, mf, _ := storetest.LoadImage(t, src, "reg:5000/x/y:t")
	for name, save := range map[string]func(context.Context, *store.Store, []string, io.Writer) error{
		"docker": exporter.SaveDocker,
		"oci":    exporter.SaveOCI,
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := save(ctx, src, []string{"acceptance-diff/001-x", "reg:5000/x/y:t"}, &buf); err != nil {
				t.Fatal(err)
			}
			s := storetest.NewStore(t)
			names, err := Load(ctx, s, &buf)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(names)
			if !slices.Equal(names, []string{"acceptance-diff/001-x:latest", "reg:5000/x/y:t"}) {
				t.Errorf("names = %v", names)
			}
			forms := plain(len(layers))
			if name == "oci" {
				forms = []store.Compression{store.Gzip, store.Gzip}
			}
			for _, n := range names {
				checkLoaded(t, s, n, mf.Config.Digest, layers, forms)
			}
			if name == "oci" {
				// Nothing to convert: the manifest keeps its digest.
				if d, _, _ := storetest.LoadImage(t, s, names[0]); d.Digest != m.Digest {
					t.Errorf("manifest %s, saved %s", d.Digest, m.Digest)
				}
			}
		})
	}
}

// A docker archive loads without compressing anything and saves back
// without decompressing: the saved layers are the loaded bytes, the image
// ID is the archive's, the layer sizes are counted, and neither writes a
// blob the image does not hold.
func TestLoadSaveDockerKeepsTars(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	layers := storetest.BusyboxLayers(t)
	archive, configs := legacyDockerArchive(t, legacyImage{tags: []string{"app:1"}, layers: layers})
	s := storetest.NewStore(t)
	if _, err := Load(ctx, s, bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, s, "app:1", configs[0], layers, plain(len(layers)))
	_, m, cfg := storetest.LoadImage(t, s, "app:1")
	infos, err := s.LayerInfos(ctx, []digest.Digest{m.Layers[0].Digest, m.Layers[1].Digest})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		want, _ := store.CountTar(bytes.NewReader(l))
		if got := infos[m.Layers[i].Digest]; got != want || got.TarSize != int64(len(l)) {
			t.Errorf("layer %d: LayerInfo %+v, want %+v", i, got, want)
		}
	}
	count := func() int {
		n := 0
		s.Content().Walk(ctx, func(digest.Digest, int64) error { n++; return nil })
		return n
	}
	// manifest, config and the two layers
	if n := count(); n != 4 {
		t.Errorf("%d blobs after the load, want 4", n)
	}
	var buf bytes.Buffer
	if err := exporter.SaveDocker(ctx, s, []string{"app:1"}, &buf); err != nil {
		t.Fatal(err)
	}
	files, _ := testutil.ReadTar(t, buf.Bytes())
	for i, l := range layers {
		if got := files[cfg.RootFS.DiffIDs[i].Encoded()+".tar"]; !bytes.Equal(got, l) {
			t.Errorf("saved layer %d differs from the loaded one", i)
		}
	}
	if n := count(); n != 4 {
		t.Errorf("%d blobs after the save, want 4", n)
	}
}

// An OCI archive's layers are kept as they came, gzip, zstd or plain, and
// so is its manifest when its media types say what the layers are; the
// gzip layer is remembered as its layer's gzip form.
func TestLoadOCIKeepsLayerForms(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	layers := [][]byte{
		testutil.Tar(t, testutil.TarEntry{Name: "gz", Body: "gzip"}),
		testutil.Tar(t, testutil.TarEntry{Name: "zst", Body: "zstd"}),
		testutil.Tar(t, testutil.TarEntry{Name: "plain", Body: "plain"}),
	}
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs := [][]byte{testutil.Gzip(t, layers[0]), zw.EncodeAll(layers[1], nil), layers[2]}
	forms := []store.Compression{store.Gzip, store.Zstd, store.Uncompressed}
	cfg, _ := json.Marshal(storetest.Config(layers...))
	man := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: descOf(ocispec.MediaTypeImageConfig, cfg)}
	for i, b := range blobs {
		man.Layers = append(man.Layers, descOf(store.LayerMediaType(forms[i]), b))
	}
	mb, _ := json.Marshal(man)
	top := descOf(ocispec.MediaTypeImageManifest, mb)
	top.Annotations = map[string]string{ocispec.AnnotationRefName: "forms:1"}
	archive := ociArchive(t, append([][]byte{cfg, mb}, blobs...), ocispec.Index{Manifests: []ocispec.Descriptor{top}})

	s := storetest.NewStore(t)
	if _, err := Load(ctx, s, bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, s, "forms:1", digest.FromBytes(cfg), layers, forms)
	d, m, _ := storetest.LoadImage(t, s, "forms:1")
	if d.Digest != top.Digest {
		t.Errorf("manifest %s, archive's %s", d.Digest, top.Digest)
	}
	for i, l := range m.Layers {
		if l.Digest != digest.FromBytes(blobs[i]) {
			t.Errorf("layer %d: blob %s is not the archive's", i, l.Digest)
		}
	}
	gz, err := s.Content().GzipForms(ctx)
	if err != nil || len(gz) != 1 || gz[digest.FromBytes(layers[0])] != m.Layers[0].Digest {
		t.Errorf("GzipForms = %v, %v", gz, err)
	}
}

// A docker archive of an image named by its ID carries it untagged, and
// loads back known by its ID.
func TestSaveLoadUntaggedByID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.NewStore(t)
	layer := testutil.Tar(t, testutil.TarEntry{Name: "a", Body: "a"})
	m := storetest.PutImage(t, s, [][]byte{layer})
	_, mf, _ := storetest.LoadImage(t, s, m.Digest.String())
	id := mf.Config.Digest

	var buf bytes.Buffer
	if err := exporter.SaveDocker(ctx, s, []string{id.Encoded()[:12]}, &buf); err != nil {
		t.Fatal(err)
	}
	files, _ := testutil.ReadTar(t, buf.Bytes())
	var manifest []struct{ RepoTags []string }
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 || len(manifest[0].RepoTags) != 0 {
		t.Errorf("manifest.json = %s, %v", files["manifest.json"], err)
	}
	// Loaded back, it is known by its ID, untagged.
	s2 := storetest.NewStore(t)
	names, err := Load(ctx, s2, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{id.String()}) {
		t.Errorf("Load names = %v, want the ID", names)
	}
	imgs, err := s2.Content().Images(ctx)
	if err != nil || len(imgs) != 1 || imgs[0].Name != "" || imgs[0].Config.Digest != id {
		t.Errorf("Images = %+v, %v", imgs, err)
	}
}

// ociArchive writes an OCI archive by hand: blobs, and index.json entries.
func ociArchive(t *testing.T, blobs [][]byte, index ocispec.Index) []byte {
	t.Helper()
	entries := []testutil.TarEntry{{Name: "oci-layout", Body: `{"imageLayoutVersion":"1.0.0"}`}}
	for _, b := range blobs {
		entries = append(entries, testutil.TarEntry{Name: blobPath(digest.FromBytes(b)), Body: string(b)})
	}
	index.SchemaVersion = 2
	ib, _ := json.Marshal(index)
	return testutil.Tar(t, append(entries, testutil.TarEntry{Name: "index.json", Body: string(ib)})...)
}

func descOf(mt string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// TestLoadOCIConverts loads an OCI archive with Docker media types, an
// uncompressed layer, a nested multi-platform index and containerd's name
// annotation: the manifest is converted to OCI media types that say what
// the layers are, the layers kept as they came.
func TestLoadOCIConverts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	layers := storetest.BusyboxLayers(t)
	cfg, _ := json.Marshal(storetest.Config(layers...))
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     store.MediaTypeDockerManifest,
		"config":        descOf(store.MediaTypeDockerConfig, cfg),
		"layers": []ocispec.Descriptor{
			descOf("application/vnd.docker.image.rootfs.diff.tar.gzip", testutil.Gzip(t, layers[0])),
			descOf(ocispec.MediaTypeImageLayer, layers[1]),
		},
	})
	// Another platform's image, which Load must skip (its blobs are absent).
	otherArch := "arm64"
	if runtime.GOARCH == "arm64" {
		otherArch = "amd64"
	}
	mdesc := descOf(store.MediaTypeDockerManifest, man)
	mdesc.Platform = &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	other := descOf(ocispec.MediaTypeImageManifest, []byte("elsewhere"))
	other.Platform = &ocispec.Platform{OS: "linux", Architecture: otherArch}
	nested, _ := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{other, mdesc},
	})
	top := descOf(ocispec.MediaTypeImageIndex, nested)
	top.Annotations = map[string]string{ocispec.AnnotationRefName: "1", annotationImageName: "docker.io/library/conv:1"}
	untagged := descOf(store.MediaTypeDockerManifest, man)
	archive := ociArchive(t, [][]byte{cfg, man, nested, testutil.Gzip(t, layers[0]), layers[1]},
		ocispec.Index{Manifests: []ocispec.Descriptor{top, untagged}})

	s := storetest.NewStore(t)
	names, err := Load(ctx, s, bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	id := digest.FromBytes(cfg)
	if !slices.Equal(names, []string{"conv:1", id.String()}) {
		t.Errorf("names = %v", names)
	}
	checkLoaded(t, s, "conv:1", id, layers, []store.Compression{store.Gzip, store.Uncompressed})
	// Both layers kept their bytes.
	_, m, _ := storetest.LoadImage(t, s, "conv:1")
	if m.Layers[0].Digest != digest.FromBytes(testutil.Gzip(t, layers[0])) {
		t.Error("gzip layer was recompressed")
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	layer := testutil.Tar(t, testutil.TarEntry{Name: "a", Body: "a"})
	good, _ := legacyDockerArchive(t, legacyImage{tags: []string{"x"}, layers: [][]byte{layer}})
	files, links := testutil.ReadTar(t, good)
	if len(links) != 0 {
		t.Fatal("unexpected links")
	}
	// rebuild replaces or drops entries of the good archive.
	rebuild := func(change map[string]*string, extra ...testutil.TarEntry) []byte {
		var entries []testutil.TarEntry
		for name, b := range files {
			body := string(b)
			if c, ok := change[name]; ok {
				if c == nil {
					continue
				}
				body = *c
			}
			entries = append(entries, testutil.TarEntry{Name: name, Body: body})
		}
		return testutil.Tar(t, append(entries, extra...)...)
	}
	var layerPath string
	for name := range files {
		if filepath.Base(name) == "layer.tar" {
			layerPath = name
		}
	}
	other := string(testutil.Tar(t, testutil.TarEntry{Name: "b", Body: "b"}))
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"not an archive", []byte("hello"), nil},
		{"empty archive", testutil.Tar(t), store.ErrInvalid},
		{"wrong layer content", rebuild(map[string]*string{layerPath: &other}), store.ErrInvalid},
		{"missing layer", rebuild(map[string]*string{layerPath: nil}), store.ErrNotFound},
		{"bad manifest.json", rebuild(map[string]*string{"manifest.json": ptr("{")}), nil},
		{"escaping link", rebuild(map[string]*string{layerPath: nil}, testutil.TarEntry{Name: layerPath, Type: tar.TypeSymlink, Mode: 0o777, Linkname: "../../../../etc/passwd"}), store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.NewStore(t)
			_, err := Load(ctx, s, bytes.NewReader(tc.data))
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Load = %v, want %v", err, tc.want)
			}
			if imgs, _ := s.Content().Images(ctx); len(imgs) != 0 {
				t.Errorf("images after a failed load: %+v", imgs)
			}
			if entries, _ := os.ReadDir(s.TmpDir()); len(entries) != 0 {
				t.Errorf("tmp/ left: %v", entries)
			}
		})
	}
}

func ptr(s string) *string { return &s }
