package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// manifestOf is the manifest part of `inspect` for ref.
func (h *harness) manifestOf(ref string) (config string, layers []string) {
	h.t.Helper()
	var out []struct {
		Manifest struct {
			Config struct{ Digest string }
			Layers []struct{ Digest string }
		}
	}
	if err := json.Unmarshal([]byte(h.mustRun("inspect", ref)), &out); err != nil || len(out) != 1 {
		h.t.Fatalf("inspect %s: %v", ref, err)
	}
	for _, l := range out[0].Manifest.Layers {
		layers = append(layers, l.Digest)
	}
	return out[0].Manifest.Config.Digest, layers
}

// flipByte changes the last byte of the blob d of the store: a layer's gzip
// stream still decompresses whole (it is the trailer's size field), so
// only the digest check at the end can tell, and a reader that swallows
// the error of its last read shows.
func (h *harness) flipByte(d string) {
	h.t.Helper()
	p := filepath.Join(h.root, "content", "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	b, err := os.ReadFile(p)
	if err != nil {
		h.t.Fatal(err)
	}
	b[len(b)-1] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// dropUnpacked removes every unpacked layer, so that the next build or
// run unpacks from the blobs again, as after a load.
func (h *harness) dropUnpacked() {
	h.t.Helper()
	dir := filepath.Join(h.root, "snapshots", "sha256")
	if err := os.RemoveAll(dir); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		h.t.Fatal(err)
	}
}

// mustFailNaming runs args and checks that they fail with a digest error
// naming blob.
func (h *harness) mustFailNaming(blob string, args ...string) {
	h.t.Helper()
	out, errOut, code := h.run(args...)
	if code == 0 {
		h.t.Errorf("builder %s succeeded on a corrupt blob\nstdout:\n%s", strings.Join(args, " "), out)
		return
	}
	if !strings.Contains(errOut, blob) || !strings.Contains(errOut, "does not match its digest") {
		h.t.Errorf("builder %s: the error should be a digest error naming %s:\n%s", strings.Join(args, " "), blob, errOut)
	}
}

// A byte flipped in a layer blob or a config blob is found by every command
// that reads it; store verify reports it, and --remove leaves a store that
// verifies clean and builds again.
func TestCorruptBlobDetected(t *testing.T) {
	for _, which := range []string{"layer", "config"} {
		t.Run(which, func(t *testing.T) {
			h := newHarness(t)
			dockerfile := "FROM base/busybox:1\nRUN echo hello > /hello\n"
			app := h.context(dockerfile, map[string]string{})
			h.build(app, "app:1")
			config, layers := h.manifestOf("app:1")
			blob := config
			if which == "layer" {
				blob = layers[len(layers)-1]
			}
			h.dropUnpacked()
			h.flipByte(blob)

			child := h.context("FROM app:1\nRUN cat /hello\n", map[string]string{})
			h.mustFailNaming(blob, "build", "-t", "child:1", child)
			h.mustFailNaming(blob, "run", "--rm", "app:1", "cat", "/hello")
			// The layer being unpacked was thrown away, not published.
			unpacked, _ := os.ReadDir(filepath.Join(h.root, "snapshots", "sha256"))
			if len(unpacked) >= len(layers) {
				t.Errorf("%d unpacked layers after failed unpacks of a %d-layer image: the corrupt one was kept", len(unpacked), len(layers))
			}
			if left, _ := os.ReadDir(filepath.Join(h.root, "snapshots", "tmp")); len(left) != 0 {
				t.Errorf("unpacking left %v", left)
			}
			out := filepath.Join(t.TempDir(), "app.tar")
			h.mustFailNaming(blob, "save", "-o", out, "app:1")
			h.mustFailNaming(blob, "save", "--format", "oci", "-o", out, "app:1")
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a failed save left %s: %v", out, err)
			}
			if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
				t.Errorf("a failed save left files: %v", entries)
			}
			if which == "config" {
				h.mustFailNaming(blob, "inspect", "app:1")
				h.mustFailNaming(blob, "history", "app:1")
				h.mustFailNaming(blob, "images")
			}

			stdout, _, code := h.run("store", "verify")
			if code == 0 || !strings.Contains(stdout, blob) || !strings.Contains(stdout, "app:1") {
				t.Errorf("store verify: exit %d, should report %s used by app:1:\n%s", code, blob, stdout)
			}
			stdout = h.mustRun("store", "verify", "--remove")
			if !strings.Contains(stdout, "removed corrupt blob "+blob) {
				t.Errorf("store verify --remove should say it removed %s:\n%s", blob, stdout)
			}
			if stdout := h.mustRun("store", "verify"); !strings.Contains(stdout, "sound") {
				t.Errorf("store verify after --remove:\n%s", stdout)
			}
			h.build(app, "app:1")
			if got := h.runImage("app:1", "cat", "/hello"); got != "hello\n" {
				t.Errorf("rebuilt image: /hello = %q", got)
			}
			h.build(child, "child:1")
		})
	}
}
