package fsutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/builder-dev/builder/internal/testutil"
)

func compressWith(t *testing.T, kind string, plain []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	var err error
	switch kind {
	case "tar":
		return plain
	case "gzip":
		w = gzip.NewWriter(&b)
	case "xz":
		w, err = xz.NewWriter(&b)
	case "zstd":
		w, err = zstd.NewWriter(&b)
	case "bzip2":
		// The standard library only reads bzip2.
		if _, err := exec.LookPath("bzip2"); err != nil {
			t.Skip("no bzip2 program to make a .bz2 with")
		}
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(plain)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bzip2: %v", err)
		}
		return out
	default:
		t.Fatalf("unknown compression %s", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fakeExtract unpacks regular files of a plain tar into dstDir and records
// the dirs it was given.
type fakeExtract struct {
	t    *testing.T
	dirs []string
}

func (f *fakeExtract) extract(ctx context.Context, r io.Reader, dstDir string) error {
	f.dirs = append(f.dirs, dstDir)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dstDir, filepath.Base(h.Name)), data, 0o644); err != nil {
			return err
		}
	}
}

func TestAddExtractsArchives(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, kind := range []string{"tar", "gzip", "bzip2", "xz", "zstd"} {
		t.Run(kind, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			// No telling extension: archives are known by their content.
			writeTree(t, src, file("archive.bin", string(compressWith(t, kind, testutil.Tar(t, testutil.TarEntry{Name: "inner.txt", Body: "a\n"})))))
			writeTree(t, dst, dir("real"), symlink("link", "/real"))
			fx := &fakeExtract{t: t}
			err := Copy(context.Background(), CopyRequest{SrcRoot: src, DstRoot: dst, Sources: []string{"archive.bin"}, Dest: "/link/x", Extract: fx.extract})
			if err != nil {
				t.Fatal(err)
			}
			// Dest is a directory (made), resolved inside DstRoot.
			if want := filepath.Join(dst, "real/x"); len(fx.dirs) != 1 || fx.dirs[0] != want {
				t.Fatalf("Extract got dirs %v, want [%s]", fx.dirs, want)
			}
			if got, want := listing(t, dst, "/real"), "/real\td\t0755\t0:0\n/real/x\td\t0755\t0:0\n/real/x/inner.txt\tf\t0644\t0:0\t"+shaA+"\n"; got != want {
				t.Errorf("destination:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestAddCopiesNonArchives(t *testing.T) {
	testutil.RequiresRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	// A gzip stream that holds no tar, and a name that lies.
	writeTree(t, src, file("notar.gz", string(compressWith(t, "gzip", []byte("a\n")))), file("fake.tar.gz", "a\n"), file("d/f", "a\n"),
		file("archive.tar", string(testutil.Tar(t, testutil.TarEntry{Name: "inner.txt", Body: "a\n"}))))
	fx := &fakeExtract{t: t}
	err := Copy(context.Background(), CopyRequest{SrcRoot: src, DstRoot: dst, Sources: []string{"notar.gz", "fake.tar.gz", "d"}, Dest: "/o/", Extract: fx.extract})
	if err != nil {
		t.Fatal(err)
	}
	if len(fx.dirs) != 0 {
		t.Errorf("Extract called for non-archives: %v", fx.dirs)
	}
	if got, want := listing(t, dst, "/o/fake.tar.gz", "/o/f"), "/o/f\tf\t0644\t0:0\t"+shaA+"\n/o/fake.tar.gz\tf\t0644\t0:0\t"+shaA+"\n"; got != want {
		t.Errorf("destination:\n%s\nwant:\n%s", got, want)
	}
	// COPY (no Extract) copies an archive as it is.
	if err := Copy(context.Background(), CopyRequest{SrcRoot: src, DstRoot: dst, Sources: []string{"archive.tar"}, Dest: "/copied.tar"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "copied.tar")); !bytes.Equal(got, testutil.Tar(t, testutil.TarEntry{Name: "inner.txt", Body: "a\n"})) {
		t.Error("COPY of an archive changed it")
	}
}
