package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/builder-dev/builder/internal/testutil"
)

// The acceptance tests of issue 10 against Debian's docker-registry,
// driving the CLI as users type it: push, pull, FROM, login/logout, TLS
// with a CA file, a corrupted blob, a registry that vanishes mid-push or
// mid-pull. The registry's access log is the witness of what went over the
// wire.

// requiresRegistryCLI skips while the registry commands are not built in
// (the branch that adds them lands separately).
func requiresRegistryCLI(t *testing.T) {
	t.Helper()
	h := &harness{t: t, root: t.TempDir()}
	// Cobra answers --help of an unknown command with the root's help.
	if out, _, code := h.run("pull", "--help"); code != 0 || !strings.Contains(out, "builder pull") {
		t.Skip("builder pull not implemented yet")
	}
}

// registryEnv points the docker config (credentials) at a fresh temp dir
// for the builder processes the test starts, never the host's ~/.docker.
func registryEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("HOME", t.TempDir())
	return dir
}

// emptyRoot is a harness on a store with nothing in it.
func emptyRoot(t *testing.T) *harness {
	t.Helper()
	return &harness{t: t, root: t.TempDir()}
}

// fail runs a command that must fail and returns its stderr; a panic or
// an empty message fails the test.
func (h *harness) fail(args ...string) string {
	h.t.Helper()
	out, errOut, code := h.runBounded(args...)
	switch {
	case code == 0:
		h.t.Fatalf("builder %s succeeded:\n%s", strings.Join(args, " "), out)
	case strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine "):
		h.t.Fatalf("builder %s panicked:\n%s", strings.Join(args, " "), errOut)
	case strings.TrimSpace(errOut) == "":
		h.t.Fatalf("builder %s: exit %d and nothing on stderr", strings.Join(args, " "), code)
	}
	return errOut
}

// wantIn fails the test unless msg contains each of words
// (case-insensitive).
func wantIn(t *testing.T, what, msg string, words ...string) {
	t.Helper()
	t.Logf("%s: %s", what, strings.TrimSpace(msg))
	for _, w := range words {
		if !strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
			t.Errorf("%s does not say %q:\n%s", what, w, msg)
		}
	}
}

// imagesRow is `images`' row for ref without its CREATED and SIZE columns:
// repository, tag, ID.
func (h *harness) imagesRow(ref string) string {
	h.t.Helper()
	repo, tag := splitName(ref)
	for _, l := range strings.Split(h.mustRun("images"), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == repo && f[1] == tag {
			return strings.Join(f[:3], " ")
		}
	}
	h.t.Fatalf("images does not list %s:\n%s", ref, h.mustRun("images"))
	return ""
}

// imagesRows is `images` without its CREATED and SIZE columns.
func (h *harness) imagesRows() string {
	h.t.Helper()
	var rows []string
	for _, l := range strings.Split(h.mustRun("images"), "\n") {
		if f := strings.Fields(l); len(f) >= 3 {
			rows = append(rows, strings.Join(f[:3], " "))
		}
	}
	return strings.Join(rows, "\n")
}

// platformInspect is what `inspect` says of an image's identity: its ID
// (config digest), manifest digest and platform.
type platformInspect struct {
	ID           string `json:"Id"`
	Digest       string
	Architecture string
	Os           string
}

// platformOf inspects ref in h's store.
func (h *harness) platformOf(ref string) platformInspect {
	h.t.Helper()
	var out []platformInspect
	if err := json.Unmarshal([]byte(h.mustRun("inspect", ref)), &out); err != nil || len(out) != 1 {
		h.t.Fatalf("inspect %s: %v", ref, err)
	}
	return out[0]
}

// remoteManifest is the manifest the registry holds for ref, read with
// ggcr (plain HTTP: the harness's registry on 127.0.0.1).
func remoteManifest(t *testing.T, ref string) (v1.Hash, *v1.Manifest) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("registry lacks %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return d, m
}

// readMetadata reads a --metadata-file (buildx's JSON).
func readMetadata(t *testing.T, p string) map[string]any {
	t.Helper()
	var md map[string]any
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &md); err != nil {
		t.Fatalf("metadata file: %v\n%s", err, b)
	}
	return md
}

