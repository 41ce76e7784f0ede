package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// copyRoot is a copy of h's root, as a new harness: one built store,
// tampered with in as many ways as there are copies.
func (h *harness) copyRoot(t *testing.T) *harness {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", h.root, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy root: %v\n%s", err, out)
	}
	return &harness{t: t, root: dst}
}

// blobOf is the path of blob d ("sha256:...") in h's store.
func (h *harness) blobOf(d string) string {
	return filepath.Join(h.root, "content", "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
}

// rewriteIndex edits content/index.json as JSON.
func (h *harness) rewriteIndex(edit func(idx *ocispec.Index)) {
	h.t.Helper()
	p := filepath.Join(h.root, "content", "index.json")
	var idx ocispec.Index
	if err := readJSONFile(p, &idx); err != nil {
		h.t.Fatal(err)
	}
	edit(&idx)
	b, _ := json.Marshal(idx)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// putBlob writes v as a blob the way the store names them and returns its
// descriptor.
func (h *harness) putBlob(mediaType string, v any) ocispec.Descriptor {
	h.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := os.WriteFile(h.blobOf(d.Digest.String()), b, 0o644); err != nil {
		h.t.Fatal(err)
	}
	return d
}

// retag points ref at a new manifest.
func (h *harness) retag(ref string, m ocispec.Descriptor) {
	h.rewriteIndex(func(idx *ocispec.Index) {
		for i, e := range idx.Manifests {
			if e.Annotations[ocispec.AnnotationRefName] == ref {
				m.Annotations = e.Annotations
				idx.Manifests[i] = m
			}
		}
	})
}

// A store tampered with in every way a file can be: no command panics or
// hangs, each that fails says why, nothing is read through a blob that is
// a symlink out of the store, `store verify` reports the damage and
// `--remove` leaves a store that verifies clean and builds.
func TestHostileTamperedStore(t *testing.T) {
	base := newHarness(t)
	world := newHostileWorld(t)
	base.build(base.context("FROM base/busybox:1\nRUN echo hi > /hi\nENV A=1\n", map[string]string{}), "app:1")
	cfg, layers := base.manifestOf("app:1")
	var manifest string
	var idx ocispec.Index
	if err := readJSONFile(filepath.Join(base.root, "content", "index.json"), &idx); err != nil {
		t.Fatal(err)
	}
	for _, e := range idx.Manifests {
		if e.Annotations[ocispec.AnnotationRefName] == "app:1" {
			manifest = e.Digest.String()
		}
	}
	lastLayer := layers[len(layers)-1]
	readManifest := func(h *harness) ocispec.Manifest {
		var m ocispec.Manifest
		if err := readJSONFile(h.blobOf(manifest), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	replace := func(h *harness, blob string, plant func(p string) error) {
		p := h.blobOf(blob)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := plant(p); err != nil {
			t.Fatal(err)
		}
	}
	symlinkOut := func(p string) error { return os.Symlink(world.secret, p) }
	dir := func(p string) error { return os.Mkdir(p, 0o755) }
	fifo := func(p string) error { return syscall.Mkfifo(p, 0o644) }

	cases := []struct {
		name   string
		tamper func(h *harness)
		// repairable: verify reports it and --remove mends it; else
		// every command that needs the file fails naming it.
		repairable bool
		names      string
	}{
		{"index.json garbage", func(h *harness) {
			os.WriteFile(filepath.Join(h.root, "content", "index.json"), []byte("\x00\xff{{[\"\x01"), 0o644)
		}, false, "index.json"},
		{"index.json empty", func(h *harness) {
			os.WriteFile(filepath.Join(h.root, "content", "index.json"), nil, 0o644)
		}, false, "index.json"},
		{"manifest truncated", func(h *harness) {
			b, _ := os.ReadFile(h.blobOf(manifest))
			os.WriteFile(h.blobOf(manifest), b[:len(b)/2], 0o644)
		}, true, manifest},
		{"tag to a missing manifest", func(h *harness) {
			h.retag("app:1", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes([]byte("nothing")), Size: 7})
		}, true, digest.FromBytes([]byte("nothing")).String()},
		{"layer that is the config", func(h *harness) {
			m := readManifest(h)
			m.Layers[len(m.Layers)-1] = m.Config
			h.retag("app:1", h.putBlob(ocispec.MediaTypeImageManifest, m))
		}, true, "is its config"},
		{"diff_ids short", func(h *harness) {
			m := readManifest(h)
			var c ocispec.Image
			readJSONFile(h.blobOf(cfg), &c)
			c.RootFS.DiffIDs = c.RootFS.DiffIDs[:1]
			m.Config = h.putBlob(ocispec.MediaTypeImageConfig, c)
			h.retag("app:1", h.putBlob(ocispec.MediaTypeImageManifest, m))
		}, true, "diff"},
		{"config symlink out of the store", func(h *harness) { replace(h, cfg, symlinkOut) }, true, cfg},
		{"layer symlink out of the store", func(h *harness) { replace(h, lastLayer, symlinkOut) }, true, lastLayer},
		{"manifest directory", func(h *harness) { replace(h, manifest, dir) }, true, manifest},
		{"config fifo", func(h *harness) { replace(h, cfg, fifo) }, true, cfg},
		{"layer fifo", func(h *harness) { replace(h, lastLayer, fifo) }, true, lastLayer},
		{"meta.db garbage", func(h *harness) {
			os.WriteFile(filepath.Join(h.root, "meta.db"), []byte(strings.Repeat("garbage!", 2048)), 0o600)
		}, false, "meta.db"},
		{"meta.db truncated", func(h *harness) { os.Truncate(filepath.Join(h.root, "meta.db"), 4096) }, false, "meta.db"},
	}
	out := filepath.Join(t.TempDir(), "out.tar")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := base.copyRoot(t)
			c.tamper(h)
			ctxDir := h.context("FROM app:1\nRUN echo x > /y\n", map[string]string{})
			for _, args := range [][]string{
				{"images"}, {"inspect", "app:1"}, {"history", "app:1"},
				{"build", "--no-cache", "-t", "app:2", ctxDir}, {"run", "--rm", "app:1", "cat", "/hi"},
				{"save", "-o", out, "app:1"}, {"cache", "ls"}, {"cache", "du"},
				{"store", "verify"}, {"rmi", "app:1"}, {"cache", "prune"},
			} {
				stdout, errOut, code := h.runBounded(args...)
				switch {
				case strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine "):
					t.Errorf("builder %q panicked:\n%s", args, errOut)
				case code != 0 && strings.TrimSpace(errOut) == "":
					t.Errorf("builder %q: exit %d and nothing on stderr", args, code)
				case code == 0 && args[0] == "store" && c.repairable:
					t.Errorf("store verify found nothing:\n%s", stdout)
				case code != 0 && args[0] == "store" && !strings.Contains(stdout+errOut, c.names):
					t.Errorf("store verify does not name %s:\n%s%s", c.names, stdout, errOut)
				case code != 0 && !c.repairable && !strings.Contains(errOut, c.names):
					t.Errorf("builder %q does not name %s:\n%s", args, c.names, errOut)
				}
				if strings.Contains(stdout+errOut, "host secret") {
					t.Errorf("builder %q read through a blob symlink out of the store", args)
				}
			}
			if b, err := os.ReadFile(out); err == nil && strings.Contains(string(b), "host secret") {
				t.Error("save put a file from outside the store into the archive")
			}
			world.untouched(t)
			if !c.repairable {
				return
			}
			h.mustRun("store", "verify", "--remove")
			h.mustRun("store", "verify")
			h.mustRun("images")
			h.build(h.context("FROM base/busybox:1\nRUN echo hi > /hi\nENV A=1\n", map[string]string{}), "app:1")
			if got := h.runImage("app:1", "cat", "/hi"); got != "hi\n" {
				t.Errorf("rebuilt app:1: /hi = %q", got)
			}
		})
	}
}
