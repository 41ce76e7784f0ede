package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/testutil"
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
		// repairable: --remove mends it; every: every command that
		// fails names it. store verify always fails naming it.
		repairable bool
		names      string
		every      bool
	}{
		{"index.json garbage", func(h *harness) {
			os.WriteFile(filepath.Join(h.root, "content", "index.json"), []byte("\x00\xff{{[\"\x01"), 0o644)
		}, true, "index.json", true},
		{"index.json empty", func(h *harness) {
			os.WriteFile(filepath.Join(h.root, "content", "index.json"), nil, 0o644)
		}, true, "index.json", true},
		{"manifest truncated", func(h *harness) {
			b, _ := os.ReadFile(h.blobOf(manifest))
			os.WriteFile(h.blobOf(manifest), b[:len(b)/2], 0o644)
		}, true, manifest, false},
		{"tag to a missing manifest", func(h *harness) {
			h.retag("app:1", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes([]byte("nothing")), Size: 7})
		}, true, digest.FromBytes([]byte("nothing")).String(), false},
		{"layer that is the config", func(h *harness) {
			m := readManifest(h)
			m.Layers[len(m.Layers)-1] = m.Config
			h.retag("app:1", h.putBlob(ocispec.MediaTypeImageManifest, m))
		}, true, "is its config", false},
		{"diff_ids short", func(h *harness) {
			m := readManifest(h)
			var c ocispec.Image
			readJSONFile(h.blobOf(cfg), &c)
			c.RootFS.DiffIDs = c.RootFS.DiffIDs[:1]
			m.Config = h.putBlob(ocispec.MediaTypeImageConfig, c)
			h.retag("app:1", h.putBlob(ocispec.MediaTypeImageManifest, m))
		}, true, "diff", false},
		{"config symlink out of the store", func(h *harness) { replace(h, cfg, symlinkOut) }, true, cfg, false},
		{"layer symlink out of the store", func(h *harness) { replace(h, lastLayer, symlinkOut) }, true, lastLayer, false},
		{"manifest directory", func(h *harness) { replace(h, manifest, dir) }, true, manifest, false},
		{"config fifo", func(h *harness) { replace(h, cfg, fifo) }, true, cfg, false},
		{"layer fifo", func(h *harness) { replace(h, lastLayer, fifo) }, true, lastLayer, false},
		{"meta.db garbage", func(h *harness) {
			os.WriteFile(filepath.Join(h.root, "meta.db"), []byte(strings.Repeat("garbage!", 2048)), 0o600)
		}, true, "meta.db", true},
		{"meta.db truncated", func(h *harness) { os.Truncate(filepath.Join(h.root, "meta.db"), 4096) }, true, "meta.db", true},
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
				case code == 0 && args[0] == "store":
					t.Errorf("store verify found nothing:\n%s", stdout)
				case code != 0 && args[0] == "store" && !strings.Contains(stdout+errOut, c.names):
					t.Errorf("store verify does not name %s:\n%s%s", c.names, stdout, errOut)
				case code != 0 && c.every && !strings.Contains(errOut, c.names):
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
			images := h.mustRun("images")
			if c.names == "index.json" {
				// The names are lost with it; the images are not.
				if n := strings.Count(images, "<none>"); n != 2*2 {
					t.Errorf("images after rebuilding the index:\n%s", images)
				}
				if got := h.runImage(cfg, "cat", "/hi"); got != "hi\n" {
					t.Errorf("recovered app:1: /hi = %q", got)
				}
				return
			}
			h.build(h.context("FROM base/busybox:1\nRUN echo hi > /hi\nENV A=1\n", map[string]string{}), "app:1")
			if got := h.runImage("app:1", "cat", "/hi"); got != "hi\n" {
				t.Errorf("rebuilt app:1: /hi = %q", got)
			}
		})
	}
}

// archiveEntry is one entry of an archive under construction.
type archiveEntry struct {
	hdr  tar.Header
	body []byte
}

// readArchive is the entries of a tar file.
func readArchive(t *testing.T, p string) []archiveEntry {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []archiveEntry
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, archiveEntry{*h, b})
	}
}

