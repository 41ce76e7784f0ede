package fileop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
)

func TestDigest(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, file("d/a", "a\n"), file("d/sub/b", "b\n"), symlink("d/l", "a"), file("d/ignored.log", "x\n"), file("other", "c\n"))
	writeTree(t, dst, file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"), file("etc/group", "root:x:0:\n"))
	base := CopyRequest{SrcRoot: src, Sources: []string{"d"}, Dest: "/x/"}
	sum := func(req CopyRequest) digest.Digest {
		t.Helper()
		d, err := Digest(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d0 := sum(base)
	if err := d0.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := sum(base); d != d0 {
		t.Fatalf("digest not stable: %s then %s", d0, d)
	}
	change := func(name string, fn func(), req CopyRequest, wantSame bool) {
		t.Helper()
		fn()
		d := sum(req)
		if (d == d0) != wantSame {
			t.Errorf("%s: digest %s, before %s; want same=%v", name, d, d0, wantSame)
		}
	}
	nop := func() {}
	a := filepath.Join(src, "d/a")

	change("mtime only", func() {
		tm := time.Unix(1234567890, 0)
		if err := os.Chtimes(a, tm, tm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(src, "d"), tm, tm); err != nil {
			t.Fatal(err)
		}
	}, base, true)
	change("context owner only (reset to 0:0 anyway)", func() {
		if err := os.Lchown(a, 5, 5); err != nil {
			t.Fatal(err)
		}
	}, base, true)
	change("a file outside the selection", func() {
		if err := os.WriteFile(filepath.Join(src, "other"), []byte("C\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}, base, true)
	change("the destination", nop, CopyRequest{SrcRoot: src, Sources: []string{"d"}, Dest: "/elsewhere/"}, true)
	change("a filter that leaves all in", nop, CopyRequest{SrcRoot: src, Sources: []string{"d"}, Dest: "/x/", Filter: func(string, bool) bool { return true }}, true)

	change("one byte", func() {
		if err := os.WriteFile(a, []byte("A\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}, base, false)
	// Put it back, and the digest is back.
	if err := os.WriteFile(a, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	change("content restored", nop, base, true)

	change("the filter", nop, CopyRequest{SrcRoot: src, Sources: []string{"d"}, Dest: "/x/",
		Filter: func(rel string, _ bool) bool { return !strings.HasSuffix(rel, ".log") }}, false)
	change("chmod", nop, CopyRequest{SrcRoot: src, Sources: []string{"d"}, Dest: "/x/", Chmod: "600"}, false)
	change("chown", nop, CopyRequest{SrcRoot: src, Sources: []string{"d"}, Dest: "/x/", Chown: "1:1"}, false)
	change("chown by name, resolved", nop, CopyRequest{SrcRoot: src, DstRoot: dst, Sources: []string{"d"}, Dest: "/x/", Chown: "app"}, false)
	change("chown by name, unresolved", nop, CopyRequest{SrcRoot: src, Sources: []string{"d"}, Dest: "/x/", Chown: "app"}, false)
	change("kept owners", nop, CopyRequest{SrcRoot: src, Sources: []string{"d"}, Dest: "/x/", KeepOwners: true}, false)
	change("other sources", nop, CopyRequest{SrcRoot: src, Sources: []string{"d", "other"}, Dest: "/x/"}, false)

	for name, fn := range map[string]func(){
		"mode": func() {
			if err := os.Chmod(a, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"symlink target": func() {
			l := filepath.Join(src, "d/l")
			if err := os.Remove(l); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("sub/b", l); err != nil {
				t.Fatal(err)
			}
		},
		"new empty dir": func() {
			if err := os.Mkdir(filepath.Join(src, "d/new"), 0o755); err != nil {
				t.Fatal(err)
			}
		},
		"xattr": func() {
			if err := unix.Lsetxattr(filepath.Join(src, "d/sub/b"), "user.k", []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
		},
		"hard link": func() {
			if err := os.Link(filepath.Join(src, "d/sub/b"), filepath.Join(src, "d/b2")); err != nil {
				t.Fatal(err)
			}
		},
	} {
		before := sum(base)
		fn()
		if sum(base) == before {
			t.Errorf("%s: the digest did not change", name)
		}
		d0 = sum(base)
	}

	// A stat cache can supply what is read: what it says is what counts.
	var calls atomic.Int64
	cached := base
	cached.ReadSums = func(ctx context.Context, p string, fi os.FileInfo) (FileSums, error) {
		calls.Add(1)
		return ReadFileSums(ctx, p, fi)
	}
	if d := sum(cached); d != d0 {
		t.Errorf("digest through ReadSums %s, want %s", d, d0)
	}
	if calls.Load() == 0 {
		t.Error("ReadSums was not used")
	}
	cached.ReadSums = func(ctx context.Context, p string, fi os.FileInfo) (FileSums, error) {
		s, err := ReadFileSums(ctx, p, fi)
		if fi.Mode().IsRegular() {
			s.Content = digest.FromString(p)
		}
		return s, err
	}
	if d := sum(cached); d == d0 {
		t.Error("the digest ignores what ReadSums says")
	}

	// Errors as Copy has them.
	for _, req := range []CopyRequest{
		{SrcRoot: src, Sources: []string{"missing"}, Dest: "/x/"},
		{SrcRoot: src, Sources: []string{"*.nomatch"}, Dest: "/x/"},
		{SrcRoot: src, Sources: []string{"d", "other"}, Dest: "/x"},
		{SrcRoot: src, Sources: []string{"d"}, Dest: "/x/", Chmod: "9"},
	} {
		if _, err := Digest(ctx, req); err == nil {
			t.Errorf("Digest(%v %s chmod %q): want an error", req.Sources, req.Dest, req.Chmod)
		}
	}
}
