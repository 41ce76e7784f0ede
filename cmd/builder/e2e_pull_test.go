package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestPullReferences: the reference forms of pull and FROM against a
// plain registry on 127.0.0.1: Docker Hub's shorthand through a mirror
// (the store names it as docker does), a digest-pinned FROM (an image's
// and an index's digest, both resolving offline afterwards), and the
// errors of a missing image and of a registry that is not there.
func TestPullReferences(t *testing.T) {
	requiresRegistryCLI(t)
	registryEnv(t)
	h := newHarness(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	host := reg.Host()
	app := h.context("FROM base/busybox:1\nRUN echo pinned > /p\n", map[string]string{})
	appRef := host + "/refs/app:1"
	h.build(app, appRef)
	h.mustRun("push", appRef)
	appDigest, _ := remoteManifest(t, appRef)

	t.Run("docker hub shorthand through a mirror", func(t *testing.T) {
		// The mirror holds library/busybox as Docker Hub would.
		h.mustRun("tag", appRef, host+"/library/busybox:latest")
		h.mustRun("push", host+"/library/busybox:latest")
		cfg := filepath.Join(t.TempDir(), "registries.json")
		b, _ := json.Marshal(map[string]any{"mirrors": map[string][]string{"docker.io": {host}}})
		if err := os.WriteFile(cfg, b, 0o644); err != nil {
			t.Fatal(err)
		}
		e := emptyRoot(t)
		e.mustRun("--registry-config", cfg, "pull", "busybox")
		if row := e.imagesRow("busybox:latest"); !strings.HasPrefix(row, "busybox latest ") {
			t.Errorf("pull busybox is listed as %q", row)
		}
		// Every spelling docker takes names the same image.
		for _, ref := range []string{"busybox", "docker.io/library/busybox:latest", "index.docker.io/library/busybox"} {
			if got := e.platformOf(ref).Digest; got != appDigest.String() {
				t.Errorf("%s is %s, want %s", ref, got, appDigest)
			}
		}
	})

	t.Run("FROM pinned by digest", func(t *testing.T) {
		e := emptyRoot(t)
		pinned := host + "/refs/app@" + appDigest.String()
		dir := e.context("FROM "+pinned+"\nRUN cat /p > /seen\n", map[string]string{})
		e.build(dir, "frompinned:1")
		if out := e.runImage("frompinned:1", "cat", "/seen"); out != "pinned\n" {
			t.Errorf("FROM a digest ran with %q", out)
		}
		// Resolves from the store now: a rebuild asks the registry nothing.
		mark := len(reg.Requests())
		e.build(dir, "frompinned:1")
		if reqs := reg.Requests()[mark:]; len(reqs) != 0 {
			t.Errorf("a rebuild FROM a pulled digest went to the registry:\n%s", reqs)
		}
	})

	t.Run("FROM an index's digest", func(t *testing.T) {
		ref := host + "/refs/multi:1"
		hostImg, _, _ := pushIndex(t, appRef, ref)
		// The index's own digest (remote.Image would pick a platform's).
		r, _ := name.ParseReference(ref, name.Insecure)
		desc, err := remote.Get(r)
		if err != nil || !desc.MediaType.IsIndex() {
			t.Fatalf("%s is no index: %v %v", ref, desc, err)
		}
		idxDigest := desc.Digest
		hostDigest, _ := hostImg.Digest()
		e := emptyRoot(t)
		pinned := host + "/refs/multi@" + idxDigest.String()
		dir := e.context("FROM "+pinned+"\nRUN cat /platform > /seen\n", map[string]string{})
		e.build(dir, "fromidx:1")
		if out := e.runImage("fromidx:1", "cat", "/seen"); out != "host\n" {
			t.Errorf("FROM an index digest ran with %q", out)
		}
		if got := e.platformOf(pinned).Digest; got != hostDigest.String() {
			t.Errorf("%s resolves to %s, want the host's manifest %s", pinned, got, hostDigest)
		}
		// A prune keeps the index's blob with the image it picked.
		e.mustRun("cache", "prune", "--all")
		mark := len(reg.Requests())
		e.build(dir, "fromidx:1")
		if reqs := reg.Requests()[mark:]; len(reqs) != 0 {
			t.Errorf("a rebuild FROM a pulled index digest (after a prune) went to the registry:\n%s", reqs)
		}
	})

	t.Run("docker schema2 image", func(t *testing.T) {
		// Docker Hub's images are Docker schema2: kept as served, built
		// on, saved and loaded like OCI ones.
		ref := host + "/refs/docker:1"
		br, _ := name.ParseReference(appRef, name.Insecure)
		base, err := remote.Image(br)
		if err != nil {
			t.Fatal(err)
		}
		img := mutate.ConfigMediaType(mutate.MediaType(base, types.DockerManifestSchema2), types.DockerConfigJSON)
		r, _ := name.ParseReference(ref, name.Insecure)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		want, _ := img.Digest()
		e := emptyRoot(t)
		e.mustRun("pull", ref)
		if got := e.platformOf(ref).Digest; got != want.String() {
			t.Errorf("pulled %s, registry has %s", got, want)
		}
		e.build(e.context("FROM "+ref+"\nRUN cat /p > /q\n", map[string]string{}), "ondocker:1")
		for _, format := range []string{"docker", "oci"} {
			tar := filepath.Join(t.TempDir(), "x.tar")
			e.mustRun("save", "--format", format, "-o", tar, ref, "ondocker:1")
			l := emptyRoot(t)
			l.mustRun("load", "-i", tar)
			if out := l.runImage("ondocker:1", "cat", "/q"); out != "pinned\n" {
				t.Errorf("%s archive: the loaded image runs with %q", format, out)
			}
		}
	})

	t.Run("run pulls a missing image", func(t *testing.T) {
		e := emptyRoot(t)
		if out := e.runImage(appRef, "cat", "/p"); out != "pinned\n" {
			t.Errorf("run of an image only in the registry printed %q", out)
		}
	})

	t.Run("errors", func(t *testing.T) {
		e := emptyRoot(t)
		msg := e.fail("pull", host+"/refs/nothing:1")
		wantIn(t, "pull of a missing image", msg, host, "refs/nothing", "not found")
		t.Logf("pull of a missing image: %s", msg)
		msg = e.fail("build", e.context("FROM "+host+"/refs/nothing:1\n", map[string]string{}))
		wantIn(t, "FROM a missing image", msg, host, "refs/nothing", "not found")
		t.Logf("FROM a missing image: %s", msg)

		msg = e.fail("pull", "127.0.0.1:1/refs/app:1")
		wantIn(t, "pull from nothing", msg, "127.0.0.1:1", "refs/app", "unreachable")
		if rows := e.imagesRows(); strings.Contains(rows, "refs/") {
			t.Errorf("failed pulls left images:\n%s", rows)
		}
	})
}

// TestLoginLogoutConfig: login checks the credentials, then writes docker's
// config.json under $DOCKER_CONFIG keeping its other fields, 0600;
// logout removes only the entry; a credsStore is refused clearly.
func TestLoginLogoutConfig(t *testing.T) {
	requiresRegistryCLI(t)
	config := registryEnv(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, User: "bob", Password: "pw"})
	host := reg.Host()
	h := &harness{t: t, root: t.TempDir()}
	path := filepath.Join(config, "config.json")
	if err := os.WriteFile(path, []byte(`{"auths":{"keep.example":{"auth":"eDp5"}},"psFormat":"table"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// Without the CA the certificate is refused, unless the host is
	// listed as insecure.
	msg := h.fail("login", "-u", "bob", "-p", "pw", host)
	wantIn(t, "login without the CA", msg, host, "certificate", "--registry-ca")
	t.Logf("login without the CA: %s", msg)
	msg = h.fail("--registry-ca", reg.CAFile, "login", "-u", "bob", "-p", "wrong", host)
	wantIn(t, "login with a wrong password", msg, host, "refused")
	t.Logf("login with a wrong password: %s", msg)
	h.mustRun("--insecure-registry", host, "login", "-u", "bob", "-p", "pw", host)
	h.mustRun("--registry-ca", reg.CAFile, "login", "-u", "bob", "-p", "pw", host)
	b, _ := os.ReadFile(path)
	var file struct {
		Auths    map[string]struct{ Auth string }
		PsFormat string
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if file.Auths[host].Auth != "Ym9iOnB3" || file.Auths["keep.example"].Auth != "eDp5" || file.PsFormat != "table" {
		t.Errorf("config.json after login:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v", fi.Mode())
	}
	h.mustRun("logout", host)
	b, _ = os.ReadFile(path)
	if strings.Contains(string(b), host) || !strings.Contains(string(b), "keep.example") || !strings.Contains(string(b), "psFormat") {
		t.Errorf("config.json after logout:\n%s", b)
	}
	// As docker: logging out where there is no login says so and succeeds.
	wantIn(t, "second logout", h.mustRun("logout", host), "Not logged in to "+host)

	if err := os.WriteFile(path, []byte(`{"credsStore":"pass"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	msg = h.fail("--registry-ca", reg.CAFile, "login", "-u", "bob", "-p", "pw", host)
	wantIn(t, "login with a credsStore", msg, "credential helper", "not support")
}
