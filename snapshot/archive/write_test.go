package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/builder-dev/builder/internal/testutil"
	"golang.org/x/sys/unix"
)

// node is one entry of a test tree on disk, by named fields. Kind is one
// of dir, file, symlink, hardlink (to Link), char, block, fifo, socket,
// whiteout; Mode defaults to 0644 (0755 for directories).
type node struct {
	Path         string
	Kind         string
	Mode         uint32
	UID, GID     int
	Body         string
	Link         string
	Major, Minor uint32
	Xattrs       map[string]string
	ModTime      time.Time
}

// build makes nodes under dir with plain syscalls (not Apply, which is
// tested against this), then sets times, directories last.
func build(t testing.TB, dir string, nodes ...node) {
	t.Helper()
	for _, n := range nodes {
		p := filepath.Join(dir, n.Path)
		mode := n.Mode
		if mode == 0 {
			mode = 0o644
			if n.Kind == "dir" {
				mode = 0o755
			}
		}
		var err error
		switch n.Kind {
		case "dir":
			err = os.Mkdir(p, 0o700)
		case "file", "":
			err = os.WriteFile(p, []byte(n.Body), 0o600)
		case "symlink":
			err = os.Symlink(n.Link, p)
		case "hardlink":
			err = os.Link(filepath.Join(dir, n.Link), p)
		case "char":
			err = unix.Mknod(p, unix.S_IFCHR, int(unix.Mkdev(n.Major, n.Minor)))
		case "block":
			err = unix.Mknod(p, unix.S_IFBLK, int(unix.Mkdev(n.Major, n.Minor)))
		case "fifo":
			err = unix.Mknod(p, unix.S_IFIFO, 0)
		case "socket":
			err = unix.Mknod(p, unix.S_IFSOCK, 0)
		case "whiteout":
			err = unix.Mknod(p, unix.S_IFCHR, 0)
		default:
			t.Fatalf("unknown kind %q", n.Kind)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n.Kind == "hardlink" {
			continue
		}
		if err := os.Lchown(p, n.UID, n.GID); err != nil {
			t.Fatal(err)
		}
		if n.Kind != "symlink" && n.Kind != "whiteout" {
			if err := unix.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
		for k, v := range n.Xattrs {
			if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
				t.Fatalf("setxattr %s on %s: %v", k, n.Path, err)
			}
		}
	}
	// Directories last and deepest first: setting a child's time does
	// not touch its parent, but creating one does.
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if n.Kind == "hardlink" {
			continue
		}
		mt := n.ModTime
		if mt.IsZero() {
			mt = t0
		}
		ts := []unix.Timespec{timespec(mt), timespec(mt)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, n.Path), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

var longName = "d/" + strings.Repeat("long", 30)

// overlayTree is an upper dir as overlayfs leaves it after a busy RUN.
var overlayTree = []node{
	{Path: "bin", Kind: "dir"},
	{Path: "bin/su", Mode: 0o4755, Body: "#!su", Xattrs: map[string]string{"security.capability": capNetBindService}},
	{Path: "bin/su2", Kind: "hardlink", Link: "bin/su"},
	{Path: "bin/sh", Kind: "symlink", Link: "su"},
	{Path: "bin/sg", Mode: 0o2711, UID: 1000, GID: 50, Body: "sg"},
	{Path: "d", Kind: "dir", Mode: 0o700, Xattrs: map[string]string{overlayOpaque: "y", "trusted.overlay.impure": "y"}},
	{Path: "d/f", Body: "f", Xattrs: map[string]string{"trusted.overlay.origin": "\x00\xfb", "user.keep": "me"}},
	{Path: longName, Body: "long"},
	{Path: "dev", Kind: "dir"},
	{Path: "dev/loop9", Kind: "block", Mode: 0o660, GID: 6, Major: 7, Minor: 9},
	{Path: "dev/null", Kind: "char", Mode: 0o666, Major: 1, Minor: 3},
	{Path: "gone", Kind: "whiteout"},
	// Overlayfs links whiteouts to one shared inode: not hardlinks.
	{Path: "gone2", Kind: "hardlink", Link: "gone"},
	{Path: "run", Kind: "dir"},
	{Path: "run/fifo", Kind: "fifo", Mode: 0o600, UID: 7},
	{Path: "run/sock", Kind: "socket"},
	{Path: "tmp", Kind: "dir", Mode: 0o1777, Xattrs: map[string]string{"user.note": "scratch"}},
	{Path: "a-b", Body: "sorts between a and a/"},
	{Path: "a", Kind: "dir"},
	{Path: "a/x", Body: "x"},
	{Path: "a/.wh-not-a-whiteout", Body: "ordinary"},
}

// overlayTreeTar is overlayTree as WriteLayer lists it: depth first, the
// names of each directory in byte order, a whiteout sorted by its tar name.
var overlayTreeTar = []string{
	".wh.gone 0000 0:0 \"\"",
	".wh.gone2 0000 0:0 \"\"",
	"a/ 0755 0:0 dir",
	"a/.wh-not-a-whiteout 0644 0:0 \"ordinary\"",
	"a/x 0644 0:0 \"x\"",
	"a-b 0644 0:0 \"sorts between a and a/\"",
	"bin/ 0755 0:0 dir",
	"bin/sg 2711 1000:50 \"sg\"",
	"bin/sh 0777 0:0 -> su",
	"bin/su 4755 0:0 \"#!su\" security.capability=0x0100000200040000000000000000000000000000",
	"bin/su2 4755 0:0 link bin/su",
	"d/ 0700 0:0 dir",
	"d/.wh..wh..opq 0000 0:0 \"\"",
	"d/f 0644 0:0 \"f\" user.keep=me",
	longName + " 0644 0:0 \"long\"",
	"dev/ 0755 0:0 dir",
	"dev/loop9 0660 0:6 4 7/9",
	"dev/null 0666 0:0 3 1/3",
	"run/ 0755 0:0 dir",
	"run/fifo 0600 7:0 fifo",
	"tmp/ 1777 0:0 dir user.note=scratch",
}

func TestWriteLayer(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	build(t, dir, overlayTree...)
	data := writeLayer(t, dir, WriteOptions{})
	assertLines(t, listTar(t, data), overlayTreeTar)

	// Every header is plain: numeric ids only, whole-second mtimes, no
	// atime/ctime, no leading "./" or "/".
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: uname %q gname %q atime %v ctime %v", h.Name, h.Uname, h.Gname, h.AccessTime, h.ChangeTime)
		}
		if !h.ModTime.Equal(t0) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, t0)
		}
		if strings.HasPrefix(h.Name, "/") || strings.HasPrefix(h.Name, "./") {
			t.Errorf("%s: not a clean relative name", h.Name)
		}
	}
}

