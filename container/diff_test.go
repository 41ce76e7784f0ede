package container

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
)

// node is one entry of a test tree, in overlay form.
type node struct {
	path     string
	dir      bool
	body     string // a regular file's content
	symlink  string
	whiteout bool // a 0/0 character device
	opaque   bool // a directory with trusted.overlay.opaque=y
}

func mkTree(t *testing.T, root string, nodes ...node) {
	t.Helper()
	for _, n := range nodes {
		p := filepath.Join(root, n.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case n.dir:
			err = os.MkdirAll(p, 0o755)
			if err == nil && n.opaque {
				err = unix.Lsetxattr(p, "trusted.overlay.opaque", []byte("y"), 0)
			}
		case n.symlink != "":
			err = os.Symlink(n.symlink, p)
		case n.whiteout:
			err = unix.Mknod(p, unix.S_IFCHR, 0)
		default:
			err = os.WriteFile(p, []byte(n.body), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func dirNode(p string) node    { return node{path: p, dir: true} }
func file(p, body string) node { return node{path: p, body: body} }

func changeLines(cs []Change) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(c.String() + "\n")
	}
	return b.String()
}

func TestDiff(t *testing.T) {
	testutil.RequiresRoot(t) // whiteouts are devices; opaque is a trusted xattr
	base, top, upper := t.TempDir(), t.TempDir(), t.TempDir()
	mkTree(t, base,
		dirNode("etc"), file("etc/passwd", "root"), file("etc/group", "root"),
		dirNode("var/lib/a"), file("var/lib/a/x", "x"), file("var/lib/a/y", "y"),
		dirNode("opt/old"), file("opt/old/f", "f"),
		node{path: "lib", symlink: "/etc"}, // never followed on the host
		dirNode("usr"), file("usr/gone", "g"),
	)
	mkTree(t, top,
		dirNode("var/lib/a"), file("var/lib/a/z", "z"), node{path: "var/lib/a/y", whiteout: true},
		dirNode("usr"), node{path: "usr/gone", whiteout: true},
	)
	mkTree(t, upper,
		dirNode("etc"), file("etc/passwd", "changed"), node{path: "etc/group", whiteout: true}, file("etc/new", "n"),
		node{path: "var/lib/a", dir: true, opaque: true}, file("var/lib/a/x", "kept"),
		dirNode("opt"), node{path: "opt/old", whiteout: true},
		dirNode("lib2"), file("lib2/passwd", "p"),
		dirNode("usr"), file("usr/gone", "back"),
		// Runner stubs of a running container.
		file("etc/resolv.conf", ""), dirNode("proc"), dirNode("data"),
		dirNode("root"), file("root/hosts", ""),
	)
	ctx := context.Background()
	got, err := Diff(ctx, upper, []string{top, base}, DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Sorted by path, as docker diff.
	want := strings.Join([]string{
		"A /data", "C /etc", "D /etc/group", "A /etc/new", "C /etc/passwd", "A /etc/resolv.conf",
		"A /lib2", "A /lib2/passwd", "C /opt", "D /opt/old", "A /proc", "A /root", "A /root/hosts",
		"C /usr", "A /usr/gone", "C /var", "C /var/lib", "C /var/lib/a", "C /var/lib/a/x", "D /var/lib/a/z",
	}, "\n") + "\n"
	if s := changeLines(got); s != want {
		t.Errorf("Diff:\n%s\nwant:\n%s", s, want)
	}

	// A running container: its runner's stubs are no change, nor is a
	// directory copied up only to hold one.
	got, err = Diff(ctx, upper, []string{top, base}, DiffOptions{Stubs: []string{"etc/resolv.conf", "proc", "/data", "root/hosts", "root"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		switch c.Path {
		case "/etc/resolv.conf", "/proc", "/data", "/root/hosts", "/root":
			t.Errorf("stub listed: %s", c)
		}
	}
	if !strings.Contains(changeLines(got), "C /etc\n") {
		t.Errorf("/etc has real changes and must stay: %s", changeLines(got))
	}
}

func TestDiffStubParents(t *testing.T) {
	testutil.RequiresRoot(t)
	base, upper := t.TempDir(), t.TempDir()
	mkTree(t, base, dirNode("etc"), file("etc/passwd", "root"), dirNode("mnt"))
	mkTree(t, upper, dirNode("etc"), file("etc/hosts", ""), dirNode("mnt/a/b"))
	got, err := Diff(context.Background(), upper, []string{base}, DiffOptions{Stubs: []string{"etc/hosts", "mnt/a/b", "mnt/a", "mnt"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("Diff of stubs only = %v", got)
	}
}

func TestLowerFS(t *testing.T) {
	testutil.RequiresRoot(t)
	base, mid, top := t.TempDir(), t.TempDir(), t.TempDir()
	mkTree(t, base, dirNode("d"), file("d/a", ""), file("d/b", ""), dirNode("e"), file("e/x", ""), file("f", ""))
	mkTree(t, mid, node{path: "d", dir: true, opaque: true}, file("d/c", ""), node{path: "e", whiteout: true})
	mkTree(t, top, dirNode("e"), file("e/y", ""), node{path: "link", symlink: base})
	l := lowerFS{top, mid, base}
	for rel, want := range map[string]bool{
		"": true, "d": true, "d/a": false, "d/c": true, "e": true, "e/x": false, "e/y": true, "f": true,
		"link": true, "link/f": false, "nope": false,
	} {
		if got := l.exists(rel); got != want {
			t.Errorf("exists(%q) = %v", rel, got)
		}
	}
	if got := strings.Join(l.list("d"), ","); got != "c" {
		t.Errorf("list(d) = %s", got)
	}
	if got := strings.Join(l.list("e"), ","); got != "y" {
		t.Errorf("list(e) = %s", got)
	}
	if got := strings.Join(l.list(""), ","); got != "d,e,f,link" {
		t.Errorf("list() = %s", got)
	}
}

func TestDirSize(t *testing.T) {
	dir := t.TempDir()
	mkTree(t, dir, file("a", "12345"), dirNode("d"), file("d/b", "123"), node{path: "l", symlink: "abcdefgh"})
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "d", "hard")); err != nil {
		t.Fatal(err)
	}
	n, err := DirSize(context.Background(), dir)
	if err != nil || n != 5+3+8 {
		t.Errorf("DirSize = %d, %v; want 16 (hard link once, symlink by its target's length)", n, err)
	}
}