func writeArchive(t *testing.T, entries []archiveEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dockerManifest is manifest.json of a docker archive.
type dockerManifest []struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Hostile archives for `load`: names leaving the archive, links to host
// files, a manifest.json pointing out of the archive, huge and deeply
// nested JSON, a directory where a layer belongs, duplicates, gzip of
// gzip. Each is refused with a message and leaves the store as it was, or
// loads only what the archive holds; nothing is written outside the root.
func TestHostileLoadArchives(t *testing.T) {
	h := newHarness(t)
	world := newHostileWorld(t)
	h.build(h.context("FROM base/busybox:1\nRUN echo hi > /hi\n", map[string]string{}), "app:1")
	good := filepath.Join(t.TempDir(), "good.tar")
	h.mustRun("save", "-o", good, "app:1")
	h.mustRun("rmi", "app:1")
	h.mustRun("cache", "prune", "--all")
	entries := readArchive(t, good)
	var man dockerManifest
	for _, e := range entries {
		if e.hdr.Name == "manifest.json" {
			if err := json.Unmarshal(e.body, &man); err != nil {
				t.Fatal(err)
			}
		}
	}
	// withManifest is the good archive with manifest.json replaced.
	withManifest := func(edit func(m dockerManifest) any) []byte {
		m := make(dockerManifest, len(man))
		copy(m, man)
		m[0].Layers = append([]string(nil), man[0].Layers...)
		v := edit(m)
		b, ok := v.([]byte) // as is: json.Marshal compacts a RawMessage
		if !ok {
			b, _ = json.Marshal(v)
		}
		var out []archiveEntry
		for _, e := range entries {
			if e.hdr.Name == "manifest.json" {
				e.body = b
			}
			out = append(out, e)
		}
		return writeArchive(t, out)
	}
	renamed := func(rename func(string) string) []byte {
		var out []archiveEntry
		for _, e := range entries {
			e.hdr.Name = rename(e.hdr.Name)
			out = append(out, e)
		}
		return writeArchive(t, out)
	}
	withExtra := func(extra ...archiveEntry) []byte {
		return writeArchive(t, append(append([]archiveEntry(nil), entries...), extra...))
	}
	escape := strings.Repeat("../", 12) + world.dir[1:]
	layer0 := man[0].Layers[0]
	cases := []struct {
		name    string
		archive []byte
		// loads: the archive is good despite the trick (its names
		// resolve inside it); else it must be refused.
		loads bool
	}{
		{"names with ../", renamed(func(n string) string { return "../../" + n }), true},
		{"absolute names", renamed(func(n string) string { return "/" + n }), true},
		{"entry through a symlink out", withExtra(
			archiveEntry{hdr: tar.Header{Name: "out", Typeflag: tar.TypeSymlink, Linkname: world.dir}},
			archiveEntry{hdr: tar.Header{Name: "out/written", Typeflag: tar.TypeReg, Mode: 0o644}, body: []byte("x")},
			archiveEntry{hdr: tar.Header{Name: escape + "/dotdot", Typeflag: tar.TypeReg, Mode: 0o644}, body: []byte("x")},
		), true},
		{"config path out of the archive", withManifest(func(m dockerManifest) any {
			m[0].Config = "../../../../../../../" + world.secret
			return m
		}), false},
		{"layer path out of the archive", withManifest(func(m dockerManifest) any {
			m[0].Layers[0] = "../../../../../../etc/passwd"
			return m
		}), false},
		{"layer a hardlink to a host file", func() []byte {
			var out []archiveEntry
			for _, e := range entries {
				if e.hdr.Name == layer0 {
					e = archiveEntry{hdr: tar.Header{Name: layer0, Typeflag: tar.TypeLink, Linkname: world.secret}}
				}
				out = append(out, e)
			}
			return writeArchive(t, out)
		}(), false},
		{"manifest.json a symlink to a host file", func() []byte {
			var out []archiveEntry
			for _, e := range entries {
				if e.hdr.Name == "manifest.json" {
					e = archiveEntry{hdr: tar.Header{Name: "manifest.json", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}
				}
				out = append(out, e)
			}
			return writeArchive(t, out)
		}(), false},
		{"layer path a directory", withExtra(
			archiveEntry{hdr: tar.Header{Name: "dir/", Typeflag: tar.TypeDir, Mode: 0o755}},
		), true},
		{"layer path names a directory", withManifest(func(m dockerManifest) any {
			m[0].Layers[0] = "blobs/"
			return m
		}), false},
		{"symlink loop", withManifest(func(m dockerManifest) any {
			m[0].Config = "loop"
			return m
		}), false},
		{"duplicate layer with other content", withExtra(
			archiveEntry{hdr: tar.Header{Name: layer0, Typeflag: tar.TypeReg, Mode: 0o644}, body: writeArchive(t, []archiveEntry{{hdr: tar.Header{Name: "evil", Typeflag: tar.TypeReg, Mode: 0o644}, body: []byte("x")}})},
		), false},
		{"manifest.json deeply nested", withManifest(func(m dockerManifest) any {
			return []byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000))
		}), false},
		{"manifest.json huge", withManifest(func(m dockerManifest) any {
			// Valid JSON, padded to 33 MiB: read whole, a bigger one
			// would take memory in proportion.
			b, _ := json.Marshal(m)
			return append(b, strings.Repeat(" ", 33<<20)...)
		}), false},
		{"bad tag", withManifest(func(m dockerManifest) any {
			m[0].RepoTags = []string{"../../../x:1"}
			return m
		}), false},
		{"gzip of gzip", testutil.Gzip(t, testutil.Gzip(t, writeArchive(t, entries))), false},
		{"not an archive", []byte("hello\n"), false},
		{"empty", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "in.tar")
			archive := c.archive
			if c.name == "symlink loop" {
				archive = writeArchive(t, append(readArchive(t, writeTemp(t, archive)),
					archiveEntry{hdr: tar.Header{Name: "loop", Typeflag: tar.TypeSymlink, Linkname: "loop2"}},
					archiveEntry{hdr: tar.Header{Name: "loop2", Typeflag: tar.TypeSymlink, Linkname: "loop"}}))
			}
			if err := os.WriteFile(p, archive, 0o644); err != nil {
				t.Fatal(err)
			}
			before := h.storeListing()
			_, errOut, code := h.runBounded("load", "-i", p)
			switch {
			case strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine "):
				t.Fatalf("load panicked:\n%s", errOut)
			case code == 0 && !c.loads:
				t.Errorf("load accepted it")
			case code != 0 && c.loads:
				t.Errorf("load refused it: %s", errOut)
			case code != 0 && strings.TrimSpace(errOut) == "":
				t.Errorf("load: exit %d and nothing on stderr", code)
			}
			if code != 0 {
				if after := h.storeListing(); after != before {
					t.Errorf("a refused load changed the store:\n%s", listingDiff(before, after))
				}
			} else {
				if got := h.runImage("app:1", "cat", "/hi"); got != "hi\n" {
					t.Errorf("loaded app:1: /hi = %q", got)
				}
				h.mustRun("store", "verify")
				h.mustRun("rmi", "app:1")
				h.mustRun("cache", "prune", "--all")
			}
			world.untouched(t)
		})
	}
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tmp.tar")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Hostile root filesystem tars for `import`, and the same as a layer of a
// `load` archive: entries above the root are refused as they come in,
// with the store as it was; what is accepted (absolute names, symlinks
// out, hard links to absolute paths) stays inside the image when it runs.
func TestHostileImportLayers(t *testing.T) {
	h := newHarness(t)
	world := newHostileWorld(t)
	up := strings.Repeat("../", 12) + world.dir[1:]
	reg := func(name string) archiveEntry {
		return archiveEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, body: []byte("evil\n")}
	}
	link := func(name string, typ byte, target string) archiveEntry {
		return archiveEntry{hdr: tar.Header{Name: name, Typeflag: typ, Linkname: target}}
	}
	busybox := readArchive(t, writeTemp(t, func() []byte {
		out := filepath.Join(t.TempDir(), "bb.tar")
		h.mustRun("save", "-o", out, "base/busybox:1")
		b, _ := os.ReadFile(out)
		return b
	}()))
	cases := []struct {
		name    string
		entries []archiveEntry
		refused bool
	}{
		{"dotdot", []archiveEntry{reg(up + "/dotdot")}, true},
		{"hardlink above the root", []archiveEntry{link("hard", tar.TypeLink, up+"/secret")}, true},
		{"absolute", []archiveEntry{reg(world.dir + "/absolute")}, false},
		{"symlink then through it", []archiveEntry{link("out", tar.TypeSymlink, world.dir), reg("out/through")}, false},
		{"hardlink to an absolute host path", []archiveEntry{link("hard", tar.TypeLink, world.secret)}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			layer := writeArchive(t, c.entries)
			before := h.storeListing()
			_, errOut, code := h.runBounded("import", writeTemp(t, layer), "hostile:imp")
			switch {
			case strings.Contains(errOut, "panic"):
				t.Fatalf("import panicked:\n%s", errOut)
			case c.refused && code == 0:
				t.Error("import accepted it")
			case c.refused && !strings.Contains(errOut, "leaves the root"):
				t.Errorf("import: %s", errOut)
			case !c.refused && code != 0:
				t.Errorf("import refused it: %s", errOut)
			}
			if c.refused {
				if after := h.storeListing(); after != before {
					t.Errorf("a refused import changed the store:\n%s", listingDiff(before, after))
				}
			} else {
				// Unpacking it is the layer applier's: refused or
				// confined, never outside.
				_, errOut, _ := h.runBounded("run", "--rm", "hostile:imp", "/x")
				if strings.Contains(errOut, "panic") {
					t.Errorf("run panicked:\n%s", errOut)
				}
			}
			world.untouched(t)

			// The same layer on top of busybox in a docker archive.
			var man dockerManifest
			var entries []archiveEntry
			for _, e := range busybox {
				if e.hdr.Name == "manifest.json" {
					json.Unmarshal(e.body, &man)
				}
			}
			for _, e := range busybox {
				if e.hdr.Name == "manifest.json" {
					continue
				}
				if strings.HasSuffix(e.hdr.Name, ".json") && e.hdr.Name != "repositories" {
					var cfg ocispec.Image
					json.Unmarshal(e.body, &cfg)
					cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(layer))
					e.body, _ = json.Marshal(cfg)
					e.hdr.Name = digest.FromBytes(e.body).Encoded() + ".json"
					man[0].Config = e.hdr.Name
				}
				entries = append(entries, e)
			}
			man[0].Layers = append(man[0].Layers, "evil.tar")
			man[0].RepoTags = []string{"hostile:load"}
			mb, _ := json.Marshal(man)
			entries = append(entries,
				archiveEntry{hdr: tar.Header{Name: "evil.tar", Typeflag: tar.TypeReg, Mode: 0o644}, body: layer},
				archiveEntry{hdr: tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o644}, body: mb})
			before = h.storeListing()
			_, errOut, code = h.runBounded("load", "-i", writeTemp(t, writeArchive(t, entries)))
			switch {
			case strings.Contains(errOut, "panic"):
				t.Fatalf("load panicked:\n%s", errOut)
			case c.refused && code == 0:
				t.Error("load accepted it")
			case !c.refused && code != 0:
				t.Errorf("load refused it: %s", errOut)
			}
			if c.refused {
				if after := h.storeListing(); after != before {
					t.Errorf("a refused load changed the store:\n%s", listingDiff(before, after))
				}
			} else {
				out, _, _ := h.runBounded("run", "--rm", "hostile:load", "sh", "-c", "cat /hard; ls /out/ /"+world.dir[1:])
				if strings.Contains(out, "host secret") {
					t.Error("a hard link in a loaded layer exposed a host file")
				}
			}
			world.untouched(t)
		})
	}
}