func TestWriteLayerDeterministic(t *testing.T) {
	testutil.RequiresRoot(t)
	a, b := t.TempDir(), t.TempDir()
	build(t, a, overlayTree...)
	// Same tree, created in another order (other inodes, other on-disk
	// directory order), at a different sub-second time.
	rev := slices.Clone(overlayTree)
	slices.SortStableFunc(rev, func(x, y node) int {
		return strings.Count(x.Path, "/") - strings.Count(y.Path, "/") // parents first
	})
	slices.Reverse(rev[:4])
	for i := range rev {
		if rev[i].ModTime.IsZero() {
			rev[i].ModTime = t0.Add(999 * time.Millisecond)
		}
	}
	build(t, b, rev...)

	first := writeLayer(t, a, WriteOptions{})
	if again := writeLayer(t, a, WriteOptions{}); !bytes.Equal(first, again) {
		t.Errorf("two writes of one tree differ")
	}
	if other := writeLayer(t, b, WriteOptions{}); !bytes.Equal(first, other) {
		t.Errorf("writes of equal trees differ:\n%s\n---\n%s", strings.Join(listTar(t, first), "\n"), strings.Join(listTar(t, other), "\n"))
	}
}

func TestWriteLayerSourceDateEpoch(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	epoch := t0
	old := t0.Add(-time.Hour)
	build(t, dir,
		node{Path: "d", Kind: "dir", ModTime: t0.Add(time.Hour)},
		node{Path: "d/old", ModTime: old},
		node{Path: "d/new", ModTime: t0.Add(time.Minute)},
		node{Path: "gone", Kind: "whiteout", ModTime: t0.Add(time.Second)},
	)
	data := writeLayer(t, dir, WriteOptions{SourceDateEpoch: &epoch})
	want := map[string]time.Time{"d/": t0, "d/old": old, "d/new": t0, ".wh.gone": t0}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if !h.ModTime.Equal(want[h.Name]) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, want[h.Name])
		}
		delete(want, h.Name)
	}
	if len(want) > 0 {
		t.Errorf("missing entries: %v", want)
	}
}

// TestRoundTrip writes a tree, applies the tar into a fresh overlay-form
// dir, and writes that again: the two tars must be byte-identical and the
// trees equal but for overlay bookkeeping xattrs.
func TestRoundTrip(t *testing.T) {
	testutil.RequiresRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	build(t, src, overlayTree...)
	first := writeLayer(t, src, WriteOptions{})
	n, err := Apply(t.Context(), dst, bytes.NewReader(first), ApplyOptions{Overlay: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len("#!su" + "sg" + "f" + "long" + "sorts between a and a/" + "x" + "ordinary")); n != want {
		t.Errorf("Apply wrote %d bytes, want %d", n, want)
	}
	second := writeLayer(t, dst, WriteOptions{})
	if !bytes.Equal(first, second) {
		assertLines(t, listTar(t, second), listTar(t, first))
		t.Fatal("round trip changed the tar")
	}

	var want []string
	for _, l := range describeTree(t, src) {
		if strings.HasPrefix(l, "run/sock ") {
			continue // tar has no sockets
		}
		l = strings.ReplaceAll(l, " trusted.overlay.impure=y", "")
		l = strings.ReplaceAll(l, " trusted.overlay.origin=0x00fb", "")
		// The shared whiteout inode is two whiteouts after the trip.
		l = strings.ReplaceAll(l, " =gone", "")
		want = append(want, l)
	}
	assertLines(t, describeTree(t, dst), want)
}

// TestApplyRootfsFromWriteLayer checks that the whiteouts WriteLayer makes
// delete what they should when applied onto a full root filesystem.
func TestApplyRootfsFromWriteLayer(t *testing.T) {
	testutil.RequiresRoot(t)
	rootfs, upper := t.TempDir(), t.TempDir()
	build(t, rootfs,
		node{Path: "d", Kind: "dir"}, node{Path: "d/old", Body: "o"},
		node{Path: "gone", Body: "g"}, node{Path: "keep", Body: "k"},
	)
	build(t, upper,
		node{Path: "d", Kind: "dir", Xattrs: map[string]string{overlayOpaque: "y"}}, node{Path: "d/new", Body: "n"},
		node{Path: "gone", Kind: "whiteout"},
	)
	if _, err := Apply(t.Context(), rootfs, bytes.NewReader(writeLayer(t, upper, WriteOptions{})), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	assertLines(t, describeTree(t, rootfs), []string{
		"d 0755 0:0 dir",
		"d/new 0644 0:0 \"n\"",
		"keep 0644 0:0 \"k\"",
	})
}
