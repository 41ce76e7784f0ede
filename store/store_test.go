package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.etcd.io/bbolt"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store/meta"
)

func TestNormalizeName(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		in, want string
		invalid  bool
	}{
		{in: "app", want: "app:latest"},
		{in: "app:1.0", want: "app:1.0"},
		{in: "base/busybox:1", want: "base/busybox:1"},
		{in: "base/busybox", want: "base/busybox:latest"},
		{in: "reg:5000/x/y:t", want: "reg:5000/x/y:t"},
		{in: "reg:5000/x/y", want: "reg:5000/x/y:latest"},
		{in: "localhost/x", want: "localhost/x:latest"},
		{in: "acceptance-diff/001-x", want: "acceptance-diff/001-x:latest"},
		{in: "docker.io/library/busybox:1", want: "busybox:1"},
		{in: "index.docker.io/library/busybox", want: "busybox:latest"},
		{in: "docker.io/foo/bar", want: "foo/bar:latest"},
		{in: "library/busybox", want: "busybox:latest"},
		{in: "docker.io/example.com/x:1", want: "docker.io/example.com/x:1"},
		{in: "name@" + dg, want: "name@" + dg},
		{in: "name:t@" + dg, want: "name:t@" + dg},
		{in: "", invalid: true},
		{in: "App", invalid: true},
		{in: "a b", invalid: true},
		{in: "x:", invalid: true},
		{in: "x@sha256:12", invalid: true},
		{in: "-x", invalid: true},
		{in: "a..b", invalid: true},
		{in: "a/-b", invalid: true},
		{in: "a__b-c--d.e", want: "a__b-c--d.e:latest"},
	} {
		got, err := NormalizeName(tc.in)
		if tc.invalid {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("NormalizeName(%q) = %q, %v; want ErrInvalid", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestDefaultRoot(t *testing.T) {
	t.Setenv("BUILDER_ROOT", "/x/y")
	if got := DefaultRoot(); got != "/x/y" {
		t.Errorf("DefaultRoot with BUILDER_ROOT = %q", got)
	}
	t.Setenv("BUILDER_ROOT", "")
	want := "/var/lib/builder"
	if os.Geteuid() != 0 {
		t.Setenv("XDG_DATA_HOME", "/data")
		want = "/data/builder"
	}
	if got := DefaultRoot(); got != want {
		t.Errorf("DefaultRoot = %q, want %q", got, want)
	}
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOpenLayout(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	for _, p := range []string{"content/oci-layout", "content/index.json", "content/blobs/sha256", "snapshots", "tmp", "meta.db"} {
		if _, err := os.Stat(filepath.Join(s.Root(), p)); err != nil {
			t.Error(err)
		}
	}
	var layout ocispec.ImageLayout
	b, _ := os.ReadFile(filepath.Join(s.Content().ContentDir(), "oci-layout"))
	if err := json.Unmarshal(b, &layout); err != nil || layout.Version != "1.0.0" {
		t.Errorf("oci-layout = %s", b)
	}
	// Opening again keeps what is there.
	desc := putImage(t, s, "again", []byte("layer"))
	s2, err := Open(ctx, s.Root())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Content().Resolve(ctx, "again"); err != nil || got.Digest != desc.Digest {
		t.Errorf("Resolve after reopen = %v, %v", got, err)
	}
}

func TestBlobs(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	data := []byte("hello blob")
	desc, err := s.Content().Ingest(ctx, "text/plain", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != digest.FromBytes(data) || desc.Size != int64(len(data)) || desc.MediaType != "text/plain" {
		t.Errorf("Ingest = %+v", desc)
	}
	// Ingesting the same content again is fine.
	if again, err := s.Content().Ingest(ctx, "text/plain", bytes.NewReader(data)); err != nil || again.Digest != desc.Digest {
		t.Errorf("second Ingest = %v, %v", again, err)
	}
	if !s.Content().HasBlob(desc.Digest) || s.Content().HasBlob(digest.FromString("other")) || s.Content().HasBlob("bogus") {
		t.Error("HasBlob wrong")
	}
	rc, err := s.Content().OpenBlob(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("OpenBlob read %q", got)
	}
	if _, err := s.Content().OpenBlob(ctx, digest.FromString("missing")); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenBlob(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Content().OpenBlob(ctx, "sha256:../../etc"); !errors.Is(err, ErrInvalid) {
		t.Errorf("OpenBlob(bad digest) = %v, want ErrInvalid", err)
	}

	type doc struct{ A, B string }
	jd, err := s.Content().WriteJSON(ctx, "application/json", doc{"x", "y"})
	if err != nil {
		t.Fatal(err)
	}
	var back doc
	if err := s.Content().ReadJSON(ctx, jd.Digest, &back); err != nil || back != (doc{"x", "y"}) {
		t.Errorf("ReadJSON = %+v, %v", back, err)
	}
	if entries, _ := os.ReadDir(s.TmpDir()); len(entries) != 0 {
		t.Errorf("tmp/ not empty: %v", entries)
	}
	// A cancelled ingest writes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Content().Ingest(cctx, "text/plain", strings.NewReader("never")); err == nil || s.Content().HasBlob(digest.FromString("never")) {
		t.Errorf("cancelled Ingest = %v", err)
	}
}

// gz compresses b.
func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarOf makes a one-file layer tar.
func tarOf(t *testing.T, name, content string) []byte {
	t.Helper()
	return testutil.Tar(t, testutil.TarEntry{Name: name, Body: content})
}

// putImage stores an image made of the given uncompressed layer tars and,
// unless name is "", tags it.
func putImage(t *testing.T, s *Store, name string, layers ...[]byte) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := ocispec.Image{Created: &created, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	cfg.RootFS.Type = "layers"
	cfg.Config.Env = []string{"PATH=/bin", "NAME=" + name}
	var descs []ocispec.Descriptor
	for _, l := range layers {
		d, err := s.Content().Ingest(ctx, ocispec.MediaTypeImageLayerGzip, bytes.NewReader(gz(t, l)))
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, d)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
		cfg.History = append(cfg.History, ocispec.History{Created: &created, CreatedBy: "test"})
	}
	m, _, err := s.Content().PutImage(ctx, cfg, descs)
	if err != nil {
		t.Fatal(err)
	}
	if name != "" {
		if err := s.Content().Tag(ctx, name, m); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func readIndex(t *testing.T, s *Store) ocispec.Index {
	t.Helper()
	idx, err := s.Content().readIndex()
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestTagResolveUntag(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	a := putImage(t, s, "acceptance-diff/001-x", tarOf(t, "a", "a"))
	b := putImage(t, s, "", tarOf(t, "b", "b"))

	// b is listed untagged.
	imgs, err := s.Content().Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("Images = %+v", imgs)
	}
	byName := map[string]Image{}
	for _, im := range imgs {
		byName[im.Name] = im
	}
	if byName[""].Manifest.Digest != b.Digest || byName["acceptance-diff/001-x:latest"].Manifest.Digest != a.Digest {
		t.Errorf("Images = %+v", imgs)
	}
	ma, ca, err := s.Content().LoadImage(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	ia := byName["acceptance-diff/001-x:latest"]
	if len(ia.Layers) != 1 || ia.Layers[0].Digest != ma.Layers[0].Digest || ia.Config.Digest != ma.Config.Digest || !ia.Created.Equal(*ca.Created) {
		t.Errorf("Image = %+v, manifest %+v", ia, ma)
	}

	for _, name := range []string{"b", "reg:5000/x/y:t", "docker.io/library/c:1", "b:other"} {
		if err := s.Content().Tag(ctx, name, b); err != nil {
			t.Fatal(err)
		}
	}
	// The untagged entry of b gave way to its tags.
	for _, e := range readIndex(t, s).Manifests {
		if refName(e) == "" {
			t.Errorf("untagged entry left: %+v", e)
		}
	}
	mb, _, err := s.Content().LoadImage(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	idA, idB := ma.Config.Digest, mb.Config.Digest
	for ref, want := range map[string]digest.Digest{
		"acceptance-diff/001-x":        a.Digest,
		"acceptance-diff/001-x:latest": a.Digest,
		"b":                            b.Digest,
		"b:latest":                     b.Digest,
		"b:other":                      b.Digest,
		"c:1":                          b.Digest,
		"reg:5000/x/y:t":               b.Digest,
		a.Digest.String():              a.Digest,
		"b@" + a.Digest.String():       a.Digest, // the digest decides
		idA.String():                   a.Digest,
		idA.Encoded():                  a.Digest,
		idB.Encoded()[:12]:             b.Digest,
		"sha256:" + idB.Encoded()[:12]: b.Digest,
	} {
		got, err := s.Content().Resolve(ctx, ref)
		if err != nil || got.Digest != want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", ref, got.Digest, err, want)
		}
		if err == nil && (got.MediaType != ocispec.MediaTypeImageManifest || got.Size == 0 || got.Annotations != nil) {
			t.Errorf("Resolve(%q) = %+v", ref, got)
		}
	}
	for _, ref := range []string{"nope", "b:nope", digest.FromString("x").String(), "abc", "fffffffff"} {
		if _, err := s.Content().Resolve(ctx, ref); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q) = %v, want ErrNotFound", ref, err)
		}
	}

	// Re-tagging moves the name; a's last tag goes so a stays untagged.
	if err := s.Content().Tag(ctx, "acceptance-diff/001-x", b); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Content().Resolve(ctx, "acceptance-diff/001-x"); got.Digest != b.Digest {
		t.Errorf("retag: resolves to %s", got.Digest)
	}
	if got, err := s.Content().Resolve(ctx, idA.Encoded()[:8]); err != nil || got.Digest != a.Digest {
		t.Errorf("untagged a by ID = %v, %v", got.Digest, err)
	}
	if err := s.Content().Untag(ctx, "b:other"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Content().Resolve(ctx, "b:other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Untag: %v", err)
	}
	if err := s.Content().Untag(ctx, "b:other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Untag twice = %v", err)
	}
	if err := s.Content().Tag(ctx, "x", ocispec.Descriptor{Digest: digest.FromString("nothing")}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Tag(missing manifest) = %v", err)
	}
	if err := s.Content().Tag(ctx, "Bad Name", b); !errors.Is(err, ErrInvalid) {
		t.Errorf("Tag(bad name) = %v", err)
	}
	if err := s.Content().Tag(ctx, "x@"+b.Digest.String(), b); !errors.Is(err, ErrInvalid) {
		t.Errorf("Tag(digest name) = %v", err)
	}

	if err := s.Content().Remove(ctx, b.Digest); err != nil {
		t.Fatal(err)
	}
	for _, e := range readIndex(t, s).Manifests {
		if e.Digest == b.Digest {
			t.Errorf("Remove left %+v", e)
		}
	}
	if err := s.Content().Remove(ctx, b.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove twice = %v", err)
	}
	// The manifest blob is still there, so its digest still resolves.
	if got, err := s.Content().Resolve(ctx, b.Digest.String()); err != nil || got.Digest != b.Digest {
		t.Errorf("Resolve(removed manifest digest) = %v, %v", got, err)
	}
}

func TestResolveAmbiguousPrefix(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	// Two IDs sharing 4 hex digits would take hundreds of images, so check
	// the rule on one shared digit, below the length Resolve accepts; 17
	// images are sure to share one.
	seen := map[string]digest.Digest{}
	for i := range 17 {
		m := putImage(t, s, "", tarOf(t, "f", fmt.Sprint(i)))
		mf, _, err := s.Content().LoadImage(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		p := mf.Config.Digest.Encoded()[:1]
		if _, ok := seen[p]; ok {
			if _, err := s.Content().Resolve(ctx, p); !errors.Is(err, ErrNotFound) {
				t.Errorf("Resolve(%q) = %v, want ErrNotFound: too short for an ID", p, err)
			}
			if _, err := s.Content().resolveIDPrefix(ctx, readIndex(t, s), p, p); !errors.Is(err, ErrInvalid) {
				t.Errorf("ambiguous prefix %q: %v, want ErrInvalid", p, err)
			}
			return
		}
		seen[p] = mf.Config.Digest
	}
	t.Fatal("17 IDs with distinct first digits")
}

func TestConcurrentTags(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	// Another Store on the same root stands for another process.
	s2, err := Open(ctx, s.Root())
	if err != nil {
		t.Fatal(err)
	}
	m := putImage(t, s, "", tarOf(t, "a", "a"))
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for g, st := range []*Store{s, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				errs <- st.Content().Tag(ctx, fmt.Sprintf("g%d/img:%d", g, i), m)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	idx := readIndex(t, s)
	if len(idx.Manifests) != 2*n {
		t.Errorf("index has %d entries, want %d", len(idx.Manifests), 2*n)
	}
	for g := range 2 {
		for i := range n {
			if _, err := s.Content().Resolve(ctx, fmt.Sprintf("g%d/img:%d", g, i)); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestMeta(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	s2, err := Open(ctx, s.Root())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g, st := range []*Store{s, s2, s, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				err := st.Meta().Update(ctx, func(tx *bbolt.Tx) error {
					b, err := tx.CreateBucketIfNotExists([]byte("test"))
					if err != nil {
						return err
					}
					return b.Put([]byte(fmt.Sprintf("%d-%d", g, i)), []byte("v"))
				})
				if err != nil {
					t.Error(err)
				}
				if err := st.Meta().View(ctx, func(tx *bbolt.Tx) error { return nil }); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	count := 0
	err = s.Meta().View(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("test")).ForEach(func(k, v []byte) error { count++; return nil })
	})
	if err != nil || count != 40 {
		t.Errorf("View: %d keys, %v", count, err)
	}
	// A failed update changes nothing.
	boom := errors.New("boom")
	err = s.Meta().Update(ctx, func(tx *bbolt.Tx) error {
		tx.Bucket([]byte("test")).Put([]byte("x"), []byte("y"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Update error = %v", err)
	}
	s.Meta().View(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte("test")).Get([]byte("x")) != nil {
			t.Error("failed update was kept")
		}
		return nil
	})
	// The database is closed between transactions: another open succeeds
	// at once.
	db, err := bbolt.Open(s.Meta().Path(), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("meta.db held open: %v", err)
	}
	db.Close()
}

// storeWithBusybox stores a busybox image tagged name.
func storeWithBusybox(t *testing.T, name string) (*Store, ocispec.Descriptor) {
	t.Helper()
	s := openStore(t)
	return s, putImage(t, s, name, testutil.BusyboxLayer(t), tarOf(t, "etc/hello", "hi\n"))
}

func TestValidateWithGGCR(t *testing.T) {
	s, m := storeWithBusybox(t, "base/busybox:1")
	p, err := layout.FromPath(s.Content().ContentDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(m.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
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

func TestSkopeoReadsStore(t *testing.T) {
	skopeo := lookTool(t, "skopeo")
	names := []string{"app:latest", "acceptance-diff/001-x:latest", "reg:5000/x/y:t"}
	s, m := storeWithBusybox(t, names[0])
	for _, n := range names[1:] {
		if err := s.Content().Tag(context.Background(), n, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+s.Content().ContentDir()+":"+n).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v\n%s", n, err, out)
		}
		if digest.FromBytes(out) != m.Digest {
			t.Errorf("skopeo inspect --raw %s: got another manifest: %s", n, out)
		}
		out, err = exec.Command(skopeo, "inspect", "oci:"+s.Content().ContentDir()+":"+n).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v\n%s", n, err, out)
		}
		var info struct {
			Layers []string
			Env    []string
		}
		if err := json.Unmarshal(out, &info); err != nil || len(info.Layers) != 2 {
			t.Errorf("skopeo inspect %s: %s", n, out)
		}
	}
}

func TestUmociUnpacksStore(t *testing.T) {
	testutil.RequiresRoot(t)
	umoci := lookTool(t, "umoci")
	s, _ := storeWithBusybox(t, "acceptance-diff/001-x:latest")
	bundle := filepath.Join(t.TempDir(), "bundle")
	out, err := exec.Command(umoci, "unpack", "--image", s.Content().ContentDir()+":acceptance-diff/001-x:latest", bundle).CombinedOutput()
	if err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(bundle, "rootfs", "etc", "hello"))
	if err != nil || string(b) != "hi\n" {
		t.Errorf("etc/hello = %q, %v", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(bundle, "rootfs", "bin", "sh")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("bin/sh: %v, %v", fi, err)
	}
}

// A meta.db left empty (bbolt creates the file before its first pages, a
// kill in between) is made a database again by the next Open, so that
// read-only commands do not fail on it; a damaged one is reported with
// what to do.
func TestOpenMetaEmptyOrDamaged(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if err := os.Truncate(s.Meta().Path(), 0); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, s.Root())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Meta().View(ctx, func(*bbolt.Tx) error { return nil }); err != nil {
		t.Errorf("View after an empty meta.db: %v", err)
	}
	if err := os.WriteFile(s.Meta().Path(), bytes.Repeat([]byte("garbage!"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	err = s.Meta().View(ctx, func(*bbolt.Tx) error { return nil })
	if !errors.Is(err, meta.ErrDamaged) || !strings.Contains(err.Error(), "store verify --remove") {
		t.Errorf("View of a garbage meta.db: %v", err)
	}
	aside, err := s.Meta().Reset(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(aside); err != nil || !bytes.HasPrefix(b, []byte("garbage!")) {
		t.Errorf("the damaged meta.db was not kept at %s: %v", aside, err)
	}
	if err := s.Meta().View(ctx, func(*bbolt.Tx) error { return nil }); err != nil {
		t.Errorf("View after Reset: %v", err)
	}
}
