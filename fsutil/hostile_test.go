package fsutil

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/snapshot/archive"
)

// hostileEnv is a source root and a destination root side by side with
// "host" files around them that no copy may read or write.
type hostileEnv struct {
	outside string // a host dir beside both roots
	src     string
	dst     string
}

func newHostileEnv(t *testing.T) hostileEnv {
	testutil.RequiresRoot(t)
	top := t.TempDir()
	e := hostileEnv{outside: filepath.Join(top, "host"), src: filepath.Join(top, "ctx"), dst: filepath.Join(top, "rootfs")}
	writeTree(t, e.outside, file("secret", "host secret\n"), file("passwd", "host passwd\n"))
	writeTree(t, top, file("outside", "host secret\n"))
	return e
}

// untouched fails t if the host dir beside the roots changed.
func (e hostileEnv) untouched(t *testing.T) {
	t.Helper()
	got := listing(t, e.outside)
	want := "/passwd\tf\t0644\t0:0\tsize=12 sha256=" + sha256hex("host passwd\n") + "\n" +
		"/secret\tf\t0644\t0:0\tsize=12 sha256=" + sha256hex("host secret\n") + "\n"
	if got != want {
		t.Errorf("the host dir beside the roots changed:\n%s", got)
	}
}

// noHostContent fails t if any file under root holds host content.
func noHostContent(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(string(b), "host ") {
			t.Errorf("%s holds a host file's content", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHostileSources(t *testing.T) {
	e := newHostileEnv(t)
	rel := func(p string) string { r, _ := filepath.Rel(e.src, p); return r }
	writeTree(t, e.src,
		file("ok", "a\n"),
		symlink("etc", "/etc"), // the host's /etc, if followed on the host
		symlink("hostabs", filepath.Join(e.outside, "secret")), // an absolute host path
		symlink("hostrel", rel(filepath.Join(e.outside, "secret"))),
		symlink("dotdots", "../../../../../../.."+e.outside+"/secret"),
		symlink("loop", "loop"),
		dir("d"), symlink("d/up", "../../outside"),
	)
	writeTree(t, e.dst)
	for _, tc := range []struct {
		name string
		srcs []string
	}{
		{"context symlink to /etc", []string{"hostetc/passwd"}},
		{"context symlink to /etc, whole dir", []string{"hostetc"}},
		{"context symlink /etc to /etc", []string{"etc/passwd"}},
		{"../outside", []string{"../outside"}},
		{"absolute path outside", []string{filepath.Join(e.outside, "secret")}},
		{"symlink to an absolute host path", []string{"hostabs"}},
		{"symlink climbing out", []string{"hostrel"}},
		{"symlink with many ..", []string{"dotdots"}},
		{"nested symlink climbing out, followed at the top", []string{"d/up"}},
		{"wildcard above the root", []string{"../*side"}},
		{"symlink loop", []string{"loop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Copy(context.Background(), CopyRequest{SrcRoot: e.src, DstRoot: e.dst, Sources: tc.srcs, Dest: "/got/"})
			if err == nil && strings.Contains(tc.srcs[0], "*") {
				// A pattern that matches nothing copies nothing.
				if _, err := os.Lstat(filepath.Join(e.dst, "got")); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Copy %v matched something: %v", tc.srcs, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Copy %v succeeded; there is nothing with that name inside the source root", tc.srcs)
			}
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ELOOP) && !strings.Contains(err.Error(), "no source files") {
				t.Errorf("Copy %v: %v, want a not-found error", tc.srcs, err)
			}
		})
	}
	// Copying the whole context keeps the symlinks as symlinks and reads
	// nothing through them.
	if err := Copy(context.Background(), CopyRequest{SrcRoot: e.src, DstRoot: e.dst, Sources: []string{"."}, Dest: "/all/"}); err != nil {
		t.Fatal(err)
	}
	noHostContent(t, e.dst)
	e.untouched(t)
}

func TestHostileDestinations(t *testing.T) {
	e := newHostileEnv(t)
	writeTree(t, e.src, file("f", "a\n"), file("d/passwd", "a\n"), file("d/sub/x", "a\n"))
	writeTree(t, e.dst,
		symlink("hostroot", "/"),      // "/" of the image, which is DstRoot
		symlink("hostabs", e.outside), // a host path: inside DstRoot it names nothing
		symlink("up", "../../../../../../../.."+e.outside),
		dir("merge"), symlink("merge/passwd", filepath.Join(e.outside, "passwd")), symlink("merge/sub", e.outside),
	)
	for _, dest := range []string{
		"/hostroot/" + strings.TrimPrefix(e.outside, "/") + "/secret",
		"/hostabs/secret",
		"/up/secret",
		"/../../../../" + e.outside + "/passwd",
		"/hostroot/hostroot/up/",
	} {
		if err := Copy(context.Background(), CopyRequest{SrcRoot: e.src, DstRoot: e.dst, Sources: []string{"f"}, Dest: dest}); err != nil {
			t.Fatalf("COPY f %s: %v", dest, err)
		}
	}
	// The same written inside DstRoot instead: the outside path below it.
	if _, err := os.Stat(filepath.Join(e.dst, e.outside, "secret")); err != nil {
		t.Errorf("COPY through /hostroot did not land inside the root: %v", err)
	}
	// Merging a dir whose entries are symlinks to host paths: the file
	// replaces the link, the dir fails, nothing reaches the host.
	err := Copy(context.Background(), CopyRequest{SrcRoot: e.src, DstRoot: e.dst, Sources: []string{"d"}, Dest: "/merge"})
	if err == nil || !strings.Contains(err.Error(), "cannot copy to non-directory: /merge/sub") {
		t.Fatalf("merge into a dir holding host symlinks: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(e.dst, "merge/passwd")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("/merge/passwd should be the copied file now: %v", err)
	}
	// ADD through a symlink to "/" extracts inside DstRoot.
	fx := &fakeExtract{t: t}
	writeTree(t, e.src, file("a.tar", string(testutil.Tar(t, testutil.TarEntry{Name: "inner.txt", Body: "a\n"}))))
	err = Copy(context.Background(), CopyRequest{SrcRoot: e.src, DstRoot: e.dst, Sources: []string{"a.tar"}, Dest: "/hostroot" + e.outside, Extract: fx.extract})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(e.dst, e.outside); len(fx.dirs) != 1 || fx.dirs[0] != want {
		t.Errorf("Extract got %v, want [%s]", fx.dirs, want)
	}
	e.untouched(t)
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestHostileAddArchives ADDs local archives whose entries try to leave the
// destination, extracted by archive.Apply as the build does (ADD's
// Extract), plain and gzipped. Each may fail or land inside the
// destination; none may write a host file or copy host content in.
func TestHostileAddArchives(t *testing.T) {
	e := newHostileEnv(t)
	secret := filepath.Join(e.outside, "secret")
	for _, tc := range []struct {
		name    string
		entries func() []testutil.TarEntry
	}{
		{"../ climbing out", func() []testutil.TarEntry { return []testutil.TarEntry{{Name: "../../host/secret", Body: "x"}} }},
		{"../ in the middle", func() []testutil.TarEntry { return []testutil.TarEntry{{Name: "a/../../../outside", Body: "x"}} }},
		{"absolute name", func() []testutil.TarEntry { return []testutil.TarEntry{{Name: secret, Body: "x"}} }},
		{"symlink to a host dir, then a file through it", func() []testutil.TarEntry {
			return []testutil.TarEntry{{Name: "s", Type: tar.TypeSymlink, Linkname: e.outside}, {Name: "s/secret", Body: "x"}}
		}},
		{"symlink climbing out, then a file through it", func() []testutil.TarEntry {
			return []testutil.TarEntry{{Name: "up", Type: tar.TypeSymlink, Linkname: "../../../../../../.."}, {Name: "up" + secret, Body: "x"}}
		}},
		{"symlink to /, then a directory and a file through it", func() []testutil.TarEntry {
			return []testutil.TarEntry{{Name: "root", Type: tar.TypeSymlink, Linkname: "/"}, {Name: "root" + e.outside + "/", Type: tar.TypeDir}, {Name: "root" + e.outside + "/passwd", Body: "x"}}
		}},
		{"hardlink to a host file", func() []testutil.TarEntry {
			return []testutil.TarEntry{{Name: "h", Type: tar.TypeLink, Linkname: secret}}
		}},
		{"hardlink climbing out", func() []testutil.TarEntry {
			return []testutil.TarEntry{{Name: "h", Type: tar.TypeLink, Linkname: "../../../../../../.." + secret}}
		}},
		{"hardlink through a symlink", func() []testutil.TarEntry {
			return []testutil.TarEntry{{Name: "s", Type: tar.TypeSymlink, Linkname: e.outside}, {Name: "h", Type: tar.TypeLink, Linkname: "s/secret"}}
		}},
		{"hardlink to the image's own dest symlink", func() []testutil.TarEntry {
			// "hostdir" is in the destination root, pointing at the host.
			return []testutil.TarEntry{{Name: "h", Type: tar.TypeLink, Linkname: "/hostdir/secret"}}
		}},
		{"whiteout-looking names are files in ADD", func() []testutil.TarEntry {
			return []testutil.TarEntry{{Name: ".wh.secret", Body: "x"}, {Name: "../.wh.host", Body: "x"}}
		}},
	} {
		for _, kind := range []string{"tar", "gzip"} {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				dst := t.TempDir()
				writeTree(t, dst, symlink("hostdir", e.outside), dir("app"))
				src := t.TempDir()
				writeTree(t, src, file("a.tar", string(compressWith(t, kind, testutil.Tar(t, tc.entries()...)))))
				err := Copy(context.Background(), CopyRequest{SrcRoot: src, DstRoot: dst, Sources: []string{"a.tar"}, Dest: "/app/", Extract: applyArchive})
				if err != nil && !strings.Contains(err.Error(), "add /a.tar: ") {
					t.Errorf("ADD: %v, want an error naming the archive", err)
				}
				noHostContent(t, dst)
				e.untouched(t)
			})
		}
	}
}

// applyArchive is ADD's Extract as the build wires it.
func applyArchive(ctx context.Context, r io.Reader, dir string) error {
	_, err := archive.Apply(ctx, dir, r, archive.ApplyOptions{NoWhiteouts: true})
	return err
}