// Malformed Dockerfiles: each fails with exit 1 or 2 and an error naming
// the Dockerfile and line, or builds as Docker would; big ones finish
// (bounded by runBounded) without going quadratic. Nothing panics.
func TestHostileDockerfiles(t *testing.T) {
	h := newHarness(t)
	nested := strings.Repeat("${a:-", 5000) + "end" + strings.Repeat("}", 5000)
	many := func(head, format string, n int) string {
		var b strings.Builder
		b.WriteString(head)
		for i := range n {
			fmt.Fprintf(&b, format, i, i)
		}
		return b.String()
	}
	cases := []struct {
		name string
		df   string
		// line > 0: fails there, with text in the error; 0: builds
		// and run, if set, prints want.
		line int
		text string
		run  []string
		want string
	}{
		{name: "NUL byte", df: "FROM base/busybox:1\nRUN echo a\x00b\n", line: 2, text: "NUL byte"},
		{name: "invalid UTF-8 label", df: "FROM base/busybox:1\nLABEL a=\xff\xfe\n"},
		{name: "CRLF", df: "FROM base/busybox:1\r\nRUN echo hi > /x \\\r\n && echo there >> /x\r\nENV A=1\r\n", run: []string{"sh", "-c", "cat /x; echo $A"}, want: "hi\nthere\n1\n"},
		{name: "BOM", df: "\xef\xbb\xbfFROM base/busybox:1\nRUN echo bom > /b\n", run: []string{"cat", "/b"}, want: "bom\n"},
		{name: "only comments", df: "# one\n# two\n", line: 2, text: "no instructions"},
		{name: "empty", df: "", line: -1, text: "empty"},
		{name: "no FROM", df: "RUN true\n", line: 1, text: "no build stage"},
		{name: "unknown instruction", df: "FROM base/busybox:1\nFOO bar\n", line: 2, text: "unknown instruction"},
		{name: "bad JSON falls back to shell form", df: "FROM base/busybox:1\nRUN [\"echo\", \"hi\" ] || echo shell > /s\n", run: []string{"cat", "/s"}, want: "shell\n"},
		{name: "ONBUILD ONBUILD", df: "FROM base/busybox:1\nONBUILD ONBUILD RUN true\n", line: 2, text: "ONBUILD"},
		{name: "FROM scratch then RUN", df: "FROM scratch\nRUN true\n", line: 2, text: "exit code: 127"},
		{name: "heredoc without terminator", df: "FROM base/busybox:1\nRUN <<EOF\necho hi\n", line: 2, text: "heredoc"},
		{name: "COPY --from itself", df: "FROM base/busybox:1 AS a\nCOPY --from=a /bin/sh /x\n", line: 2, text: "circular"},
		{name: "chown 4294967295", df: "FROM base/busybox:1\nCOPY --chown=4294967295 Dockerfile /x\n", line: 2, text: "range"},
		{name: "chown -1", df: "FROM base/busybox:1\nCOPY --chown=-1 Dockerfile /x\n", line: 2, text: "range"},
		{name: "chown 2^40", df: "FROM base/busybox:1\nCOPY --chown=1099511627776:1 Dockerfile /x\n", line: 2, text: "range"},
		{name: "chown gid -5", df: "FROM base/busybox:1\nADD --chown=1:-5 Dockerfile /x\n", line: 2, text: "range"},
		{name: "chmod 99999", df: "FROM base/busybox:1\nCOPY --chmod=99999 Dockerfile /x\n", line: 2, text: "chmod"},
		{name: "EXPOSE 99999", df: "FROM base/busybox:1\nEXPOSE 99999/tcp\n", line: 2, text: "99999"},
		{name: "USER -1", df: "FROM base/busybox:1\nUSER -1\nRUN id -u > /id\n", line: 3, text: "range"},
		{name: "USER 4294967295", df: "FROM base/busybox:1\nUSER 4294967295\nRUN id -u > /id\n", line: 3, text: "range"},
		{name: "USER gid past 32 bits", df: "FROM base/busybox:1\nUSER 0:99999999999\nRUN id -u > /id\n", line: 3, text: "range"},
		{name: "USER unknown name", df: "FROM base/busybox:1\nUSER ::::\nRUN true\n", line: 3, text: "unable to find user"},
		{name: "USER no argument", df: "FROM base/busybox:1\nUSER\n", line: 2, text: "USER"},
		{name: "WORKDIR above the root", df: "FROM base/busybox:1\nWORKDIR ../../../../..\nRUN pwd > /w\n", run: []string{"cat", "/w"}, want: "/\n"},
		{name: "ENV with no key", df: "FROM base/busybox:1\nENV\n", line: 2, text: "ENV"},
		{name: "ENV with a blank name", df: "FROM base/busybox:1\nENV =x\n", line: 2, text: "blank"},
		{name: "HEALTHCHECK negative interval", df: "FROM base/busybox:1\nHEALTHCHECK --interval=-1s CMD true\n", line: 2, text: "interval"},
		{name: "STOPSIGNAL SIGFOO", df: "FROM base/busybox:1\nSTOPSIGNAL SIGFOO\n", line: 2, text: "SIGFOO"},
		{name: "long line", df: "FROM base/busybox:1\nLABEL a=" + strings.Repeat("x", 1<<20) + "\n", line: 2, text: "long"},
		{name: "deeply nested substitution", df: "FROM base/busybox:1\nENV X=" + nested + "\n", run: []string{"sh", "-c", "echo $X"}, want: "end\n"},
		{name: "10000 instructions", df: many("FROM base/busybox:1\n", "ENV V%d=%d\n", 10000), run: []string{"sh", "-c", "echo $V9999"}, want: "9999\n"},
		{name: "10000 stages", df: "FROM base/busybox:1 AS s0\n" + chainStages(10000)},
		{name: "a long continued instruction", df: "FROM base/busybox:1\nLABEL a=b \\\n" + strings.Repeat("  l=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx \\\n", 40000) + "  end=1\n"},
		{name: "growing variable", df: "FROM base/busybox:1\n" + strings.Repeat("ENV a=${a}yyyyy\n", 12000), line: -1, text: "size limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := h.context(c.df, map[string]string{})
			df := filepath.Join(dir, "Dockerfile")
			_, errOut, code := h.runBounded("build", "-q", "-t", "hostile:df", dir)
			if strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine ") {
				t.Fatalf("build panicked:\n%s", errOut)
			}
			if c.line == 0 {
				if code != 0 {
					t.Fatalf("build failed (exit %d):\n%s", code, lastLine(errOut))
				}
				if c.run != nil {
					if got := h.runImage("hostile:df", c.run...); got != c.want {
						t.Errorf("run %q = %q, want %q", c.run, got, c.want)
					}
				}
				return
			}
			if code != 1 && code != 2 {
				t.Errorf("exit %d, want 1 or 2", code)
			}
			where := df + ":" + strconv.Itoa(c.line) + ":"
			if c.line < 0 {
				where = df + ":"
			}
			msg := lastLine(errOut)
			if !strings.Contains(msg, where) || !strings.Contains(msg, c.text) {
				t.Errorf("error %q, want %q and %q", msg, where, c.text)
			}
		})
	}
}

