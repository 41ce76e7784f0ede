package fsutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
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
		{SrcRoot: src, Sources: []string{"d", "other"}, Dest: "/x"},
		{SrcRoot: src, Sources: []string{"d"}, Dest: "/x/", Chmod: "9"},
	} {
		if _, err := Digest(ctx, req); err == nil {
			t.Errorf("Digest(%v %s chmod %q): want an error", req.Sources, req.Dest, req.Chmod)
		}
	}
}

func TestDigestEntries(t *testing.T) {
	testutil.RequiresRoot(t) // writeTree chowns
	ctx := context.Background()
	src := t.TempDir()
	nodes := []node{file("src/a", "a\n"), file("src/sub/b", "b\n"), symlink("src/l", "a"), file("top", "t\n"),
		file("src/x", "shared\n"), hardlink("src/y", "src/x")}
	// Enough files to keep every worker busy and to spread directories
	// across the walk's goroutines.
	for i := range 300 {
		nodes = append(nodes, file(fmt.Sprintf("src/many/d%02d/f%03d", i%17, i), fmt.Sprint(i)))
	}
	writeTree(t, src, nodes...)
	req := CopyRequest{SrcRoot: src, Sources: []string{"src", "top"}, Dest: "/x/"}
	entries := func() (digest.Digest, []Entry) {
		t.Helper()
		d, es, err := DigestEntries(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if d2, err := Digest(ctx, req); err != nil || d2 != d {
			t.Fatalf("Digest %s (%v), DigestEntries %s", d2, err, d)
		}
		return d, es()
	}
	d0, e0 := entries()

	// Parallel work does not change the result: one worker gives the
	// same digests, in the same order.
	procs := runtime.GOMAXPROCS(1)
	d1, e1 := entries()
	runtime.GOMAXPROCS(procs)
	if d1 != d0 || fmt.Sprint(e1) != fmt.Sprint(e0) {
		t.Fatalf("serial and parallel differ: %s, %s", d1, d0)
	}

	var paths []string
	for _, e := range e0[:8] {
		paths = append(paths, e.Path)
	}
	if got, want := strings.Join(paths, " "), "src src/a src/l src/many src/many/d00 src/many/d00/f000 src/many/d00/f017 src/many/d00/f034"; got != want {
		t.Errorf("paths %s\nwant  %s", got, want)
	}
	if last := e0[len(e0)-1]; last.Path != "top" {
		t.Errorf("last entry %s, want top", last.Path)
	}
	byPath := func(es []Entry) map[string]digest.Digest {
		m := map[string]digest.Digest{}
		for _, e := range es {
			m[e.Path] = e.Digest
		}
		return m
	}
	m0 := byPath(e0)
	if m0["src/x"] == m0["src/y"] {
		t.Error("a hard link has the digest of the file it links to")
	}

	// A change shows in its own entry and no other.
	if err := os.WriteFile(filepath.Join(src, "src/sub/b"), []byte("B\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "src/new"), []byte("n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d2, e2 := entries()
	if d2 == d0 {
		t.Fatal("the digest did not change")
	}
	m2 := byPath(e2)
	var changed []string
	for p, d := range m2 {
		if m0[p] != d {
			changed = append(changed, p)
		}
	}
	sort.Strings(changed)
	if got := strings.Join(changed, " "); got != "src/new src/sub/b" {
		t.Errorf("changed entries: %s", got)
	}
	if len(e2) != len(e0)+1 {
		t.Errorf("%d entries, want %d", len(e2), len(e0)+1)
	}

	// Copying the root names entries from ".".
	_, list, err := DigestEntries(ctx, CopyRequest{SrcRoot: filepath.Join(src, "src/sub"), Sources: []string{"."}, Dest: "/"})
	if err != nil {
		t.Fatal(err)
	}
	es := list()
	if fmt.Sprint(es[0].Path, " ", es[1].Path) != ". b" {
		t.Errorf("root entries %v", es)
	}

	// An error reading one file fails the whole digest, saying where.
	req.ReadSums = func(ctx context.Context, p string, fi os.FileInfo) (FileSums, error) {
		if strings.HasSuffix(p, "f150") {
			return FileSums{}, errors.New("boom")
		}
		return ReadFileSums(ctx, p, fi)
	}
	if _, _, err := DigestEntries(ctx, req); err == nil || !strings.Contains(err.Error(), "src/many/d14/f150: boom") {
		t.Errorf("error %v", err)
	}
}
