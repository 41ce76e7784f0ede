package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/remotecache"
)

// ciDockerfile has a stage the result does not contain (its layer is
// exported with mode=max, and a fresh runner must never download it), a
// RUN before the context copy and one after it.
const ciDockerfile = `FROM base/busybox:1 AS tools
RUN echo tool > /tool && echo build-only > /junk

FROM base/busybox:1
RUN echo one > /one
COPY --from=tools /tool /tool
COPY . /src
RUN cat /src/app.txt > /out
`

// runnerB is a second, empty root with runner A's base image, brought
// through a docker archive: its layers are then kept uncompressed, so its
// manifest is not A's, but its ID is, and cache keys start from the ID.
func (h *harness) runnerB(t *testing.T) *harness {
	t.Helper()
	tar := filepath.Join(t.TempDir(), "base.tar")
	h.mustRun("save", "-o", tar, "base/busybox:1")
	b := &harness{t: t, root: t.TempDir()}
	b.mustRun("load", "-i", tar)
	if a, bm := h.manifestDigest("base/busybox:1"), b.manifestDigest("base/busybox:1"); a == bm {
		t.Fatalf("runner B's base has runner A's manifest %s: the test no longer shows keys independent of it", a)
	}
	return b
}

// manifestDigest is the manifest digest of the image ref.
func (h *harness) manifestDigest(ref string) string {
	h.t.Helper()
	var out []struct {
		Digest string `json:"Digest"`
	}
	if err := json.Unmarshal([]byte(h.mustRun("inspect", ref)), &out); err != nil || len(out) != 1 {
		h.t.Fatalf("inspect %s: %v", ref, err)
	}
	return out[0].Digest
}

// plainBuild builds with plain progress and returns the progress text.
func (h *harness) plainBuild(dir, tag string, extra ...string) string {
	h.t.Helper()
	args := append([]string{"build", "--progress", "plain", "-t", tag}, extra...)
	out, errOut, code := h.run(append(args, dir)...)
	if code != 0 {
		h.t.Fatalf("build: exit %d\n%s\n%s", code, out, errOut)
	}
	return errOut
}

// ranSteps returns the RUN steps the plain progress shows as run (DONE),
// not CACHED.
func ranSteps(t *testing.T, progress string) []string {
	t.Helper()
	names := map[string]string{}
	var ran []string
	for _, line := range strings.Split(progress, "\n") {
		id, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(id, "#") {
			continue
		}
		if strings.HasPrefix(rest, "[") {
			names[id] = rest
		}
		if strings.HasPrefix(rest, "DONE") && strings.Contains(names[id], "] RUN ") {
			ran = append(ran, names[id])
		}
	}
	return ran
}

func (h *harness) imageID(tag string) string {
	h.t.Helper()
	return h.inspect(tag).ID
}