// chainStages is a Dockerfile body of n stages, each FROM the one before.
func chainStages(n int) string {
	var b strings.Builder
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "FROM s%d AS s%d\n", i-1, i)
	}
	return b.String()
}

// Every way a build context could reach outside itself: sources with
// "..", absolute sources, symlinks (to files, to directories, relative and
// absolute, out and up), .dockerignore exceptions naming parents, a
// context that is itself a symlink, a Dockerfile outside the context.
// Sources resolve inside the context as Docker's do, and no file from
// outside lands in any layer.
func TestHostileContextEscapes(t *testing.T) {
	h := newHarness(t)
	world := newHostileWorld(t)
	parent := t.TempDir()
	ctxDir := filepath.Join(parent, "ctx")
	files := map[string]string{
		"x":          "in context\n",
		"etc/passwd": "context passwd\n",
		"etc/shadow": "context shadow\n",
		"sub/f":      "sub file\n",
	}
	for p, body := range files {
		full := filepath.Join(ctxDir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(parent, "x"), []byte("host secret\n"), 0o644)
	for link, target := range map[string]string{
		"abs-file":     "/etc/shadow",         // -> context's etc/shadow
		"abs-dir":      "/etc",                // -> context's etc/
		"secret-link":  world.secret,          // missing inside the context
		"world-dir":    world.dir,             // missing inside the context
		"up-file":      "../x",                // -> context's x
		"up-up":        "../..",               // -> the context's root
		"sub/deep-up":  "../../../../../../x", // -> context's x
		"sub/host-dir": "../../../../../../" + world.dir[1:],
	} {
		if err := os.Symlink(target, filepath.Join(ctxDir, link)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(ctxDir, ".dockerignore"), []byte("nothing\n!../x\n!../../"+world.dir[1:]+"/secret\n"), 0o644)
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(`FROM base/busybox:1
COPY ../x /c/dotdot
COPY /etc/passwd /c/abs-passwd
COPY abs-file /c/abs-file
ADD abs-file /c/add-abs-file
COPY abs-dir/passwd /c/abs-dir-passwd
ADD abs-dir/shadow /c/add-abs-dir-shadow
COPY up-file /c/up-file
COPY up-up/sub/ /c/up-up/
COPY sub/deep-up /c/deep-up
COPY . /all/
`), 0o644)
	h.build(ctxDir, "hostile:ctx")
	want := "in context\ncontext passwd\ncontext shadow\ncontext shadow\ncontext passwd\ncontext shadow\nin context\nsub file\nin context\n"
	if got := h.runImage("hostile:ctx", "cat", "/c/dotdot", "/c/abs-passwd", "/c/abs-file", "/c/add-abs-file", "/c/abs-dir-passwd",
		"/c/add-abs-dir-shadow", "/c/up-file", "/c/up-up/f", "/c/deep-up"); got != want {
		t.Errorf("sources read %q, want %q", got, want)
	}
	// Copied as links, not followed; nothing from outside anywhere.
	if got := h.runImage("hostile:ctx", "sh", "-c", "readlink /all/secret-link; readlink /all/sub/host-dir"); got != world.secret+"\n../../../../../../"+world.dir[1:]+"\n" {
		t.Errorf("symlinks copied as %q", got)
	}
	if got, _, _ := h.runBounded("run", "--rm", "hostile:ctx", "sh", "-c", "grep -rl 'host secret' /c /all; ls /all/secret /all/"+world.dir[1:]+" 2>/dev/null; echo checked"); got != "checked\n" {
		t.Errorf("files from outside the context in the image: %q", got)
	}

	// Sources that exist only outside: an error naming the line.
	for i, src := range []string{"secret-link", "world-dir/secret", "sub/host-dir/secret", world.secret} {
		dir := h.context("FROM base/busybox:1\nCOPY "+src+" /out\n", map[string]string{})
		for link, target := range map[string]string{"secret-link": world.secret, "world-dir": world.dir, "sub/host-dir": "../../../../../../" + world.dir[1:]} {
			os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
			os.Symlink(target, filepath.Join(dir, link))
		}
		_, errOut, code := h.runBounded("build", "-t", "hostile:out"+strconv.Itoa(i), dir)
		if code == 0 {
			t.Errorf("COPY %s: built from a file outside the context", src)
		} else if !strings.Contains(lastLine(errOut), filepath.Join(dir, "Dockerfile")+":2:") {
			t.Errorf("COPY %s: %s", src, lastLine(errOut))
		}
	}

	// The context given as a symlink to a directory is that directory.
	ctxLink := filepath.Join(parent, "ctx-link")
	os.Symlink(ctxDir, ctxLink)
	h.build(ctxLink, "hostile:ctxlink")
	if got := h.runImage("hostile:ctxlink", "cat", "/c/dotdot"); got != "in context\n" {
		t.Errorf("context through a symlink: %q", got)
	}
	// -f outside the context, relative to the working directory as
	// Docker has it: read, and its COPY still reads the context.
	os.WriteFile(filepath.Join(parent, "Outside.Dockerfile"), []byte("FROM base/busybox:1\nCOPY x /x\n"), 0o644)
	if _, errOut, code := h.runIn(ctxDir, nil, "build", "-q", "-t", "hostile:f", "-f", "../Outside.Dockerfile", "."); code != 0 {
		t.Fatalf("-f ../Outside.Dockerfile: %s", errOut)
	}
	if got := h.runImage("hostile:f", "cat", "/x"); got != "in context\n" {
		t.Errorf("-f outside the context: /x = %q", got)
	}
	// -f a symlink to a host file that is no Dockerfile: read (as
	// Docker would), and refused as a Dockerfile.
	os.Symlink(world.secret, filepath.Join(parent, "df-link"))
	if _, errOut, code := h.runIn(ctxDir, nil, "build", "-f", "../df-link", "."); code != 1 || strings.Contains(errOut, "panic") {
		t.Errorf("-f a symlink to a host file: exit %d\n%s", code, errOut)
	}
	world.untouched(t)
}

// builderAt runs the builder in dir with env added and no --root unless
// args has one.
func builderAt(t *testing.T, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(builderBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}

// Roots that cannot be, and roots written oddly: a file, a path under a
// file, a dangling symlink, a read-only file system, an empty --root are
// refused with a message naming them; a path with spaces, a relative
// --root or BUILDER_ROOT work; processes creating one root at once all
// succeed and leave a sound store.
func TestHostileRoots(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "afile"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nENV A=1\n"), 0o644)
	os.Symlink("/nonexistent/builder-root", filepath.Join(dir, "dangling"))
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o755)
	if err := syscall.Mount("tmpfs", ro, "tmpfs", syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(ro, syscall.MNT_DETACH) })
	for _, c := range []struct {
		root  string
		code  int
		inErr string
	}{
		{"afile", 1, "afile"},
		{"afile/sub", 1, "afile"},
		{"dangling", 1, "dangling"},
		{"ro", 1, "read-only"},
		{"ro/sub", 1, "read-only"},
		{"", 2, "empty"},
	} {
		for _, args := range [][]string{{"images"}, {"build", dir}, {"store", "verify"}, {"cache", "prune"}} {
			// Were --root "" taken for unset, the store would be
			// BUILDER_ROOT's: a directory of the test's, not the
			// machine's default root.
			_, errOut, code := builderAt(t, dir, []string{"BUILDER_ROOT=" + filepath.Join(dir, "fallback")}, append([]string{"--root", c.root}, args...)...)
			if code != c.code || !strings.Contains(errOut, c.inErr) || strings.Contains(errOut, "panic") {
				t.Errorf("--root %q %v: exit %d, want %d with %q:\n%s", c.root, args, code, c.code, c.inErr, errOut)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "fallback")); err == nil {
		t.Error(`--root "" opened the store of BUILDER_ROOT`)
	}
	if _, err := os.Stat("/nonexistent"); err == nil {
		t.Error("a dangling --root symlink was followed")
	}

	rootfs := writeTemp(t, writeArchive(t, []archiveEntry{{hdr: tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}, body: []byte("f\n")}}))
	for _, c := range []struct {
		args []string
		env  []string
		at   string
	}{
		{[]string{"--root", "with space/r"}, nil, "with space/r"},
		{[]string{"--root", "rel"}, nil, "rel"},
		{[]string{"--root", "./dot/../dot2"}, nil, "dot2"},
		{nil, []string{"BUILDER_ROOT=envrel"}, "envrel"},
	} {
		if _, errOut, code := builderAt(t, dir, c.env, append(c.args, "import", rootfs, "img:1")...); code != 0 {
			t.Errorf("%v %v import: %s", c.env, c.args, errOut)
			continue
		}
		out, errOut, code := builderAt(t, dir, c.env, append(c.args, "images")...)
		if code != 0 || !strings.Contains(out, "img") {
			t.Errorf("%v %v images: %s%s", c.env, c.args, out, errOut)
		}
		if _, err := os.Stat(filepath.Join(dir, c.at, "content", "index.json")); err != nil {
			t.Errorf("%v %v: the store is not at %s: %v", c.env, c.args, c.at, err)
		}
	}

	// Eight processes on one root that does not exist yet.
	for trial := range 3 {
		root := filepath.Join(dir, "fresh"+strconv.Itoa(trial))
		cmds := [][]string{{"images"}, {"cache", "ls"}, {"import", rootfs, "a:1"}, {"images"}, {"import", rootfs, "b:1"}, {"ps", "-a"}, {"cache", "du"}, {"images"}}
		errs := make(chan string, len(cmds))
		for _, args := range cmds {
			go func() {
				_, errOut, code := builderAt(t, dir, nil, append([]string{"--root", root}, args...)...)
				if code != 0 {
					errs <- fmt.Sprintf("%v: exit %d: %s", args, code, errOut)
					return
				}
				errs <- ""
			}()
		}
		for range cmds {
			if e := <-errs; e != "" {
				t.Errorf("creating a root at once: %s", e)
			}
		}
		out, errOut, code := builderAt(t, dir, nil, "--root", root, "store", "verify")
		if code != 0 {
			t.Errorf("store verify after creating a root at once: %s%s", out, errOut)
		}
		if out, _, _ := builderAt(t, dir, nil, "--root", root, "images"); !strings.Contains(out, "a ") || !strings.Contains(out, "b ") {
			t.Errorf("an import was lost:\n%s", out)
		}
	}
}

