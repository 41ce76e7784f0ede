package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
)

// bombHarness is a harness whose store root is a tmpfs of size bytes: a
// small disk to fill instead of the real one.
func bombHarness(t *testing.T, size int64) *harness {
	t.Helper()
	testutil.RequiresRoot(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(root, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", root, err)
		}
	})
	h := &harness{t: t, root: root}
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	h.mustRun("import", "--change", `CMD ["sh"]`, rootfs, "base/busybox:1")
	return h
}

// writeGzipBomb writes a .tar.gz of one entry, zeros/big, of size zero
// bytes: 1 GiB compresses to about 1 MiB.
func writeGzipBomb(t *testing.T, p string, size int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := testutil.NewTarWriter(zw)
	if err := tw.Add(testutil.TarEntry{Name: "zeros/big", Size: size, Content: testutil.Zeros}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []interface{ Close() error }{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// writeShortTar writes a tar whose one entry, huge, claims size bytes and
// holds 1 KiB of them.
func writeShortTar(t *testing.T, p string, size int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// Content ends after 1 KiB: Add writes that much and stops.
	tw := testutil.NewTarWriter(f)
	if err := tw.Add(testutil.TarEntry{Name: "huge", Size: size, Content: bytes.NewReader(make([]byte, 1024))}); err != nil {
		t.Fatal(err)
	}
	// No Close: tar would pad the entry to its size. The stream just ends.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// storeListing lists every path under the store's content and snapshots,
// where a half-written layer would show.
func storeListing(t *testing.T, root string) string {
	t.Helper()
	var out []string
	for _, top := range []string{"content", "snapshots"} {
		filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
			return nil
		})
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestAddBombFailsCleanly ADDs archives that would unpack to far more than
// the store's 256 MiB filesystem holds: a gzip bomb, and entries whose
// headers claim terabytes. The build fails with an error naming the
// Dockerfile line, the archive and the entry (said before the filesystem
// is full: archive's TestApplyBombs checks the reserve stays free), and no
// snapshot, layer or blob of the failed step remains.
func TestAddBombFailsCleanly(t *testing.T) {
	h := bombHarness(t, 256<<20)
	for _, c := range []struct {
		name, archive string
		write         func(t *testing.T, p string)
		want          []string
	}{
		{
			name: "gzip bomb", archive: "bomb.tar.gz",
			write: func(t *testing.T, p string) { writeGzipBomb(t, p, 1<<30) },
			want:  []string{`entry "zeros/big"`, "1.0 GiB of content", "no space left on device"},
		},
		{
			name: "entry claiming 2 TiB", archive: "huge.tar",
			write: func(t *testing.T, p string) { writeShortTar(t, p, 2<<40) },
			want:  []string{`entry "huge"`, "2.0 TiB of content"},
		},
		{
			name: "entry claiming 16 MiB with 1 KiB behind it", archive: "short.tar",
			write: func(t *testing.T, p string) { writeShortTar(t, p, 16<<20) },
			want:  []string{`entry "huge"`, "unexpected EOF"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctxDir := h.context("FROM base/busybox:1\nRUN true\nADD "+c.archive+" /data/\n", map[string]string{})
			c.write(t, filepath.Join(ctxDir, c.archive))
			// The RUN before is built first, so that what the store
			// holds after is only the failed ADD's doing.
			h.build(h.context("FROM base/busybox:1\nRUN true\n", map[string]string{}), "bomb-base")
			before := storeListing(t, h.root)
			_, errOut, code := h.run("build", "-t", "bomb", ctxDir)
			if code == 0 {
				t.Fatalf("build of a bomb succeeded")
			}
			for _, w := range append([]string{"Dockerfile:3", "/" + c.archive}, c.want...) {
				if !strings.Contains(errOut, w) {
					t.Errorf("the error does not say %q:\n%s", w, errOut)
				}
			}
			t.Logf("refused: %s", lastLine(errOut))
			if after := storeListing(t, h.root); after != before {
				t.Errorf("the store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// A gzipped archive that inflates past the disk fails `load` before the
// store's filesystem fills (its reserve stays free) and leaves the store as
// it was, staging included.
func TestLoadBombFailsCleanly(t *testing.T) {
	h := bombHarness(t, 64<<20)
	bomb := filepath.Join(t.TempDir(), "bomb archive.tar.gz")
	writeGzipBomb(t, bomb, 256<<20)
	before := testutil.Listing(t, h.root)
	_, errOut, code := h.run("load", "-i", bomb)
	if code == 0 || !strings.Contains(errOut, "would leave too little free space") || !strings.Contains(errOut, "zeros/big") {
		t.Fatalf("load of a gzip bomb: exit %d, want a failure naming the entry and the reserve:\n%s", code, errOut)
	}
	if after := testutil.Listing(t, h.root); after != before {
		t.Errorf("a failed load changed the store:\n%s", listingDiff(before, after))
	}
}
