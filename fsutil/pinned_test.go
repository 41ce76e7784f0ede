package fsutil

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-dev/builder/internal/testutil"
)

var updatePinned = flag.Bool("update-pinned", false, "rewrite testdata/pinned-digests.txt")

// TestDigestPinned pins DigestEntries' output for a tree with every kind
// of entry: cache keys already in stores depend on it, so a change to the
// walk or the encoding that moves it must come with a new key version.
func TestDigestPinned(t *testing.T) {
	testutil.RequiresRoot(t)
	src := t.TempDir()
	if err := os.Chmod(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTree(t, src,
		file("a", "alpha\n").withMode(0o755).withOwner(12, 34).withXattr("user.k", "v\x00\xff"),
		file("b c/\"q\"", "quoted\n"),
		file("d/e/f", strings.Repeat("x", 100000)),
		file("d/\xffbad", "bytes\n"),
		hardlink("d/hl", "a"),
		symlink("d/link", "../a"),
		dir("empty").withMode(0o700),
		file("ig/skip.log", "no\n"),
		file("ig/keep.txt", "yes\n"),
		node{path: "d/fifo", kind: 'p'},
		node{path: "d/chr", kind: 'c', rdev: 0x0103},
	)
	m, err := NewIgnoreMatcher([]string{"ig", "!ig/keep.txt"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, req := range []CopyRequest{
		{Sources: []string{"."}, Dest: "/x/"},
		{Sources: []string{"."}, Dest: "/x/", Filter: m.Include, Descend: m.Descend},
		{Sources: []string{"d", "a", "d/e/f"}, Dest: "/x/", Chmod: "640", Chown: "7:8"},
		{Sources: []string{"*"}, Dest: "/x/", KeepOwners: true, Chown: "name"},
		{Sources: []string{"d/link"}, Dest: "/x"},
	} {
		req.SrcRoot = src
		d, entries, err := DigestEntries(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%v %s\n", req.Sources, d)
		for _, e := range entries() {
			fmt.Fprintf(&out, "  %q %s\n", e.Path, e.Digest)
		}
	}
	golden := filepath.Join("testdata", "pinned-digests.txt")
	if *updatePinned {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("digests moved (a cache key version change?):\n%s\nwant:\n%s", out.String(), want)
	}
}