// blobsOf is the config and layer digests of m.
func blobsOf(m *v1.Manifest) []string {
	out := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// TestRegistryPlain: one plain-HTTP registry on 127.0.0.1 (allowed
// without --insecure-registry), each subtest in its own repositories.
func TestRegistryPlain(t *testing.T) {
	requiresRegistryCLI(t)
	registryEnv(t)
	h := newHarness(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	host := reg.Host()
	app := h.context("FROM base/busybox:1\nRUN echo hello > /hello\nCMD [\"cat\", \"/hello\"]\n", map[string]string{})
	appRef := host + "/plain/app:1"
	h.build(app, appRef)

	var pushed v1.Hash
	t.Run("push", func(t *testing.T) {
		h := &harness{t: t, root: h.root}
		out := h.mustRun("push", appRef)
		var m *v1.Manifest
		pushed, m = remoteManifest(t, appRef)
		if !strings.Contains(out, pushed.String()) {
			t.Errorf("push does not print the pushed digest %s:\n%s", pushed, out)
		}
		uploads := reg.Requests().BlobUploads()
		if len(uploads) != len(blobsOf(m)) {
			t.Errorf("push uploaded %d blobs, want %d (config and layers):\n%s", len(uploads), len(blobsOf(m)), uploads)
		}
		if id := h.platformOf(appRef).ID; id != m.Config.Digest.String() {
			t.Errorf("pushed config %s, local image ID %s", m.Config.Digest, id)
		}
	})

	t.Run("pull into an empty root", func(t *testing.T) {
		e := emptyRoot(t)
		mark := len(reg.Requests())
		e.mustRun("pull", appRef)
		if got, want := e.imagesRow(appRef), h.imagesRow(appRef); got != want {
			t.Errorf("pulled image listed as %q, pushed one as %q", got, want)
		}
		if got, want := e.platformOf(appRef).ID, h.platformOf(appRef).ID; got != want {
			t.Errorf("pulled image ID %s, pushed %s", got, want)
		}
		if pushed.Hex != "" && e.platformOf(appRef).Digest != pushed.String() {
			t.Errorf("pulled manifest %s, registry has %s", e.platformOf(appRef).Digest, pushed)
		}
		if out := e.runImage(appRef); out != "hello\n" {
			t.Errorf("pulled image runs with %q", out)
		}
		// Each blob came once, whole; pulled again, none comes.
		_, m := remoteManifest(t, appRef)
		gets := reg.Requests()[mark:].BlobGets()
		var want int64 = m.Config.Size
		for _, l := range m.Layers {
			want += l.Size
		}
		if len(gets) != len(blobsOf(m)) || gets.Bytes() != want {
			t.Errorf("pull downloaded %d blobs, %d bytes; want %d blobs, %d bytes:\n%s", len(gets), gets.Bytes(), len(blobsOf(m)), want, gets)
		}
		mark = len(reg.Requests())
		e.mustRun("pull", appRef)
		if gets := reg.Requests()[mark:].BlobGets(); len(gets) != 0 {
			t.Errorf("pulling an image the store has downloaded blobs:\n%s", gets)
		}
	})

	t.Run("concurrent pulls and pushes", func(t *testing.T) {
		// Three pulls into one empty root, three pushes of one image to
		// one new repository, at once: all succeed, nothing is damaged.
		e := emptyRoot(t)
		conc := host + "/plain/conc:1"
		h.mustRun("tag", appRef, conc)
		var cmds [][]string
		for range 3 {
			cmds = append(cmds, []string{"--root", e.root, "pull", appRef}, []string{"--root", h.root, "push", conc})
		}
		errs := make(chan error, len(cmds))
		for _, args := range cmds {
			go func() {
				out, err := exec.Command(builderBin, args...).CombinedOutput()
				if err != nil {
					err = fmt.Errorf("builder %v: %w\n%s", args, err, out)
				}
				errs <- err
			}()
		}
		for range cmds {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		e.mustRun("store", "verify")
		if got, want := e.platformOf(appRef).ID, h.platformOf(appRef).ID; got != want {
			t.Errorf("pulled %s, pushed %s", got, want)
		}
		if d, _ := remoteManifest(t, conc); d != pushed {
			t.Errorf("%s is %s, want %s", conc, d, pushed)
		}
	})

	t.Run("pull by digest", func(t *testing.T) {
		e := emptyRoot(t)
		ref := host + "/plain/app@" + pushed.String()
		e.mustRun("pull", ref)
		if got := e.platformOf(ref); got.Digest != pushed.String() || got.ID != h.platformOf(appRef).ID {
			t.Errorf("pulled %s as %+v", ref, got)
		}
	})

	t.Run("errors name the reference and the registry", func(t *testing.T) {
		e := emptyRoot(t)
		msg := e.fail("pull", host+"/plain/missing:1")
		wantIn(t, "pull of a missing image", msg, host, "plain/missing")
		if !regexp.MustCompile(`(?i)not found|unknown|404`).MatchString(msg) {
			t.Errorf("pull of a missing image does not say it is not found:\n%s", msg)
		}
		dead := testutil.FreePort(t)
		msg = e.fail("pull", dead+"/plain/app:1")
		wantIn(t, "pull from a registry that is not there", msg, dead, "plain/app")
		dir := e.context("FROM "+host+"/plain/missing:1\n", map[string]string{})
		msg = e.fail("build", dir)
		wantIn(t, "FROM a missing image", msg, host, "plain/missing")
	})

	t.Run("docker.io shorthand through a mirror", func(t *testing.T) {
		// The plain registry stands in for Docker Hub as its mirror:
		// `busybox` is docker.io/library/busybox:latest, looked up at
		// the mirror as library/busybox:latest.
		h := &harness{t: t, root: h.root}
		h.mustRun("tag", appRef, host+"/library/busybox:latest")
		h.mustRun("push", host+"/library/busybox:latest")
		cfg := testutil.WriteFile(t, t.TempDir(), "registries.json",
			[]byte(`{"mirrors": {"docker.io": ["`+host+`"]}}`))
		e := emptyRoot(t)
		e.mustRun("--registry-config", cfg, "pull", "busybox")
		if got := e.platformOf("busybox").ID; got != h.platformOf(appRef).ID {
			t.Errorf("busybox from the mirror is %s, want %s", got, h.platformOf(appRef).ID)
		}
		if got := e.platformOf("docker.io/library/busybox:latest").ID; got != h.platformOf(appRef).ID {
			t.Errorf("docker.io/library/busybox:latest is %s", got)
		}
		f := emptyRoot(t)
		dir := f.context("FROM busybox\nRUN cat /hello > /seen\n", map[string]string{})
		f.mustRun("--registry-config", cfg, "build", "-t", "onhub:1", dir)
		if out := f.mustRun("run", "--rm", "onhub:1", "cat", "/seen"); out != "hello\n" {
			t.Errorf("FROM busybox through the mirror: %q", out)
		}
	})

	t.Run("second push uploads no blob", func(t *testing.T) {
		h := &harness{t: t, root: h.root}
		mark := len(reg.Requests())
		h.mustRun("push", appRef)
		h.mustRun("tag", appRef, host+"/plain/app:2")
		meta := filepath.Join(t.TempDir(), "push.json")
		h.mustRun("push", "--metadata-file", meta, host+"/plain/app:2")
		if md := readMetadata(t, meta); md["containerimage.digest"] != pushed.String() {
			t.Errorf("push --metadata-file: %v, want containerimage.digest %s", md, pushed)
		}
		if again := reg.Requests()[mark:]; len(again.BlobUploads()) != 0 || len(again.Match("POST", `/blobs/uploads/$`)) != 0 {
			t.Errorf("pushing what the registry has started uploads:\n%s", again)
		}
		if d, _ := remoteManifest(t, host+"/plain/app:2"); d != pushed {
			t.Errorf("app:2 is %s, app:1 %s", d, pushed)
		}
	})

	t.Run("cross-repository mount", func(t *testing.T) {
		h := &harness{t: t, root: h.root}
		other := host + "/plain/other:1"
		h.mustRun("tag", appRef, other)
		mark := len(reg.Requests())
		h.mustRun("push", other)
		_, m := remoteManifest(t, other)
		// Every blob, config and layers, is mounted from plain/app;
		// none is uploaded.
		reqs := reg.Requests()[mark:]
		mounted := map[string]bool{}
		for _, q := range reqs.Mounts() {
			mounted[q.Query.Get("mount")] = true
		}
		for _, b := range blobsOf(m) {
			if !mounted[b] {
				t.Errorf("blob %s was not mounted from plain/app:\n%s", b, reqs)
			}
		}
		if up := reqs.BlobUploads(); len(up) != 0 {
			t.Errorf("blobs uploaded to a repository of the registry that has them:\n%s", up)
		}
		if got := reg.RepoLayers("plain/other"); len(got) != len(blobsOf(m)) {
			t.Errorf("plain/other links %d blobs, want %d", len(got), len(blobsOf(m)))
		}
	})

	t.Run("FROM a pushed image in a fresh root", func(t *testing.T) {
		e := emptyRoot(t)
		dir := e.context("FROM "+appRef+"\nRUN cp /hello /copy\nCMD [\"cat\", \"/copy\"]\n", map[string]string{})
		mark := len(reg.Requests())
		e.build(dir, "derived:1")
		if out := e.runImage("derived:1"); out != "hello\n" {
			t.Errorf("derived image runs with %q", out)
		}
		if len(reg.Requests()[mark:].BlobGets()) == 0 {
			t.Error("the base was not pulled from the registry")
		}

		// A cached build on the pulled base asks the registry nothing.
		mark = len(reg.Requests())
		e.build(dir, "derived:1")
		if reqs := reg.Requests()[mark:]; len(reqs) != 0 {
			t.Errorf("a cached build on a pulled base went to the registry:\n%s", reqs)
		}

		// --pull checks the manifest again and downloads no blob.
		e.build(dir, "derived:1", "--pull")
		reqs := reg.Requests()[mark:]
		if len(reqs.Match("", `/manifests/`)) == 0 || len(reqs.BlobGets()) != 0 {
			t.Errorf("build --pull: want the manifest and no blob:\n%s", reqs)
		}
	})

	t.Run("a tag moved in the registry", func(t *testing.T) {
		// FROM uses the stored base until --pull; --pull and pull fetch
		// the new one, downloading only the layer that changed.
		h := &harness{t: t, root: h.root}
		moving := host + "/plain/moving:1"
		h.mustRun("tag", appRef, moving)
		h.mustRun("push", moving)
		e := emptyRoot(t)
		dir := e.context("FROM "+moving+"\nRUN cat /hello > /seen\n", map[string]string{})
		e.build(dir, "onmoving:1")

		h.build(h.context("FROM base/busybox:1\nRUN echo moved > /hello\n", map[string]string{}), moving)
		h.mustRun("push", moving)
		e.build(dir, "onmoving:1")
		if out := e.mustRun("run", "--rm", "onmoving:1", "cat", "/seen"); out != "hello\n" {
			t.Errorf("without --pull the build used %q, want the stored base's hello", out)
		}
		mark := len(reg.Requests())
		e.build(dir, "onmoving:1", "--pull")
		if out := e.mustRun("run", "--rm", "onmoving:1", "cat", "/seen"); out != "moved\n" {
			t.Errorf("build --pull used %q, want the moved tag's", out)
		}
		_, m := remoteManifest(t, moving)
		newLayer := m.Layers[len(m.Layers)-1].Digest.String()
		for _, q := range reg.Requests()[mark:].BlobGets() {
			if !strings.HasSuffix(q.Path, newLayer) && !strings.HasSuffix(q.Path, m.Config.Digest.String()) {
				t.Errorf("build --pull downloaded %s, which the store had", q.Path)
			}
		}
		if got, want := e.platformOf(moving).ID, h.platformOf(moving).ID; got != want {
			t.Errorf("after build --pull the store's %s is %s, want %s", moving, got, want)
		}
	})

	t.Run("build --push and outputs", func(t *testing.T) {
		h := &harness{t: t, root: h.root}
		meta := filepath.Join(t.TempDir(), "meta.json")
		ref := host + "/plain/built:1"
		h.build(app, ref, "--push", "--metadata-file", meta)
		d, _ := remoteManifest(t, ref)
		md := readMetadata(t, meta)
		if name, _ := md["image.name"].(string); md["containerimage.digest"] != d.String() || !strings.Contains(name, ref) {
			t.Errorf("metadata file %v, want containerimage.digest %s and image.name %s", md, d, ref)
		}

		for _, o := range []string{"type=registry,name=" + host + "/plain/out:1", "type=image,name=" + host + "/plain/out:2,push=true"} {
			h.mustRun("build", "-o", o, app)
			name := strings.Split(strings.Split(o, "name=")[1], ",")[0]
			if got, _ := remoteManifest(t, name); got != d {
				t.Errorf("-o %s pushed %s, want %s", o, got, d)
			}
		}
	})

	t.Run("layers of every compression", func(t *testing.T) {
		// A registry image whose layers are an uncompressed tar and a
		// zstd one besides gzip: pulled, run, and pushed elsewhere as a
		// valid image.
		ref := host + "/plain/forms:1"
		br, _ := name.ParseReference(appRef, name.Insecure)
		base, err := remote.Image(br)
		if err != nil {
			t.Fatal(err)
		}
		plainTar := testutil.Tar(t, testutil.TarEntry{Name: "plain", Body: "plain\n"})
		zstdTar := testutil.Tar(t, testutil.TarEntry{Name: "zstd", Body: "zstd\n"})
		zl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(zstdTar)), nil },
			tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(mutate.MediaType(base, types.OCIManifestSchema1),
			static.NewLayer(plainTar, types.OCIUncompressedLayer), zl)
		if err != nil {
			t.Fatal(err)
		}
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		r, _ := name.ParseReference(ref, name.Insecure)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		want, _ := img.Digest()

		e := emptyRoot(t)
		e.mustRun("pull", ref)
		if got := e.platformOf(ref).Digest; got != want.String() {
			t.Errorf("pulled manifest %s, registry's %s", got, want)
		}
		if out := e.mustRun("run", "--rm", ref, "cat", "/hello", "/plain", "/zstd"); out != "hello\nplain\nzstd\n" {
			t.Errorf("image of mixed layers runs with %q", out)
		}
		e.mustRun("store", "verify")
		// To another registry, so that every layer is uploaded from the
		// store (within one registry they would be mounted).
		other := testutil.StartRegistry(t, testutil.RegistryOptions{})
		again := other.Host() + "/forms:1"
		e.mustRun("tag", ref, again)
		e.mustRun("push", again)
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if n, want := len(other.Requests().BlobUploads()), len(blobsOf(m)); n != want {
			t.Errorf("pushed %d blobs to the other registry, want %d", n, want)
		}
		// Pulled back (digests and diff_ids checked), it is the same
		// image.
		f := emptyRoot(t)
		f.mustRun("pull", again)
		if got, want := f.platformOf(again).ID, e.platformOf(ref).ID; got != want {
			t.Errorf("pushed back as %s, was %s", got, want)
		}
		if out := f.mustRun("run", "--rm", again, "cat", "/plain", "/zstd"); out != "plain\nzstd\n" {
			t.Errorf("image pushed back runs with %q", out)
		}
	})

	t.Run("index with two platforms", func(t *testing.T) {
		ref := host + "/plain/multi:1"
		hostImg, otherImg, otherPlat := pushIndex(t, appRef, ref)
		hostID, _ := hostImg.ConfigName()
		otherID, _ := otherImg.ConfigName()

		e := emptyRoot(t)
		e.mustRun("pull", ref)
		if got := e.platformOf(ref); got.ID != hostID.String() || got.Architecture != runtime.GOARCH {
			t.Errorf("pull picked %+v, want the host's image %s", got, hostID)
		}
		o := emptyRoot(t)
		o.mustRun("pull", "--platform", otherPlat.OS+"/"+otherPlat.Architecture, ref)
		if got := o.platformOf(ref); got.ID != otherID.String() || got.Architecture != otherPlat.Architecture {
			t.Errorf("pull --platform %s picked %+v, want %s", otherPlat.Architecture, got, otherID)
		}
		// A platform the index lacks, or a single-platform image of
		// another platform, is refused (as docker does), naming both.
		before := o.storeListing()
		msg := o.fail("pull", "--platform", "linux/s390x", ref)
		wantIn(t, "pull --platform of a platform the index lacks", msg, "s390x", otherPlat.Architecture, runtime.GOARCH)
		msg = o.fail("pull", "--platform", otherPlat.OS+"/"+otherPlat.Architecture, appRef)
		wantIn(t, "pull --platform of a single-platform image", msg, otherPlat.Architecture, runtime.GOARCH, "plain/app")
		if after := o.storeListing(); after != before {
			t.Errorf("a refused pull changed the store:\n%s", listingDiff(before, after))
		}

		dir := e.context("FROM "+ref+"\nRUN cat /platform > /seen\n", map[string]string{})
		f := emptyRoot(t)
		f.build(dir, "fromindex:1")
		if out := f.mustRun("run", "--rm", "fromindex:1", "cat", "/seen"); out != "host\n" {
			t.Errorf("FROM the index picked the image saying %q, want host", out)
		}
		// FROM --platform of another platform waits for the frontend,
		// which accepts only the build platform (no cross-builds yet).
	})
}

// pushIndex pushes to ref an index of two images made from base (a
// pushed image): the host's platform and another one, each with a file
// /platform saying which it is.
func pushIndex(t *testing.T, base, ref string) (hostImg, otherImg v1.Image, other v1.Platform) {
	t.Helper()
	br, _ := name.ParseReference(base, name.Insecure)
	baseImg, err := remote.Image(br)
	if err != nil {
		t.Fatal(err)
	}
	other = v1.Platform{OS: "linux", Architecture: "arm64"}
	if runtime.GOARCH == "arm64" {
		other.Architecture = "amd64"
	}
	variant := func(arch, says string) v1.Image {
		// A gzip layer whose diff_id is its tar's digest (static.NewLayer
		// would give the gzip's digest as the diff_id, which a pull
		// rightly refuses).
		tarBytes := testutil.Tar(t, testutil.TarEntry{Name: "platform", Body: says + "\n"})
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil })
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(baseImg, layer)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.Architecture, cf.OS = arch, "linux"
		img, err = mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	hostImg, otherImg = variant(runtime.GOARCH, "host"), variant(other.Architecture, "other")
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: otherImg, Descriptor: v1.Descriptor{Platform: &other}},
		mutate.IndexAddendum{Add: hostImg, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}})
	r, _ := name.ParseReference(ref, name.Insecure)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	return hostImg, otherImg, other
}

