package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/builder-dev/builder/internal/testutil"
)

// archiveEdit rewrites a tar: edit gets each entry's name and content and
// returns the new content, or nil to drop the entry.
func archiveEdit(t *testing.T, src []byte, edit func(name string, body []byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tr := tar.NewReader(bytes.NewReader(src))
	tw := tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if body = edit(h.Name, body); body == nil {
			continue
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// Bad archives and bad import input fail and leave every file of the
// store as it was.
func TestBadInputLeavesStoreUnchanged(t *testing.T) {
	h := newHarness(t)
	app := h.context("FROM base/busybox:1\nRUN echo one > /one\nRUN echo two > /two\n", map[string]string{})
	h.build(app, "app:1")
	tmp := t.TempDir()
	good := filepath.Join(tmp, "good.tar")
	h.mustRun("save", "-o", good, "app:1")
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// The docker-archive's config, as manifest.json names it.
	var manifest []struct{ Config string }
	archiveEdit(t, goodBytes, func(name string, body []byte) []byte {
		if name == "manifest.json" {
			if err := json.Unmarshal(body, &manifest); err != nil {
				t.Fatal(err)
			}
		}
		return body
	})
	if len(manifest) != 1 {
		t.Fatalf("manifest.json: %+v", manifest)
	}
	// The last layer's diff_id changed: the first layers check out and
	// are staged before the last one fails.
	mismatched := archiveEdit(t, goodBytes, func(name string, body []byte) []byte {
		if name != manifest[0].Config {
			return body
		}
		var cfg map[string]any
		if err := json.Unmarshal(body, &cfg); err != nil {
			t.Fatal(err)
		}
		ids := cfg["rootfs"].(map[string]any)["diff_ids"].([]any)
		ids[len(ids)-1] = "sha256:" + strings.Repeat("ab", 32)
		b, _ := json.Marshal(cfg)
		return b
	})
	nonJSON := archiveEdit(t, goodBytes, func(name string, body []byte) []byte {
		if name == "manifest.json" {
			return []byte("[{not json")
		}
		return body
	})
	text := []byte("this is not a tar archive\n")
	cases := []struct {
		name  string
		args  []string
		stdin []byte
		file  []byte
	}{
		{name: "load truncated", args: []string{"load", "-i", "in.tar"}, file: goodBytes[:len(goodBytes)*2/3]},
		{name: "load non-JSON manifest", args: []string{"load", "-i", "in.tar"}, file: nonJSON},
		{name: "load mismatched diff_id", args: []string{"load", "-i", "in.tar"}, file: mismatched},
		{name: "load non-tar", args: []string{"load", "-i", "in.tar"}, file: text},
		{name: "load non-tar from stdin", args: []string{"load"}, stdin: text},
		{name: "load mismatched diff_id from stdin", args: []string{"load"}, stdin: mismatched},
		{name: "import non-tar", args: []string{"import", "in.tar", "imp:1"}, file: text},
		{name: "import empty file", args: []string{"import", "in.tar", "imp:1"}, file: []byte{}},
		{name: "import non-tar from stdin", args: []string{"import", "-", "imp:1"}, stdin: text},
	}
	before := testutil.Listing(t, h.root)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != nil {
				if err := os.WriteFile(filepath.Join(dir, "in.tar"), tc.file, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, errOut, code := h.runIn(dir, tc.stdin, tc.args...)
			if code == 0 {
				t.Fatalf("builder %v succeeded on bad input", tc.args)
			}
			if strings.Contains(errOut, "panic") {
				t.Errorf("builder %v panicked:\n%s", tc.args, errOut)
			}
			if after := testutil.Listing(t, h.root); after != before {
				t.Errorf("builder %v changed the store:\n%s", tc.args, diffLines(before, after))
			}
		})
	}
	// The good archive still loads into the same store.
	h.mustRun("load", "-i", good)
}

// diffLines shows the lines only one of a and b has.
func diffLines(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out strings.Builder
	for l := range ma {
		if !mb[l] {
			fmt.Fprintf(&out, "- %s\n", l)
		}
	}
	for l := range mb {
		if !ma[l] {
			fmt.Fprintf(&out, "+ %s\n", l)
		}
	}
	return out.String()
}

// import prints the image ID (as images and inspect show it), from a file
// named relatively, from stdin with and without a name; load reads stdin.
func TestImportPrintsIDAndReadsStdin(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	layer := testutil.Tar(t, testutil.TarEntry{Name: "hello", Body: "hi\n"})
	if err := os.WriteFile(filepath.Join(dir, "rootfs.tar"), layer, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		stdin []byte
		ref   string // how to find the image afterwards
	}{
		{args: []string{"import", "rootfs.tar", "fromfile:1"}, ref: "fromfile:1"},
		{args: []string{"import", "-", "fromstdin:1"}, stdin: layer, ref: "fromstdin:1"},
		{args: []string{"import", "-"}, stdin: layer},
	} {
		out, errOut, code := h.runIn(dir, tc.stdin, tc.args...)
		if code != 0 {
			t.Fatalf("builder %v: exit %d: %s", tc.args, code, errOut)
		}
		id := strings.TrimSpace(out)
		if !strings.HasPrefix(id, "sha256:") || len(id) != len("sha256:")+64 {
			t.Fatalf("builder %v printed %q, want sha256:<image ID>", tc.args, out)
		}
		ref := tc.ref
		if ref == "" {
			ref = id
		}
		if got := h.inspect(ref).ID; got != id {
			t.Errorf("builder %v printed %s; inspect %s says Id %s", tc.args, id, ref, got)
		}
		if !strings.Contains(h.mustRun("images"), id[len("sha256:"):len("sha256:")+12]) {
			t.Errorf("images does not list %s", id)
		}
	}
	saved := filepath.Join(dir, "saved.tar")
	h.mustRun("save", "-o", saved, "fromstdin:1")
	archive, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	h.mustRun("rmi", "fromstdin:1")
	out, errOut, code := h.runIn(dir, archive, "load")
	if code != 0 || !strings.Contains(out, "Loaded image: fromstdin:1") {
		t.Fatalf("load from stdin: exit %d\n%s%s", code, out, errOut)
	}
}

// Archives are written 0666 less the umask, as docker's, whatever writes
// them: save, and build -o for every archive type.
func TestArchiveFileMode(t *testing.T) {
	h := newHarness(t)
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	app := h.context("FROM base/busybox:1\nRUN echo one > /one\n", map[string]string{})
	h.runIn(dir, nil, "save", "-o", "saved.tar", "base/busybox:1")
	h.runIn(dir, nil, "save", "--format", "oci", "-o", "saved-oci.tar", "base/busybox:1")
	for _, typ := range []string{"oci", "docker", "tar"} {
		if _, errOut, code := h.runIn(dir, nil, "build", "-q", "-o", "type="+typ+",dest=out-"+typ+".tar", app); code != 0 {
			t.Fatalf("build -o type=%s: %s", typ, errOut)
		}
	}
	for _, name := range []string{"saved.tar", "saved-oci.tar", "out-oci.tar", "out-docker.tar", "out-tar.tar"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644 (0666 less umask 022)", name, fi.Mode().Perm())
		}
	}
}

// Sizes are the layers' content sizes, as Docker's, and agree across
// images, history, inspect and ps -s: a file of N bytes adds N, an empty
// RUN layer is 0B.
func TestSizesAreContentSizes(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	// What the base's layer holds, counted as Docker counts a layer.
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	var base int64
	seen := map[uint64]bool{}
	filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if !seen[st.Ino] {
			seen[st.Ino] = true
			base += st.Size
		}
		return nil
	})
	const n = 123456
	app := h.context("FROM base/busybox:1\nCOPY big /big\nRUN true\n", map[string]string{"big": strings.Repeat("x", n)})
	h.build(app, "app:1")

	var insp []struct{ Size int64 }
	for ref, want := range map[string]int64{"base/busybox:1": base, "app:1": base + n} {
		if err := json.Unmarshal([]byte(h.mustRun("inspect", ref)), &insp); err != nil || len(insp) != 1 {
			t.Fatalf("inspect %s: %v", ref, err)
		}
		if insp[0].Size != want {
			t.Errorf("inspect %s: Size %d, want %d", ref, insp[0].Size, want)
		}
	}
	images := h.mustRun("images")
	for _, line := range strings.Split(images, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "REPOSITORY" {
			continue
		}
		want := humanSize(base)
		if f[0] == "app" {
			want = humanSize(base + n)
		}
		if f[len(f)-1] != want {
			t.Errorf("images: %s shows %s, want %s\n%s", f[0], f[len(f)-1], want, images)
		}
	}
	hist := h.mustRun("history", "app:1")
	lines := strings.Split(hist, "\n")
	// Newest first: RUN true, COPY big, then the import.
	if !strings.Contains(lines[1], "-c true") || !strings.Contains(lines[1], " 0B ") {
		t.Errorf("history: the empty RUN layer should show 0B:\n%s", hist)
	}
	if !strings.Contains(lines[2], "COPY big") || !strings.Contains(lines[2], " "+humanSize(n)+" ") {
		t.Errorf("history: the COPY layer should show %s:\n%s", humanSize(n), hist)
	}
	if !strings.Contains(lines[3], " "+humanSize(base)+" ") {
		t.Errorf("history: the base layer should show %s:\n%s", humanSize(base), hist)
	}
	// ps -s: VIRTUAL SIZE less SIZE is the image's size.
	h.mustRun("run", "--name", "sized", "app:1", "true")
	e := h.ps("-a", "-s")["sized"]
	if e.VirtualSize == nil || e.SizeRw == nil {
		t.Fatalf("ps -s gave no sizes: %+v", e)
	}
	if got := *e.VirtualSize - *e.SizeRw; got != base+n {
		t.Errorf("ps -s: VIRTUAL SIZE - SIZE = %d, want the image size %d", got, base+n)
	}
}