// TestCICacheLocal is the CI scenario of issue 10 with a cache directory:
// runner A builds and exports mode=max; runner B, a fresh root with the
// base image, builds the same with --cache-from, runs no RUN step,
// downloads only its result's layers and makes the same image; then one
// context file changes and B reruns only what follows the copy.
func TestCICacheLocal(t *testing.T) {
	a := newHarness(t)
	cacheDir := filepath.Join(t.TempDir(), "ci-cache")
	dir := a.context(ciDockerfile, map[string]string{"app.txt": "v1"})

	progA := a.plainBuild(dir, "app:1", "--cache-to", "type=local,dest="+cacheDir+",mode=max")
	if ran := ranSteps(t, progA); len(ran) != 3 {
		t.Fatalf("runner A ran %q, want the 3 RUN steps\n%s", ran, progA)
	}
	if !strings.Contains(progA, "exporting cache to "+cacheDir+" (mode=max)") {
		t.Fatalf("no export in the progress:\n%s", progA)
	}
	idA := a.imageID("app:1")

	// An unchanged cache exports again for the price of checks: nothing
	// uploaded.
	before := cacheManifest(t, cacheDir)
	progA2 := a.plainBuild(dir, "app:1", "--cache-to", "type=local,dest="+cacheDir+",mode=max")
	if !strings.Contains(progA2, "5 records, uploaded 0 blobs") || cacheManifest(t, cacheDir) != before {
		t.Errorf("an unchanged export uploaded something:\n%s", progA2)
	}

	// The tools stage's layer is in the cache but not in the result.
	toolLayer := cachedLayerOf(t, cacheDir, "RUN echo tool > /tool && echo build-only > /junk")

	b := a.runnerB(t)
	cache2 := filepath.Join(t.TempDir(), "ci-cache-2")
	progB := b.plainBuild(dir, "app:1", "--cache-from", "type=local,src="+cacheDir, "--cache-to", "type=local,dest="+cache2+",mode=max")
	if ran := ranSteps(t, progB); len(ran) != 0 {
		t.Fatalf("runner B ran %q, want every step from the cache\n%s", ran, progB)
	}
	if n := strings.Count(progB, "CACHED"); n != 5 {
		t.Errorf("runner B: %d CACHED steps, want 5\n%s", n, progB)
	}
	if idB := b.imageID("app:1"); idB != idA {
		t.Fatalf("runner B's image %s, runner A's %s", idB, idA)
	}
	if b.hasBlob(toolLayer) {
		t.Errorf("runner B downloaded the tools stage's layer %s, which its result does not contain", toolLayer)
	}
	// B's export is complete though B hit every step and never stored the
	// tools layer: the same records give the very same cache.
	if m1, m2 := cacheManifest(t, cacheDir), cacheManifest(t, cache2); m1 != m2 {
		t.Errorf("runner B exported cache %s, runner A %s", m2, m1)
	}
	if _, err := os.Stat(blobPath(cache2, toolLayer)); err != nil {
		t.Errorf("runner B's export lacks the tools layer: %v", err)
	}
	if !strings.Contains(progB, "fetched 4 layers") {
		t.Errorf("runner B should fetch the result's 4 layers:\n%s", progB)
	}
	if got := b.runImage("app:1", "cat", "/out", "/tool"); got != "v1tool\n" {
		t.Errorf("image from the cache runs to %q", got)
	}
	// The imported records whose layers B now has are kept in its own
	// cache; the tools stage's, never fetched, is not.
	if got := steps(b.cacheLs()); len(got) != 4 || slices.Contains(got, "RUN echo tool > /tool && echo build-only > /junk") {
		t.Errorf("runner B's cache after the import: %q", got)
	}

	// One context file changes: the copy and the RUN after it run again,
	// on the layers fetched before.
	if err := os.WriteFile(filepath.Join(dir, "app.txt"), []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	progB2 := b.plainBuild(dir, "app:2", "--cache-from", "type=local,src="+cacheDir)
	if ran := ranSteps(t, progB2); len(ran) != 1 || !strings.Contains(ran[0], "RUN cat /src/app.txt") {
		t.Fatalf("after the change runner B ran %q, want only the RUN after the copy\n%s", ran, progB2)
	}
	if got := b.runImage("app:2", "cat", "/out"); got != "v2" {
		t.Errorf("rebuilt image's /out is %q", got)
	}

}

// cacheManifest is the digest of the cache manifest in the layout dir.
func cacheManifest(t *testing.T, dir string) digest.Digest {
	t.Helper()
	var idx ocispec.Index
	readJSON(t, filepath.Join(dir, "index.json"), &idx)
	if len(idx.Manifests) != 1 {
		t.Fatalf("cache index lists %d manifests", len(idx.Manifests))
	}
	return idx.Manifests[0].Digest
}

// cachedLayerOf returns the layer the cache in dir records for the step
// with text.
func cachedLayerOf(t *testing.T, dir, text string) digest.Digest {
	t.Helper()
	var idx ocispec.Index
	readJSON(t, filepath.Join(dir, "index.json"), &idx)
	if len(idx.Manifests) != 1 {
		t.Fatalf("cache index lists %d manifests", len(idx.Manifests))
	}
	var m ocispec.Manifest
	readJSON(t, blobPath(dir, idx.Manifests[0].Digest), &m)
	var cfg struct {
		Records []struct {
			Layer ocispec.Descriptor    `json:"layer"`
			Step  struct{ Text string } `json:"step"`
		} `json:"records"`
	}
	readJSON(t, blobPath(dir, m.Config.Digest), &cfg)
	for _, r := range cfg.Records {
		if r.Step.Text == text {
			return r.Layer.Digest
		}
	}
	t.Fatalf("no cache record of %q", text)
	return ""
}

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestCICacheRegistry is the CI scenario of issue 10 through a registry:
// the base image is in the registry; runner A, a fresh root, builds, pushes
// and exports its cache (mode=max) to the app's repository; runner B,
// another fresh root, builds the same with --cache-from REF (buildx's bare
// form), runs no RUN step, downloads no layer its result lacks and makes
// the image A pushed; a changed context file reruns only what follows it.
func TestCICacheRegistry(t *testing.T) {
	requiresRegistryCLI(t)
	registryEnv(t)
	seed := newHarness(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	host := reg.Host()
	baseRef := host + "/ci/base:1"
	seed.mustRun("tag", "base/busybox:1", baseRef)
	seed.mustRun("push", baseRef)

	dir := seed.context(strings.ReplaceAll(ciDockerfile, "base/busybox:1", baseRef), map[string]string{"app.txt": "v1"})
	appRef, cacheRef := host+"/ci/app:1", host+"/ci/app:buildcache"

	a := emptyRoot(t)
	otherCache := host + "/ci/cache:app"
	progA := a.plainBuild(dir, appRef, "--push", "--cache-to", "type=registry,ref="+cacheRef+",mode=max",
		"--cache-to", "type=registry,ref="+otherCache+",mode=max")
	if ran := ranSteps(t, progA); len(ran) != 3 {
		t.Fatalf("runner A ran %q, want the 3 RUN steps\n%s", ran, progA)
	}
	pushed, m := remoteManifest(t, appRef)
	_ = pushed
	// Every blob went up once: the cache's layers shared with the pushed
	// image were found there, and the cache in another repository mounted
	// them.
	if mounts := reg.Requests().Mounts(); len(mounts) == 0 {
		t.Errorf("the cache in another repository mounted nothing:\n%s", reg.Requests())
	}
	if registryCacheConfig(t, cacheRef) != registryCacheConfig(t, otherCache) {
		t.Error("two exports of the same records differ")
	}
	seen := map[string]int{}
	for _, q := range reg.Requests().BlobUploads() {
		seen[q.Query.Get("digest")]++
	}
	for d, n := range seen {
		if n > 1 {
			t.Errorf("blob %s uploaded %d times", d, n)
		}
	}
	toolLayer := registryCacheLayer(t, cacheRef, "RUN echo tool > /tool && echo build-only > /junk")

	// Exporting the unchanged cache again uploads nothing and leaves the
	// manifest alone.
	mark := len(reg.Requests())
	progA2 := a.plainBuild(dir, appRef, "--cache-to", "type=registry,ref="+cacheRef+",mode=max")
	again := reg.Requests()[mark:]
	if up := again.BlobUploads(); len(up) != 0 || len(again.Match("PUT", "/manifests/")) != 0 {
		t.Errorf("an unchanged export wrote %s\n%s", again, progA2)
	}

	b := emptyRoot(t)
	mark = len(reg.Requests())
	progB := b.plainBuild(dir, appRef, "--cache-from", cacheRef)
	if ran := ranSteps(t, progB); len(ran) != 0 {
		t.Fatalf("runner B ran %q, want every step from the cache\n%s", ran, progB)
	}
	if id := b.inspect(appRef).ID; id != m.Config.Digest.String() {
		t.Fatalf("runner B's image %s, runner A pushed %s", id, m.Config.Digest)
	}
	gets := reg.Requests()[mark:].BlobGets()
	if len(gets.Match("GET", toolLayer.Encoded())) != 0 || b.hasBlob(toolLayer) {
		t.Errorf("runner B downloaded the tools stage's layer %s, which its result lacks:\n%s", toolLayer, gets)
	}
	// From the cache's repository B reads the cache's config and the
	// result's layers, nothing else (the base comes from its own).
	want := map[string]bool{registryCacheConfig(t, cacheRef): true}
	for _, l := range m.Layers {
		want[l.Digest.String()] = true
	}
	fromCache := gets.Match("GET", "^/v2/ci/app/")
	for _, q := range fromCache {
		if d := q.Path[strings.LastIndex(q.Path, "/")+1:]; !want[d] {
			t.Errorf("runner B downloaded %s, neither a layer of its result nor the cache's config", q)
		}
	}
	if len(fromCache) == 0 {
		t.Errorf("runner B downloaded nothing from the cache:\n%s", gets)
	}

	if err := os.WriteFile(filepath.Join(dir, "app.txt"), []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	progB2 := b.plainBuild(dir, host+"/ci/app:2", "--cache-from", cacheRef)
	if ran := ranSteps(t, progB2); len(ran) != 1 || !strings.Contains(ran[0], "RUN cat /src/app.txt") {
		t.Fatalf("after the change runner B ran %q, want only the RUN after the copy\n%s", ran, progB2)
	}
	if got := b.runImage(host+"/ci/app:2", "cat", "/out", "/tool"); got != "v2tool\n" {
		t.Errorf("rebuilt image gives %q", got)
	}
}

// registryCacheConfig is the config digest of the cache at ref.
func registryCacheConfig(t *testing.T, ref string) string {
	t.Helper()
	_, m := remoteManifestRaw(t, ref)
	return m.Config.Digest.String()
}

// registryCacheLayer returns the layer the cache at ref records for the
// step with text.
func registryCacheLayer(t *testing.T, ref, text string) digest.Digest {
	t.Helper()
	r, m := remoteManifestRaw(t, ref)
	if m.Config.MediaType != remotecache.MediaTypeConfig {
		t.Fatalf("cache config of media type %q", m.Config.MediaType)
	}
	l, err := remote.Layer(r.Context().Digest(m.Config.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var cfg remotecache.Config
	if err := json.NewDecoder(rc).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	for _, r := range cfg.Records {
		if r.Step.Text == text {
			return r.Layer.Digest
		}
	}
	t.Fatalf("no cache record of %q", text)
	return ""
}

func remoteManifestRaw(t *testing.T, ref string) (name.Reference, ocispec.Manifest) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatalf("registry lacks %s: %v", ref, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(d.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	return r, m
}

// Bad --cache-to and --cache-from values are usage errors, found before
// anything is built; a cache that is not there is a warning.
func TestCICacheBadFlags(t *testing.T) {
	h := newHarness(t)
	dir := h.context("FROM base/busybox:1\nRUN true\n", map[string]string{})
	var calls []badCall
	for _, c := range []struct{ flag, value, msg string }{
		{"--cache-to", "type=local", "type=local needs dest="},
		{"--cache-to", "type=local,src=/tmp/x", `unknown key "src"`},
		{"--cache-to", "type=registry,ref=127.0.0.1:1/c:1,mode=all", "mode must be min or max"},
		{"--cache-to", "type=s3,ref=x", "type must be registry or local"},
		{"--cache-to", "type=registry", "type=registry needs ref="},
		{"--cache-from", "type=local,dest=/tmp/x", `unknown key "dest"`},
		{"--cache-from", "type=local", "type=local needs src="},
		{"--cache-from", "type=registry,ref=UPPER/case", "cache reference"},
		{"--cache-from", "type=local,src=/tmp/x,mode=max", `unknown key "mode"`},
		{"--cache-to", "type=local,dest", `is not key=value`},
	} {
		calls = append(calls, badCall{args: []string{"build", c.flag, c.value, dir}, usage: true, stderr: c.msg})
	}
	h.checkBad(calls)

	// The first CI run: nothing to import yet, and the build goes on.
	_, errOut, code := h.run("build", "--progress", "plain", "--cache-from", "type=local,src="+filepath.Join(t.TempDir(), "none"), dir)
	if code != 0 || !strings.Contains(errOut, "not imported") {
		t.Errorf("build with a missing cache: exit %d\n%s", code, errOut)
	}
}