// TestRegistryTLSAuth: a registry with basic auth over TLS with a
// certificate of the test's CA, trusted through --registry-ca.
func TestRegistryTLSAuth(t *testing.T) {
	requiresRegistryCLI(t)
	config := registryEnv(t)
	h := newHarness(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, User: "alice", Password: "s3cret"})
	host := reg.Host()
	ref := host + "/secure/app:1"
	h.build(h.context("FROM base/busybox:1\nRUN echo secret > /s\n", map[string]string{}), ref)
	ca := []string{"--registry-ca", reg.CAFile}

	msg := h.fail(append(ca, "push", ref)...)
	wantIn(t, "push without login", msg, host, "secure/app")
	if !strings.Contains(msg, "401") && !strings.Contains(strings.ToLower(msg), "unauthorized") {
		t.Errorf("push without login does not say 401/unauthorized:\n%s", msg)
	}

	_, errOut, code := h.runIn(t.TempDir(), []byte("wrong\n"), append(ca, "login", "-u", "alice", "--password-stdin", host)...)
	if code == 0 {
		t.Error("login with a wrong password succeeded")
	} else {
		wantIn(t, "login with a wrong password", errOut, host)
	}
	if _, errOut, code := h.runIn(t.TempDir(), []byte("s3cret\n"), append(ca, "login", "-u", "alice", "--password-stdin", host)...); code != 0 {
		t.Fatalf("login: exit %d\n%s", code, errOut)
	}
	cfg, err := os.ReadFile(filepath.Join(config, "config.json"))
	if err != nil || !strings.Contains(string(cfg), host) {
		t.Fatalf("login wrote no credentials for %s to $DOCKER_CONFIG: %v\n%s", host, err, cfg)
	}

	msg = h.fail("push", ref)
	wantIn(t, "push without the CA", msg, host, "certificate")
	// An insecure registry's certificate is not checked; a config file's
	// CA (relative to the file) is trusted as --registry-ca's.
	h.mustRun("--insecure-registry", host, "push", ref)
	confDir := t.TempDir()
	caPEM, err := os.ReadFile(reg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, confDir, "ca.pem", caPEM)
	conf := testutil.WriteFile(t, confDir, "registries.json", []byte(`{"ca-files": ["ca.pem"]}`))
	h.mustRun("--registry-config", conf, "push", ref)

	// As a user types it: the CA file relative to where they stand.
	if _, errOut, code := h.runIn(filepath.Dir(reg.CAFile), nil, "--registry-ca", filepath.Base(reg.CAFile), "push", ref); code != 0 {
		t.Fatalf("push --registry-ca %s: exit %d\n%s", filepath.Base(reg.CAFile), code, errOut)
	}
	e := emptyRoot(t)
	e.mustRun(append(ca, "pull", ref)...)
	if got, want := e.platformOf(ref).ID, h.platformOf(ref).ID; got != want {
		t.Errorf("pulled image ID %s, pushed %s", got, want)
	}
	if n := len(reg.Requests().BlobUploads()); n == 0 {
		t.Error("the registry saw no upload")
	}

	h.mustRun("logout", host)
	if cfg, _ := os.ReadFile(filepath.Join(config, "config.json")); strings.Contains(string(cfg), `"auth"`) {
		t.Errorf("logout left credentials:\n%s", cfg)
	}
	e = emptyRoot(t)
	msg = e.fail(append(ca, "pull", ref)...)
	wantIn(t, "pull after logout", msg, host, "secure/app")
	if !strings.Contains(msg, "401") && !strings.Contains(strings.ToLower(msg), "unauthorized") {
		t.Errorf("pull after logout does not say 401/unauthorized:\n%s", msg)
	}
	if rows := e.imagesRows(); strings.Contains(rows, "secure/app") {
		t.Errorf("failed pull left an image:\n%s", rows)
	}

	// Credentials from a credential helper named in config.json
	// (credHelpers), as docker's: docker-credential-NAME get.
	bin := t.TempDir()
	helper := `#!/bin/sh
[ "$1" = get ] || exit 1
read host
printf '{"ServerURL":"%s","Username":"alice","Secret":"s3cret"}\n' "$host"
`
	testutil.WriteFile(t, bin, "docker-credential-buildertest", []byte(helper))
	if err := os.Chmod(filepath.Join(bin, "docker-credential-buildertest"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	testutil.WriteFile(t, config, "config.json", []byte(`{"credHelpers": {"`+host+`": "buildertest"}}`))
	e.mustRun(append(ca, "pull", ref)...)
	if got, want := e.platformOf(ref).ID, h.platformOf(ref).ID; got != want {
		t.Errorf("pulled through the credential helper %s, pushed %s", got, want)
	}
}

// TestRegistryCorruptBlob: a registry serving a layer whose bytes do not
// match its digest fails the pull with an error naming the blob, and the
// store gets nothing.
func TestRegistryCorruptBlob(t *testing.T) {
	requiresRegistryCLI(t)
	registryEnv(t)
	h := newHarness(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	ref := reg.Host() + "/corrupt/app:1"
	h.build(h.context("FROM base/busybox:1\nRUN echo corrupt-me > /c\n", map[string]string{}), ref)
	h.mustRun("push", ref)
	_, m := remoteManifest(t, ref)
	bad := m.Layers[len(m.Layers)-1].Digest.String()
	reg.CorruptBlob(bad)

	// The same image behind an index, its own layer corrupted too.
	multi := reg.Host() + "/corrupt/multi:1"
	hostImg, _, _ := pushIndex(t, ref, multi)
	layers, err := hostImg.Layers()
	if err != nil {
		t.Fatal(err)
	}
	badInIndex, err := layers[len(layers)-1].Digest()
	if err != nil {
		t.Fatal(err)
	}
	reg.CorruptBlob(badInIndex.String())

	e := newHarness(t)
	before, rows := e.storeListing(), e.imagesRows()
	msg := e.fail("pull", ref)
	wantIn(t, "pull of a corrupted blob", msg, bad, "digest")
	// Both corrupted layers are in the index's image: either may fail it.
	msg = e.fail("pull", multi)
	wantIn(t, "pull of corrupted blobs behind an index", msg, "digest")
	if !strings.Contains(msg, badInIndex.String()) && !strings.Contains(msg, bad) {
		t.Errorf("pull of corrupted blobs behind an index names neither %s nor %s:\n%s", badInIndex, bad, msg)
	}
	dir := e.context("FROM "+ref+"\nRUN true\n", map[string]string{})
	msg = e.fail("build", dir)
	wantIn(t, "FROM a corrupted blob", msg, bad)
	if got := e.imagesRows(); got != rows {
		t.Errorf("images changed:\n%s\nwas:\n%s", got, rows)
	}
	e.mustRun("store", "verify")
	if after := e.storeListing(); after != before {
		t.Errorf("the failed pull changed the store:\n%s", listingDiff(before, after))
	}

	// The other way: a layer rotted in the local store is never pushed;
	// the push fails naming it and the registry gets no manifest.
	local := reg.Host() + "/corrupt/local:1"
	h.build(h.context("FROM base/busybox:1\nRUN echo rotten > /r\n", map[string]string{}), local)
	_, localLayers := h.manifestOf(local)
	layer := localLayers[len(localLayers)-1]
	h.flipByte(layer)
	mark := len(reg.Requests())
	msg = h.fail("push", local)
	wantIn(t, "push of a corrupted local layer", msg, layer, "store")
	if strings.Contains(msg, "unreachable") {
		t.Errorf("a corrupted local layer is blamed on the registry:\n%s", msg)
	}
	reqs := reg.Requests()[mark:]
	for _, q := range reqs.BlobUploads() {
		if q.Query.Get("digest") == layer {
			t.Errorf("the corrupted layer was uploaded:\n%s", reqs)
		}
	}
	if len(reqs.Match("PUT", "/manifests/")) != 0 {
		t.Errorf("a manifest was pushed:\n%s", reqs)
	}
}

// TestRegistryVanishes: the registry dies during a push, once in
// the middle of a big layer's upload and once after the first blob is in;
// the push fails cleanly, the store is untouched, and once the registry is
// back (same port, same storage) the next push uploads only the blobs it
// lacks. The same during a pull leaves the store as it was.
func TestRegistryVanishes(t *testing.T) {
	requiresRegistryCLI(t)
	registryEnv(t)
	h := newHarness(t)
	app := h.context("FROM base/busybox:1\nRUN echo small > /small\nRUN head -c 50000000 /dev/urandom > /big\n", map[string]string{})
	h.build(app, "vanish:1")
	for _, c := range []struct {
		name string
		stop func(*testutil.Registry)
		// bigPartial: the big layer was being uploaded when the
		// registry died, so the next push must upload it.
		bigPartial bool
	}{
		{"in the middle of a layer", func(r *testutil.Registry) { r.StopOnUpload(1 << 20) }, true},
		{"after the first blob", func(r *testutil.Registry) { r.StopOn(`^PUT /v2/vanish/app/blobs/uploads/`) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &harness{t: t, root: h.root}
			reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
			ref := reg.Host() + "/vanish/app:1"
			h.mustRun("tag", "vanish:1", ref)
			before := h.storeListing()
			c.stop(reg)
			msg := h.fail("push", ref)
			wantIn(t, "push to a vanished registry", msg, reg.Host(), "vanish/app")
			if !reg.Stopped() {
				t.Fatal("the push ended before the registry was stopped")
			}
			if after := h.storeListing(); after != before {
				t.Errorf("the failed push changed the store:\n%s", listingDiff(before, after))
			}
			h.mustRun("store", "verify")

			reg.Restart()
			present := reg.RepoLayers("vanish/app")
			mark := len(reg.Requests())
			out := h.mustRun("push", ref)
			d, m := remoteManifest(t, ref)
			if !strings.Contains(out, d.String()) {
				t.Errorf("push does not print the pushed digest %s:\n%s", d, out)
			}
			var want []string
			for _, b := range blobsOf(m) {
				if !slices.Contains(present, b) {
					want = append(want, b)
				}
			}
			var got []string
			for _, q := range reg.Requests()[mark:].BlobUploads() {
				got = append(got, q.Query.Get("digest"))
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("after the restart the push uploaded %v, want only the missing %v (present: %v)", got, want, present)
			}
			big := slices.MaxFunc(m.Layers, func(a, b v1.Descriptor) int { return int(a.Size - b.Size) })
			if c.bigPartial && !slices.Contains(got, big.Digest.String()) {
				t.Errorf("the big layer %s, cut off mid-upload, was not uploaded again", big.Digest)
			}
			if len(present) == 0 {
				t.Logf("the registry died before any blob was in: the resume uploaded all")
			}
		})
	}

	// The same while pulling: killed once the first blob is down, the big
	// layer still on its way; the store gets nothing, and the pull after
	// the restart works.
	t.Run("during a pull", func(t *testing.T) {
		h := &harness{t: t, root: h.root}
		reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
		ref := reg.Host() + "/vanish/pull:1"
		h.mustRun("tag", "vanish:1", ref)
		h.mustRun("push", ref)
		e := newHarness(t)
		before := e.storeListing()
		reg.StopOn(`^GET /v2/vanish/pull/blobs/`)
		msg := e.fail("pull", ref)
		wantIn(t, "pull from a vanished registry", msg, reg.Host(), "vanish/pull")
		if !reg.Stopped() {
			t.Fatal("the pull ended before the registry was stopped")
		}
		if after := e.storeListing(); after != before {
			t.Errorf("the failed pull changed the store:\n%s", listingDiff(before, after))
		}
		e.mustRun("store", "verify")
		reg.Restart()
		e.mustRun("pull", ref)
		if got, want := e.platformOf(ref).ID, h.platformOf(ref).ID; got != want {
			t.Errorf("pulled %s, pushed %s", got, want)
		}
	})
}
