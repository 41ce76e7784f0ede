package remotecache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/registry"
	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// records makes a chain of n layers in st and their records, as a build
// of n steps would.
func makeRecords(t *testing.T, st *store.Store, names ...string) []cache.Record {
	t.Helper()
	var recs []cache.Record
	var diffIDs []digest.Digest
	for i, n := range names {
		var buf bytes.Buffer
		w := testutil.NewTarWriter(&buf)
		if err := w.Add(testutil.TarEntry{Name: n, Body: "content of " + n, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		desc, diffID, err := st.Content().IngestLayer(context.Background(), &buf)
		if err != nil {
			t.Fatal(err)
		}
		var parent digest.Digest
		if len(diffIDs) > 0 {
			parent = identity.ChainID(diffIDs)
		}
		recs = append(recs, cache.Record{
			Key: digest.FromString("key " + n), ParentChain: parent, Layer: desc, DiffID: diffID,
			Created: time.Date(2026, 12, 7, 10, i, 0, 0, time.UTC), LastUsed: time.Now(),
			Step: cache.Step{Dockerfile: "/ctx/Dockerfile", Index: i, Text: "RUN " + n, Kind: "exec",
				Op: []byte(`{"Args":["sh","-c","` + n + `"],"Env":["TOKEN=secret-build-arg"]}`)},
		})
		diffIDs = append(diffIDs, diffID)
	}
	return recs
}

// counting is a Target that counts what an export writes.
type counting struct {
	Target
	mu        sync.Mutex
	heads     int
	blobs     []digest.Digest
	manifests int
}

func (c *counting) HasBlob(ctx context.Context, d ocispec.Descriptor) (bool, error) {
	c.mu.Lock()
	c.heads++
	c.mu.Unlock()
	return c.Target.HasBlob(ctx, d)
}

func (c *counting) WriteBlob(ctx context.Context, d ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	c.mu.Lock()
	c.blobs = append(c.blobs, d.Digest)
	c.mu.Unlock()
	return c.Target.WriteBlob(ctx, d, open)
}

func (c *counting) WriteManifest(ctx context.Context, raw []byte, d ocispec.Descriptor) error {
	c.mu.Lock()
	c.manifests++
	c.mu.Unlock()
	return c.Target.WriteManifest(ctx, raw, d)
}

func (c *counting) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.heads, c.blobs, c.manifests = 0, nil, 0
}

// Records written to a directory come back as the solver needs them, and
// no layer is read until one is fetched.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	a := openStore(t)
	recs := makeRecords(t, a, "one", "two", "three")
	dir := filepath.Join(t.TempDir(), "cache")
	if _, err := Export(ctx, a, NewLocal(dir), recs, nil); err != nil {
		t.Fatal(err)
	}

	b := openStore(t)
	im, err := Open(ctx, b.Content(), []Target{NewLocal(dir)}, func(s string) { t.Error(s) })
	if err != nil {
		t.Fatal(err)
	}
	if im.Len() != 3 {
		t.Fatalf("imported %d records, want 3", im.Len())
	}
	for _, want := range recs {
		got, err := im.Lookup(ctx, want.Key)
		if err != nil || got == nil {
			t.Fatalf("lookup %s: %v %v", want.Key, got, err)
		}
		if got.ParentChain != want.ParentChain || got.DiffID != want.DiffID || got.Layer.Digest != want.Layer.Digest ||
			got.Layer.Size != want.Layer.Size || got.Layer.MediaType != want.Layer.MediaType ||
			!got.Created.Equal(want.Created) || got.Step.Text != want.Step.Text {
			t.Errorf("record %s came back as %+v, was %+v", want.Key, got, want)
		}
		if b.Content().HasBlob(want.Layer.Digest) {
			t.Errorf("layer %s in the store before anything fetched it", want.Layer.Digest)
		}
	}
	if rec, _ := im.Lookup(ctx, digest.FromString("unknown")); rec != nil {
		t.Errorf("unknown key found: %+v", rec)
	}
	if err := im.EnsureBlobs(ctx, []ocispec.Descriptor{recs[1].Layer}); err != nil {
		t.Fatal(err)
	}
	if !b.Content().HasBlob(recs[1].Layer.Digest) || b.Content().HasBlob(recs[0].Layer.Digest) {
		t.Error("EnsureBlobs fetched other than the layer asked for")
	}
	if s := im.Fetched(); s.Blobs != 1 || s.Bytes != recs[1].Layer.Size {
		t.Errorf("fetched %+v", s)
	}
	if size, ok := im.TarSize(recs[0].Layer.Digest); !ok || size <= 0 {
		t.Errorf("uncompressed size %d %v", size, ok)
	}
}

