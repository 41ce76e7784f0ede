package snapshot

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/snapshot/archive"
)

func newSnapshotter(t *testing.T) *Snapshotter {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mountAt mounts ms at a fresh directory; the returned func unmounts (it
// also runs at cleanup, so a failing test leaves nothing mounted).
func mountAt(t *testing.T, ms []mount.Mount) (string, func()) {
	t.Helper()
	dir := t.TempDir()
	if err := mount.All(ms, dir); err != nil {
		t.Fatal(err)
	}
	unmount := func() {
		if err := mount.Unmount(dir); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(unmount)
	return dir, unmount
}

// layerTar is a layer of regular files and directories (names ending in
// "/"), in the order given.
func layerTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	entries := make([]testutil.TarEntry, 0, len(names))
	for _, n := range names {
		e := testutil.TarEntry{Name: n, Body: files[n]}
		if strings.HasSuffix(n, "/") {
			e = testutil.TarEntry{Name: n, Type: tar.TypeDir}
		}
		entries = append(entries, e)
	}
	return testutil.Tar(t, entries...)
}

// unpack unpacks layer on top of parent under its proper chain ID.
func unpack(t *testing.T, s *Snapshotter, parent Committed, layer []byte) Committed {
	t.Helper()
	chainID := digest.FromBytes(layer)
	if len(parent.Chain) > 0 {
		chainID = identity.ChainID([]digest.Digest{parent.Top(), chainID})
	}
	c, err := s.Unpack(t.Context(), parent, chainID, bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// listLayer renders a layer tar as "name" lines, regular files with their
// content, symlinks with their target.
func listLayer(t *testing.T, data []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		switch h.Typeflag {
		case tar.TypeReg:
			out = append(out, fmt.Sprintf("%s %04o %q", h.Name, h.Mode, body))
		case tar.TypeSymlink:
			out = append(out, fmt.Sprintf("%s -> %s", h.Name, h.Linkname))
		default:
			out = append(out, fmt.Sprintf("%s %04o %c", h.Name, h.Mode, h.Typeflag))
		}
	}
}

func assertLines(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("got:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func writeLayer(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := archive.WriteLayer(t.Context(), dir, &buf, archive.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: want it gone, lstat says %v", p, err)
	}
}

// TestDiff is the whole life of a RUN: unpack a base, prepare, change
// things through the overlay, unmount, write the diff, commit, and view the
// result.
func TestDiff(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newSnapshotter(t)
	base := unpack(t, s, Committed{}, testutil.BusyboxLayer(t))
	base = unpack(t, s, base, layerTar(t, map[string]string{
		"data/":           "",
		"data/mv-src/":    "",
		"data/mv-src/a":   "a",
		"data/mv-src/b/":  "",
		"data/mv-src/b/c": "c",
		"data/old/":       "",
		"data/old/x":      "x",
		"data/chmod":      "m",
	}))

	active, err := s.Prepare(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { active.Remove(t.Context()) })
	root, unmount := mountAt(t, active.Mounts())

	if got := readFile(t, filepath.Join(root, "etc/passwd")); got != testutil.Passwd {
		t.Fatalf("etc/passwd through the overlay: %q", got)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "new.txt"), []byte("new"), 0o644))
	must(os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("changed"), 0o644))
	must(os.Remove(filepath.Join(root, "etc/group")))
	must(os.Remove(filepath.Join(root, "bin/ls")))
	must(os.Chmod(filepath.Join(root, "data/chmod"), 0o600))
	// Replace a lower directory: overlayfs makes the new one opaque.
	must(os.RemoveAll(filepath.Join(root, "data/old")))
	must(os.Mkdir(filepath.Join(root, "data/old"), 0o755))
	must(os.WriteFile(filepath.Join(root, "data/old/y"), []byte("y"), 0o644))
	// Rename a lower directory. With redirect_dir=off rename(2) refuses
	// (EXDEV), and mv copies and deletes instead; either way the upper
	// must be a plain diff.
	err = os.Rename(filepath.Join(root, "data/mv-src"), filepath.Join(root, "data/mv-dst"))
	if err == nil {
		t.Fatal("renaming a lower directory succeeded: the overlay would record a redirect, not a diff")
	}
	if !errors.Is(err, unix.EXDEV) {
		t.Fatalf("rename of a lower directory: %v, want EXDEV", err)
	}
	bb := testutil.Busybox(t)
	if out, err := exec.Command(bb, "mv", filepath.Join(root, "data/mv-src"), filepath.Join(root, "data/mv-dst")).CombinedOutput(); err != nil {
		t.Fatalf("busybox mv: %v: %s", err, out)
	}
	unmount()

	diff := writeLayer(t, active.UpperDir())
	assertLines(t, listLayer(t, diff), []string{
		"bin/ 0755 5",
		"bin/.wh.ls 0000 \"\"",
		"data/ 0755 5",
		"data/.wh.mv-src 0000 \"\"",
		"data/chmod 0600 \"m\"",
		"data/mv-dst/ 0755 5",
		"data/mv-dst/a 0644 \"a\"",
		"data/mv-dst/b/ 0755 5",
		"data/mv-dst/b/c 0644 \"c\"",
		"data/old/ 0755 5",
		"data/old/.wh..wh..opq 0000 \"\"",
		"data/old/y 0644 \"y\"",
		"etc/ 0755 5",
		"etc/.wh.group 0000 \"\"",
		"etc/passwd 0644 \"changed\"",
		"new.txt 0644 \"new\"",
	})

	chainID := identity.ChainID([]digest.Digest{base.Top(), digest.FromBytes(diff)})
	committed, err := active.Commit(t.Context(), chainID)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(slices.Clone(base.Chain), chainID); !slices.Equal(committed.Chain, want) {
		t.Fatalf("Commit returned %v, want %v", committed.Chain, want)
	}
	if !s.Has(chainID) {
		t.Fatal("committed layer missing")
	}
	if err := active.Remove(t.Context()); err != nil {
		t.Errorf("Remove after Commit: %v", err)
	}
	assertLines(t, listLayer(t, writeLayer(t, s.LayerDir(chainID))), listLayer(t, diff))

	view, _ := mountAt(t, s.View(committed))
	if got := readFile(t, filepath.Join(view, "data/mv-dst/b/c")); got != "c" {
		t.Errorf("data/mv-dst/b/c = %q", got)
	}
	if got := readFile(t, filepath.Join(view, "etc/passwd")); got != "changed" {
		t.Errorf("etc/passwd = %q", got)
	}
	mustNotExist(t, filepath.Join(view, "data/mv-src"))
	mustNotExist(t, filepath.Join(view, "data/old/x"))
	mustNotExist(t, filepath.Join(view, "etc/group"))
	mustNotExist(t, filepath.Join(view, "bin/ls"))
	if err := os.WriteFile(filepath.Join(view, "nope"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("writing into a view: %v, want EROFS", err)
	}

	// A single layer is also an overlay: its whiteouts do not show.
	one, _ := mountAt(t, s.View(Committed{Chain: []digest.Digest{chainID}}))
	names, err := os.ReadDir(filepath.Join(one, "etc"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0].Name() != "passwd" {
		t.Errorf("etc of the single layer: %v, want only passwd", names)
	}
}

func TestScratch(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newSnapshotter(t)
	view, _ := mountAt(t, s.View(Committed{}))
	if names, err := os.ReadDir(view); err != nil || len(names) != 0 {
		t.Fatalf("scratch view: %v, %v", names, err)
	}
	if err := os.WriteFile(filepath.Join(view, "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("writing into the scratch view: %v, want EROFS", err)
	}

	active, err := s.Prepare(t.Context(), Committed{})
	if err != nil {
		t.Fatal(err)
	}
	root, unmount := mountAt(t, active.Mounts())
	if err := os.MkdirAll(filepath.Join(root, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a/b/f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	unmount()
	diff := writeLayer(t, active.UpperDir())
	assertLines(t, listLayer(t, diff), []string{"a/ 0755 5", "a/b/ 0755 5", "a/b/f 0644 \"f\""})
	c, err := active.Commit(t.Context(), digest.FromBytes(diff))
	if err != nil {
		t.Fatal(err)
	}
	view, _ = mountAt(t, s.View(c))
	if got := readFile(t, filepath.Join(view, "a/b/f")); got != "f" {
		t.Errorf("a/b/f = %q", got)
	}
	if empty, err := os.ReadDir(s.emptyDir()); err != nil || len(empty) != 0 {
		t.Errorf("the empty dir is not empty: %v, %v", empty, err)
	}
}

// TestDeepChain mounts 150 layers: far more than fit in one page of mount
// options by path.
func TestDeepChain(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newSnapshotter(t)
	c := Committed{}
	const n = 150
	for i := range n {
		c = unpack(t, s, c, layerTar(t, map[string]string{fmt.Sprintf("layer-%03d", i): fmt.Sprint(i)}))
	}
	if opts := strings.Join(s.View(c)[0].Options, ","); len(opts) < 4096 {
		t.Fatalf("mount options are only %d bytes: the test does not test the long case", len(opts))
	}
	view, _ := mountAt(t, s.View(c))
	names, err := os.ReadDir(view)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != n {
		t.Errorf("view has %d entries, want %d", len(names), n)
	}

	active, err := s.Prepare(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { active.Remove(t.Context()) })
	root, unmount := mountAt(t, active.Mounts())
	if got := readFile(t, filepath.Join(root, "layer-000")); got != "0" {
		t.Errorf("layer-000 = %q", got)
	}
	if err := os.Remove(filepath.Join(root, "layer-000")); err != nil {
		t.Fatal(err)
	}
	unmount()
	assertLines(t, listLayer(t, writeLayer(t, active.UpperDir())), []string{".wh.layer-000 0000 \"\""})
}

func TestConcurrentUnpack(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newSnapshotter(t)
	// A second snapshotter on the same root stands in for another process.
	s2, err := New(s.root)
	if err != nil {
		t.Fatal(err)
	}
	layer := testutil.BusyboxLayer(t)
	chainID := digest.FromBytes(layer)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			sn := s
			if i%2 == 1 {
				sn = s2
			}
			_, errs[i] = sn.Unpack(t.Context(), Committed{}, chainID, bytes.NewReader(layer))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("unpack %d: %v", i, err)
		}
	}
	if !s.Has(chainID) {
		t.Fatal("layer missing")
	}
	if tmp, _ := os.ReadDir(s.tmpDir()); len(tmp) != 0 {
		t.Errorf("tmp dir not cleaned: %v", tmp)
	}
	if got := readFile(t, filepath.Join(s.LayerDir(chainID), "etc/passwd")); got != testutil.Passwd {
		t.Errorf("etc/passwd = %q", got)
	}
	// Once there, Unpack reads nothing.
	if _, err := s.Unpack(t.Context(), Committed{}, chainID, iotest{t}); err != nil {
		t.Fatal(err)
	}
}

type iotest struct{ t *testing.T }

func (r iotest) Read([]byte) (int, error) {
	r.t.Error("Unpack of a committed layer read its tar")
	return 0, io.EOF
}

func TestCommitExisting(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newSnapshotter(t)
	base := unpack(t, s, Committed{}, layerTar(t, map[string]string{"f": "f"}))
	chainID := digest.FromString("same step twice")
	for i := range 2 {
		a, err := s.Prepare(t.Context(), base)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a.UpperDir(), "g"), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := a.Commit(t.Context(), chainID)
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		if c.Top() != chainID || len(c.Chain) != 2 {
			t.Fatalf("commit %d: %v", i, c.Chain)
		}
	}
	if got := readFile(t, filepath.Join(s.LayerDir(chainID), "g")); got != "0" {
		t.Errorf("the first commit must win, g = %q", got)
	}
	if active, _ := os.ReadDir(s.activeDir()); len(active) != 0 {
		t.Errorf("active dirs left: %v", active)
	}
}

func TestRemoveAndOpen(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newSnapshotter(t)
	c := unpack(t, s, Committed{}, layerTar(t, map[string]string{"d/": "", "d/f": "f"}))
	a, err := s.Prepare(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.OpenActive(a.ID(), c)
	if err != nil || again.UpperDir() != a.UpperDir() {
		t.Fatalf("OpenActive: %v, %v", again, err)
	}
	if err := a.Remove(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenActive(a.ID(), c); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenActive of a removed snapshot: %v", err)
	}
	if _, err := s.OpenActive("../x", c); !errors.Is(err, ErrInvalid) {
		t.Errorf("OpenActive(../x): %v", err)
	}

	if err := s.Remove(t.Context(), c.Top()); err != nil {
		t.Fatal(err)
	}
	if s.Has(c.Top()) {
		t.Error("layer still there")
	}
	if err := s.Remove(t.Context(), c.Top()); err != nil {
		t.Errorf("removing a missing layer: %v", err)
	}
	if _, err := s.Prepare(t.Context(), c); !errors.Is(err, ErrNotFound) {
		t.Errorf("Prepare over a removed layer: %v", err)
	}
	if tmp, _ := os.ReadDir(s.tmpDir()); len(tmp) != 0 {
		t.Errorf("tmp dir not cleaned: %v", tmp)
	}
}

// TestMountsShape needs no root: the mounts are data.
func TestMountsShape(t *testing.T) {
	root := t.TempDir()
	s := &Snapshotter{root: root}
	a, b := digest.FromString("a"), digest.FromString("b")
	c := Committed{Chain: []digest.Digest{a, b}}
	want := "lowerdir=" + s.LayerDir(b) + ":" + s.LayerDir(a) + ":" + filepath.Join(root, "empty")
	if got := s.View(c)[0].Options; !slices.Contains(got, want) || !slices.Contains(got, "ro") {
		t.Errorf("View options %v, want %s and ro", got, want)
	}
	act := &Active{s: s, id: "x", parent: c}
	got := act.Mounts()
	if len(got) != 1 || got[0].Type != "overlay" || !slices.Contains(got[0].Options, want) ||
		!slices.Contains(got[0].Options, "upperdir="+act.UpperDir()) || !slices.Contains(got[0].Options, "redirect_dir=off") {
		t.Errorf("Mounts() = %+v", got)
	}
	if s.LayerDir("sha256:../../etc") != "" || s.Has("nonsense") {
		t.Error("an invalid chain ID named a directory")
	}
	// Top and the result of with never alias the parent's array.
	c2 := c.with(digest.FromString("c"))
	c3 := c.with(digest.FromString("d"))
	if c2.Top() == c3.Top() || c.Top() != b || (Committed{}).Top() != "" {
		t.Errorf("Committed.with aliases: %v %v", c2.Chain, c3.Chain)
	}
}

// Absent sees files, directories and whiteouts in any layer of the chain.
func TestAbsent(t *testing.T) {
	s := newSnapshotter(t)
	base := unpack(t, s, Committed{}, layerTar(t, map[string]string{"file": "x", "dir/": "", "gone": "x"}))
	// The upper layer deletes "gone": what it leaves is a whiteout.
	top := unpack(t, s, base, layerTar(t, map[string]string{".wh.gone": "", "new/": ""}))
	for name, want := range map[string]bool{"file": false, "dir": false, "gone": false, "new": false, "other": true} {
		got, err := s.Absent(top, name)
		if err != nil || got != want {
			t.Errorf("Absent(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if got, err := s.Absent(Committed{}, "anything"); err != nil || !got {
		t.Errorf("Absent over no layers = %v, %v", got, err)
	}
	for _, bad := range []string{"", ".", "..", "a/b"} {
		if _, err := s.Absent(top, bad); err == nil {
			t.Errorf("Absent(%q): want an error", bad)
		}
	}
}