// `save -o` a path that is no regular file: a FIFO and a device node are
// written in place, never replaced by a regular file (save -o /dev/null
// would otherwise put the archive in place of the machine's /dev/null);
// a directory is an error.
func TestHostileSaveDest(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// O_RDWR: opening does not wait for a writer, and reading ends when
	// the test closes it.
	r, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, io.LimitReader(r, 1<<40))
		got <- n
	}()
	h.mustRun("save", "-o", fifo, "base/busybox:1")
	// A null device of the test's own (mknod: the same major and minor
	// as /dev/null).
	null := filepath.Join(dir, "null")
	if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := h.run("save", "-o", null, "base/busybox:1")
	if code != 0 && !strings.Contains(errOut, "permission denied") { // a nodev mount refuses writes
		t.Errorf("save -o a device node: %s", errOut)
	}
	for _, p := range []string{fifo, null} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode().IsRegular() {
			t.Errorf("%s was replaced by a regular file: %v %v", p, fi.Mode(), err)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	r.Close()
	select {
	case n := <-got:
		if n < 1<<20 { // busybox's layer alone is 2 MB
			t.Errorf("the FIFO's reader got %d bytes of the archive", n)
		}
	case <-time.After(time.Minute):
		t.Error("the FIFO's reader never ended")
	}
	if _, errOut, code := h.run("save", "-o", dir, "base/busybox:1"); code == 0 || !strings.Contains(errOut, "directory") {
		t.Errorf("save -o a directory: exit %d %s", code, errOut)
	}
}