// The same records make the same bytes, whatever their order.
func TestEncodeIsDeterministic(t *testing.T) {
	st := openStore(t)
	recs := makeRecords(t, st, "one", "two")
	out, err := records(context.Background(), st, recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	e1, err := encode(out)
	if err != nil {
		t.Fatal(err)
	}
	rev := slices.Clone(out)
	slices.Reverse(rev)
	e2, err := encode(append(rev, out[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e1.manifest, e2.manifest) || !bytes.Equal(e1.config, e2.config) {
		t.Error("the same records encode differently")
	}
	if len(e1.layers) != 2 {
		t.Errorf("%d layers", len(e1.layers))
	}
}

// A config whose bytes do not match the manifest's digest is refused:
// the cache is skipped with a warning, not used.
func TestTamperedConfigRefused(t *testing.T) {
	ctx := context.Background()
	a := openStore(t)
	recs := makeRecords(t, a, "one")
	dir := filepath.Join(t.TempDir(), "cache")
	if _, err := Export(ctx, a, NewLocal(dir), recs, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := NewLocal(dir).Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "blobs", "sha256", m.Config.Digest.Encoded())
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(cfg, []byte("RUN one"), []byte("RUN 0ne"), 1)
	if bytes.Equal(tampered, cfg) {
		t.Fatal("no step text in the config")
	}
	if bytes.Contains(cfg, []byte("secret-build-arg")) {
		t.Error("the exported config holds a build arg's value")
	}
	if err := os.WriteFile(path, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	im, err := Open(ctx, openStore(t).Content(), []Target{NewLocal(dir)}, func(s string) { warnings = append(warnings, s) })
	if err != nil {
		t.Fatal(err)
	}
	if im.Len() != 0 || len(warnings) != 1 {
		t.Errorf("tampered cache: %d records imported, warnings %q", im.Len(), warnings)
	}
	if _, err := decodeConfig(tampered, m.Config, m.Layers); !errors.Is(err, ErrInvalid) {
		t.Errorf("decodeConfig of a tampered config: %v", err)
	}
}

// A layer blob whose bytes do not match its digest is not stored.
func TestCorruptLayerNotStored(t *testing.T) {
	ctx := context.Background()
	a := openStore(t)
	recs := makeRecords(t, a, "one")
	dir := filepath.Join(t.TempDir(), "cache")
	if _, err := Export(ctx, a, NewLocal(dir), recs, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "blobs", "sha256", recs[0].Layer.Digest.Encoded())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	im, err := Open(ctx, st.Content(), []Target{NewLocal(dir)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.FetchBlob(ctx, recs[0].Layer.Digest); !errors.Is(err, ErrInvalid) {
		t.Errorf("fetch of a corrupt blob: %v", err)
	}
	if st.Content().HasBlob(recs[0].Layer.Digest) {
		t.Error("corrupt blob stored")
	}
}

// A missing cache (the first CI run) is a warning, not an error.
func TestMissingCacheIsCold(t *testing.T) {
	var warnings []string
	im, err := Open(context.Background(), openStore(t).Content(), []Target{NewLocal(filepath.Join(t.TempDir(), "none"))},
		func(s string) { warnings = append(warnings, s) })
	if err != nil || im.Len() != 0 || len(warnings) != 1 {
		t.Errorf("missing cache: %v, %d records, warnings %q", err, im.Len(), warnings)
	}
}

// Exporting an unchanged cache checks each blob and the manifest and
// writes nothing; a new record uploads its layer, the config and the
// manifest only.
func TestExportIncremental(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	recs := makeRecords(t, st, "one", "two", "three")
	dst := &counting{Target: NewLocal(filepath.Join(t.TempDir(), "cache"))}
	s, err := Export(ctx, st, dst, recs[:2], nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Blobs != 3 || len(dst.blobs) != 3 || dst.manifests != 1 {
		t.Fatalf("first export: %+v, wrote %v and %d manifests", s, dst.blobs, dst.manifests)
	}
	dst.reset()
	if s, err = Export(ctx, st, dst, recs[:2], nil); err != nil {
		t.Fatal(err)
	}
	if s.Blobs != 0 || len(dst.blobs) != 0 || dst.manifests != 0 || dst.heads != 3 {
		t.Errorf("unchanged export: %+v, wrote %v and %d manifests after %d checks", s, dst.blobs, dst.manifests, dst.heads)
	}
	dst.reset()
	if _, err = Export(ctx, st, dst, recs, nil); err != nil {
		t.Fatal(err)
	}
	if len(dst.blobs) != 2 || !slices.Contains(dst.blobs, recs[2].Layer.Digest) || dst.manifests != 1 {
		t.Errorf("one more record: wrote %v and %d manifests", dst.blobs, dst.manifests)
	}
}

// A re-export of records whose layers this store never fetched copies
// them from the imported cache without storing them.
func TestExportCopiesUnfetchedLayers(t *testing.T) {
	ctx := context.Background()
	a := openStore(t)
	recs := makeRecords(t, a, "one", "two")
	src := filepath.Join(t.TempDir(), "src")
	if _, err := Export(ctx, a, NewLocal(src), recs, nil); err != nil {
		t.Fatal(err)
	}
	b := openStore(t)
	im, err := Open(ctx, b.Content(), []Target{NewLocal(src)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := NewLocal(filepath.Join(t.TempDir(), "dst"))
	if _, err := Export(ctx, b, dst, recs, im); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if ok, _ := dst.HasBlob(ctx, r.Layer); !ok {
			t.Errorf("layer %s not exported", r.Layer.Digest)
		}
		if b.Content().HasBlob(r.Layer.Digest) {
			t.Errorf("layer %s stored by the export", r.Layer.Digest)
		}
	}
	m1, _ := NewLocal(src).Manifest(ctx)
	m2, _ := dst.Manifest(ctx)
	if !bytes.Equal(m1, m2) {
		t.Error("the same records exported from another store differ")
	}
}

// mode=min keeps the records of the result's layers, on the very layers
// below them.
func TestSelectMin(t *testing.T) {
	st := openStore(t)
	recs := makeRecords(t, st, "one", "two", "three")
	other := makeRecords(t, st, "elsewhere")
	all := append(slices.Clone(recs), other...)
	diffIDs := []digest.Digest{recs[0].DiffID, recs[1].DiffID, recs[2].DiffID}
	if got := Select(all, diffIDs, ModeMin); len(got) != 3 || slices.ContainsFunc(got, func(r cache.Record) bool { return r.Key == other[0].Key }) {
		t.Errorf("min selected %d records", len(got))
	}
	if got := Select(all, diffIDs, ModeMax); len(got) != 4 {
		t.Errorf("max selected %d records", len(got))
	}
	moved := slices.Clone(recs)
	moved[2].ParentChain = digest.FromString("other")
	if got := Select(moved, diffIDs, ModeMin); len(got) != 2 {
		t.Errorf("a record on other layers selected: %d", len(got))
	}
}

// Through a real registry: an export, an unchanged export that uploads
// nothing, and an import that downloads only the config until a layer is
// fetched.
func TestRegistryRoundTrip(t *testing.T) {
	ctx := context.Background()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	a := openStore(t)
	recs := makeRecords(t, a, "one", "two")
	dst, err := NewRegistry(reg.Host()+"/ci/cache:main", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Export(ctx, a, dst, recs, nil); err != nil || s.Blobs != 3 {
		t.Fatalf("export: %+v %v", s, err)
	}
	mark := len(reg.Requests())
	if s, err := Export(ctx, a, dst, recs, nil); err != nil || s.Blobs != 0 {
		t.Fatalf("unchanged export: %+v %v", s, err)
	}
	if again := reg.Requests()[mark:]; len(again.BlobUploads()) != 0 || len(again.Match("PUT", "")) != 0 {
		t.Errorf("unchanged export wrote:\n%s", again)
	}

	b := openStore(t)
	mark = len(reg.Requests())
	im, err := Open(ctx, b.Content(), []Target{dst}, func(s string) { t.Error(s) })
	if err != nil || im.Len() != 2 {
		t.Fatalf("import: %d records, %v", im.Len(), err)
	}
	if gets := reg.Requests()[mark:].BlobGets(); len(gets) != 1 {
		t.Errorf("import read %d blobs, want the config only:\n%s", len(gets), gets)
	}
	if err := im.FetchBlob(ctx, recs[1].Layer.Digest); err != nil {
		t.Fatal(err)
	}
	if !b.Content().HasBlob(recs[1].Layer.Digest) {
		t.Error("fetched layer not in the store")
	}
	missing, err := NewRegistry(reg.Host()+"/ci/cache:none", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := missing.Manifest(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing cache: %v", err)
	}
}

// A cache directory holds the current cache's blobs only: what a new
// export dropped is removed.
func TestLocalPrunesDroppedBlobs(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	recs := makeRecords(t, st, "one", "two")
	dir := filepath.Join(t.TempDir(), "cache")
	dst := NewLocal(dir)
	if _, err := Export(ctx, st, dst, recs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Export(ctx, st, dst, recs[:1], nil); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 { // manifest, config, one layer
		t.Errorf("%d blobs after the smaller export, want 3", len(entries))
	}
	if ok, _ := dst.HasBlob(ctx, recs[1].Layer); ok {
		t.Error("the dropped record's layer is still there")
	}
	im, err := Open(ctx, openStore(t).Content(), []Target{dst}, func(s string) { t.Error(s) })
	if err != nil || im.Len() != 1 {
		t.Errorf("import after the prune: %v, %d records", err, im.Len())
	}
}

// A registry over TLS with basic auth is reached with the transport
// options every registry command uses: the CA file and the docker
// keychain's credentials.
func TestRegistryTLSAuth(t *testing.T) {
	ctx := context.Background()
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, User: "ci", Password: "s3cret"})
	st := openStore(t)
	recs := makeRecords(t, st, "one")
	ref := reg.Host() + "/ci/cache:tls"

	noCA, err := NewRegistry(ref, &registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Export(ctx, st, noCA, recs, nil); err == nil || !strings.Contains(err.Error(), reg.Host()) {
		t.Errorf("export without the CA: %v, want an error naming the registry", err)
	}
	opts := &registry.Options{Config: registry.Config{CAFiles: []string{reg.CAFile}}}
	dst, err := NewRegistry(ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Export(ctx, st, dst, recs, nil); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("export without credentials: %v, want unauthorized", err)
	}
	if err := registry.SaveLogin(filepath.Join(cfgDir, "config.json"), reg.Host(), "ci", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if s, err := Export(ctx, st, dst, recs, nil); err != nil || s.Blobs != 2 {
		t.Fatalf("export: %+v %v", s, err)
	}
	im, err := Open(ctx, openStore(t).Content(), []Target{dst}, func(s string) { t.Error(s) })
	if err != nil || im.Len() != 1 {
		t.Fatalf("import: %v, %d records", err, im.Len())
	}
	if err := im.FetchBlob(ctx, recs[0].Layer.Digest); err != nil {
		t.Error(err)
	}
}
