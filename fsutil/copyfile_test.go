package fsutil

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
)

// TestCopyContent copies files of awkward sizes within one file system
// (copy_file_range) and into another (a tmpfs, where the kernel refuses
// it and read/write takes over), and checks contents and metadata.
func TestCopyContent(t *testing.T) {
	testutil.RequiresRoot(t)
	buf := 128 << 10 // copyBufs' size
	sizes := []int{0, 1, 4095, 4096, buf - 1, buf, buf + 1, 3*buf + 7, 1 << 20}
	src := t.TempDir()
	var nodes []node
	for _, n := range sizes {
		body := strings.Repeat(fmt.Sprintf("%07d\n", n), n/8+1)[:n]
		nodes = append(nodes, file(fmt.Sprintf("d/f%07d", n), body).withMode(0o640).withOwner(3, 4).withMtime(1500000000+int64(n)))
	}
	nodes = append(nodes, file("d/x", "x\n").withXattr("user.k", "v"))
	writeTree(t, src, nodes...)

	tmpfs := t.TempDir()
	if err := unix.Mount("tmpfs", tmpfs, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(tmpfs, unix.MNT_DETACH) })

	for name, dst := range map[string]string{"same file system": t.TempDir(), "another file system": tmpfs} {
		t.Run(name, func(t *testing.T) {
			req := CopyRequest{SrcRoot: src, DstRoot: dst, Sources: []string{"d"}, Dest: "/out/", KeepOwners: true}
			if err := Copy(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			for _, n := range sizes {
				rel := fmt.Sprintf("f%07d", n)
				want, _ := os.ReadFile(filepath.Join(src, "d", rel))
				got, err := os.ReadFile(filepath.Join(dst, "out", rel))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: %d bytes (%v), want %d", rel, len(got), err, len(want))
				}
				st := lstat(t, filepath.Join(dst, "out", rel))
				if st.Mode&0o7777 != 0o640 || st.Uid != 3 || st.Gid != 4 || st.Mtim.Sec != 1500000000+int64(n) {
					t.Errorf("%s: mode %o owner %d:%d mtime %d", rel, st.Mode&0o7777, st.Uid, st.Gid, st.Mtim.Sec)
				}
			}
			if v, err := getXattr(filepath.Join(dst, "out/x"), "user.k"); err != nil || v != "v" {
				// tmpfs keeps user xattrs since Linux 6.6.
				t.Errorf("xattr user.k = %q, %v", v, err)
			}
		})
	}
}

// TestCopyMergesSources: two sources with the same paths, copied into one
// directory; the second's files replace the first's (the directories the
// first made are not new to the second).
func TestCopyMergesSources(t *testing.T) {
	testutil.RequiresRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, file("a/sub/x", "a\n"), file("a/y", "a\n"), file("b/sub/x", "b\n"), symlink("b/y", "sub/x"))
	req := CopyRequest{SrcRoot: src, DstRoot: dst, Sources: []string{"a", "b"}, Dest: "/out/"}
	if err := Copy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	got := listing(t, dst, "/out")
	want := "/out\td\t0755\t0:0\n/out/sub\td\t0755\t0:0\n/out/sub/x\tf\t0644\t0:0\t" + shaB + "\n/out/y\tl\t-\t0:0\t-> sub/x\n"
	if got != want {
		t.Errorf("destination:\n%s\nwant:\n%s", got, want)
	}
}

// TestCopyManyFiles copies a tree larger than a directory listing's buffer
// (so the walk reads directories in several getdents calls) and checks
// every file arrived.
func TestCopyManyFiles(t *testing.T) {
	testutil.RequiresRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	long := strings.Repeat("n", 200)
	var nodes []node
	for i := range 600 {
		nodes = append(nodes, file(fmt.Sprintf("big/%s%04d", long, i), fmt.Sprint(i)))
	}
	for i := range 40 {
		nodes = append(nodes, file(fmt.Sprintf("deep/%d/%d/f", i%4, i), "d"))
	}
	writeTree(t, src, nodes...)
	if err := Copy(context.Background(), CopyRequest{SrcRoot: src, DstRoot: dst, Sources: []string{"."}, Dest: "/"}); err != nil {
		t.Fatal(err)
	}
	if got, want := listing(t, dst), listing(t, src); got != want {
		g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := range min(len(g), len(w)) {
			if g[i] != w[i] {
				t.Fatalf("copy differs from its source at line %d:\n%s\nwant:\n%s\n%s", i, g[i], w[i], strings.Join(g[i:min(len(g), i+5)], "\n"))
			}
		}
		t.Fatalf("copy has %d lines, its source %d", len(g), len(w))
	}
	_, list, err := DigestEntries(context.Background(), CopyRequest{SrcRoot: src, Sources: []string{"."}, Dest: "/"})
	if err != nil {
		t.Fatal(err)
	}
	entries := list()
	if n := len(entries); n != 1+1+600+1+4+40+40 {
		t.Errorf("%d entries", n)
	}
	for i := 1; i < len(entries); i++ {
		if !pathBefore(entries[i-1].Path, entries[i].Path) {
			t.Errorf("%s listed before %s", entries[i-1].Path, entries[i].Path)
		}
	}
}

// pathBefore reports whether a comes before b in walk order: parents
// first, siblings by name.
func pathBefore(a, b string) bool {
	if a == "." {
		return true
	}
	return strings.Compare(strings.ReplaceAll(a, "/", "\x00"), strings.ReplaceAll(b, "/", "\x00")) < 0
}

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func getXattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
