package gobench

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/snapshot/archive"
)

// s7Base is the docker archive bench/run.sh loads in S7: a ~200 MB Debian
// base of one layer.
const s7Base = "/var/tmp/builder-bench/bases/s7-base.tar"

// s7Layer copies the layer tar out of the S7 base's docker archive into a
// temporary file and returns its path, skipping when the archive is absent
// (bench/run.sh makes it).
func s7Layer(b *testing.B) string {
	b.Helper()
	f, err := os.Open(s7Base)
	if os.IsNotExist(err) {
		b.Skipf("%s is missing (bench/run.sh -s S7 makes it)", s7Base)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	// manifest.json names the layer; it may come after the layer, so
	// copy every .tar member and keep the one it names.
	dir := b.TempDir()
	var manifest []struct{ Layers []string }
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		switch {
		case hdr.Name == "manifest.json":
			if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
				b.Fatal(err)
			}
		case filepath.Ext(hdr.Name) == ".tar" && hdr.Typeflag == tar.TypeReg:
			out, err := os.Create(filepath.Join(dir, filepath.Base(hdr.Name)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				b.Fatal(err)
			}
			if err := out.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if len(manifest) != 1 || len(manifest[0].Layers) != 1 {
		b.Fatalf("%s: want one image of one layer, manifest says %+v", s7Base, manifest)
	}
	return filepath.Join(dir, filepath.Base(manifest[0].Layers[0]))
}

// BenchmarkApplyS7 is S7's unpack: archive.Apply of the Debian base's
// layer into a fresh per-layer directory, as snapshot.Unpack calls it. Its
// directories are made in the test's temp dir, wherever ext4 puts them:
// next to files deleted in the last minutes it varies from 0.3 to 2.5 s
// (see BenchmarkUnpackS7); compare runs back to back.
func BenchmarkApplyS7(b *testing.B) {
	// Apply restores owners (chown) and writes overlay whiteouts
	// (mknod): root only.
	testutil.RequiresRoot(b)
	ctx := context.Background()
	layer := s7Layer(b)
	fi, err := os.Stat(layer)
	if err != nil {
		b.Fatal(err)
	}
	dst := b.TempDir()
	b.SetBytes(fi.Size())
	i := 0
	for b.Loop() {
		dir := filepath.Join(dst, fmt.Sprint(i))
		i++
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(layer)
		if err != nil {
			b.Fatal(err)
		}
		_, err = archive.Apply(ctx, dir, f, archive.ApplyOptions{Overlay: true})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnpackS7 is S7 cold's unpack as bench/run.sh meets it:
// snapshot.Unpack of the base's layer into a fresh snapshotter whose
// predecessor (the previous repetition's store, with the same layer
// unpacked) was just deleted and synced. The deletion matters: on ext4
// without a journal, inodes freed in the last minutes are skipped when
// new ones are allocated, one by one, at every create (ialloc.c,
// recently_deleted), so where the new files land decides the time.
func BenchmarkUnpackS7(b *testing.B) {
	testutil.RequiresRoot(b)
	ctx := context.Background()
	layer := s7Layer(b)
	f, err := os.Open(layer)
	if err != nil {
		b.Fatal(err)
	}
	diffID, err := digest.FromReader(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(layer)
	if err != nil {
		b.Fatal(err)
	}
	dst := b.TempDir()
	unpack := func(root string) {
		s, err := snapshot.New(root)
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(layer)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if _, err := s.Unpack(ctx, snapshot.Committed{}, diffID, f); err != nil {
			b.Fatal(err)
		}
	}
	prev := filepath.Join(dst, "prev")
	unpack(prev)
	b.SetBytes(fi.Size())
	i := 0
	for b.Loop() {
		b.StopTimer()
		if err := os.RemoveAll(prev); err != nil {
			b.Fatal(err)
		}
		unix.Sync()
		prev = filepath.Join(dst, fmt.Sprint(i))
		i++
		b.StartTimer()
		unpack(prev)
	}
}