// A .dockerignore that is no regular file (a FIFO, which blocked the
// build for ever, a symlink to /dev/zero, a directory) fails the build
// with a message naming it.
func TestHostileIgnoreFile(t *testing.T) {
	h := newHarness(t)
	for name, plant := range map[string]func(p string) error{
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"dev zero":  func(p string) error { return os.Symlink("/dev/zero", p) },
		"directory": func(p string) error { return os.Mkdir(p, 0o755) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := h.context("FROM base/busybox:1\n", map[string]string{})
			ignore := filepath.Join(dir, ".dockerignore")
			if err := plant(ignore); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := h.runBounded("build", dir)
			if code != 1 || !strings.Contains(errOut, ignore) {
				t.Errorf("exit %d, want 1 naming %s:\n%s", code, ignore, errOut)
			}
		})
	}
}

// An unpacked layer replaced by a symlink to a host directory is not
// mounted as the layer (the container saw the host's files): store verify
// reports it, --remove removes the symlink (not what it points to), and a
// run unpacks the layer again from its blob, in the symlink's place.
func TestHostileUnpackedLayerSymlink(t *testing.T) {
	h := newHarness(t)
	world := newHostileWorld(t)
	h.build(h.context("FROM base/busybox:1\nRUN echo top > /top\n", map[string]string{}), "app:1")
	layers, _ := filepath.Glob(filepath.Join(h.root, "snapshots", "sha256", "*", "top"))
	if len(layers) != 1 {
		t.Fatalf("unpacked layers holding /top: %v", layers)
	}
	dir := filepath.Dir(layers[0])
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(world.dir, dir); err != nil {
		t.Fatal(err)
	}
	if out, _, code := h.runBounded("store", "verify"); code != 1 || !strings.Contains(out, filepath.Base(dir)+": not a directory") {
		t.Errorf("store verify: exit %d\n%s", code, out)
	}
	h.mustRun("store", "verify", "--remove")
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("store verify --remove left it: %v", err)
	}
	world.untouched(t)
	if err := os.Symlink(world.dir, dir); err != nil {
		t.Fatal(err)
	}
	if got := h.runImage("app:1", "sh", "-c", "cat /top; ls /secret 2>&1 | grep -v 'No such'; true"); got != "top\n" {
		t.Errorf("run over a layer that is a symlink to the host: %q", got)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		t.Errorf("the layer was not unpacked again: %v %v", fi, err)
	}
	h.mustRun("store", "verify")
	world.untouched(t)
}
