package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory, unmounted
// when the test ends: a small filesystem to fill instead of the real disk.
func mountTmpfs(t testing.TB, size int64) string {
	t.Helper()
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// zeroTar streams a tar of files entries of size zero bytes each, through
// gzip when gz is set: 1 GiB of zeros compresses to about 1 MiB, the shape
// of a gzip bomb. With same, every entry has the same name. It is made
// while it is read, so a reader that stops early costs only what it read.
func zeroTar(t testing.TB, files int, size int64, gz, same bool) io.Reader {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	go func() {
		var w io.Writer = pw
		var zw *gzip.Writer
		if gz {
			zw, _ = gzip.NewWriterLevel(pw, gzip.BestSpeed)
			w = zw
		}
		tw := testutil.NewTarWriter(w)
		err := func() error {
			for i := range files {
				name := fmt.Sprintf("zeros/%04d", i)
				if same {
					name = "zeros/same"
				}
				if err := tw.Add(testutil.TarEntry{Name: name, Size: size, Content: testutil.Zeros}); err != nil {
					return err
				}
			}
			if err := tw.Close(); err != nil {
				return err
			}
			if zw != nil {
				return zw.Close()
			}
			return nil
		}()
		pw.CloseWithError(err)
	}()
	if !gz {
		return pr
	}
	zr, err := gzip.NewReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

// block is one raw 512-byte tar header block.
type block [512]byte

func (b *block) set(off int, s string) { copy(b[off:], s) }

// octal writes n in a field of width bytes: digits and a NUL, or for a
// number too big for them, GNU's base-256 (a first byte of 0x80, then the
// number big-endian).
func (b *block) octal(off, width int, n int64) {
	if n < 1<<(3*(width-1)) {
		b.set(off, fmt.Sprintf("%0*o", width-1, n))
		return
	}
	f := b[off : off+width]
	for i := width - 1; i > 0; i-- {
		f[i] = byte(n)
		n >>= 8
	}
	f[0] = 0x80
}

// finish writes the header checksum.
func (b *block) finish() []byte {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	b.set(148, fmt.Sprintf("%06o\x00 ", sum))
	return b[:]
}

// ustarHeader is a USTAR header for name of the given type and stored size.
func ustarHeader(name string, typ byte, size int64) *block {
	var b block
	b.set(0, name)
	b.octal(100, 8, 0o644)
	b.octal(108, 8, 0)
	b.octal(116, 8, 0)
	b.octal(124, 12, size)
	b.octal(136, 12, t0.Unix())
	b[156] = typ
	b.set(257, "ustar\x0000")
	return &b
}

// pad rounds data up to whole blocks.
func pad(data []byte) []byte {
	if r := len(data) % 512; r != 0 {
		data = append(data, make([]byte, 512-r)...)
	}
	return data
}

// paxRecord is one "len key=value\n" record.
func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec)
	for {
		s := fmt.Sprint(n) + rec
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

// sparsePAXTar is a tar holding name as a GNU sparse file (format 0.1, in
// PAX records) that claims realSize bytes, of which only the first 512 are
// stored: the rest would read as zeros.
func sparsePAXTar(name string, realSize int64) []byte {
	recs := paxRecord("GNU.sparse.major", "0") + paxRecord("GNU.sparse.minor", "1") +
		paxRecord("GNU.sparse.name", name) + paxRecord("GNU.sparse.size", fmt.Sprint(realSize)) +
		paxRecord("GNU.sparse.numblocks", "1") + paxRecord("GNU.sparse.map", "0,512")
	var out []byte
	out = append(out, ustarHeader("PaxHeaders/"+name, tar.TypeXHeader, int64(len(recs))).finish()...)
	out = append(out, pad([]byte(recs))...)
	out = append(out, ustarHeader("GNUSparseFile.0/"+name, tar.TypeReg, 512).finish()...)
	out = append(out, pad([]byte("data"))...)
	return append(out, make([]byte, 1024)...)
}

// sparseGNUTar is the same in GNU tar's old sparse format: a header of type
// 'S' carrying the map and the real size.
func sparseGNUTar(name string, realSize int64) []byte {
	b := ustarHeader(name, tar.TypeGNUSparse, 512)
	b.set(257, "ustar  \x00") // GNU magic
	b.octal(386, 12, 0)       // first sparse entry: offset 0,
	b.octal(398, 12, 512)     // 512 bytes
	b.octal(483, 12, realSize)
	var out []byte
	out = append(out, b.finish()...)
	out = append(out, pad([]byte("data"))...)
	return append(out, make([]byte, 1024)...)
}

// shortTar is a tar whose only entry's header claims size bytes while the
// stream ends after 1 KiB of them.
func shortTar(name string, size int64) []byte {
	var out []byte
	out = append(out, ustarHeader(name, tar.TypeReg, size).finish()...)
	return append(out, bytes.Repeat([]byte("x"), 1024)...)
}

// freeBytes is what statfs says unprivileged users may still write to dir's
// filesystem.
func freeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// TestApplyBombs applies archives that would unpack to far more than the
// 64 MiB filesystem they are applied to holds. Each must fail before the
// filesystem is full, with an error naming the entry, and leave no partial
// file; the memory a gzip bomb costs is the decompressor's, not the
// archive's size.
func TestApplyBombs(t *testing.T) {
	const fsSize = 64 << 20
	const reserve = fsSize / 20 // diskspace keeps 5% of a small filesystem free
	for _, c := range []struct {
		Name  string
		Opts  ApplyOptions
		Tar   func(t *testing.T) io.Reader
		Entry string // the entry the error names, or the start of it
		// WantErr is what the error must be; ErrNoSpace unless set.
		WantErr error
		Want    string // a part of the message
	}{
		{
			Name:  "gzip bomb, one entry of 1 GiB",
			Tar:   func(t *testing.T) io.Reader { return zeroTar(t, 1, 1<<30, true, false) },
			Entry: "zeros/0000",
			Want:  "1.0 GiB of content",
		},
		{
			// Each entry fits, their sum does not: the filesystem
			// is asked again as the writes use it up.
			Name:  "gzip bomb, 1024 entries of 1 MiB",
			Tar:   func(t *testing.T) io.Reader { return zeroTar(t, 1024, 1<<20, true, false) },
			Entry: "zeros/00",
		},
		{
			Name:  "gzip bomb into an overlay-form layer dir",
			Opts:  ApplyOptions{Overlay: true},
			Tar:   func(t *testing.T) io.Reader { return zeroTar(t, 1024, 1<<20, true, false) },
			Entry: "zeros/00",
		},
		{
			// Each replaces the last, so the filesystem never fills:
			// the work is what must stay bounded.
			Name:  "gzip bomb, one name written 1024 times",
			Tar:   func(t *testing.T) io.Reader { return zeroTar(t, 1024, 1<<20, true, true) },
			Entry: "zeros/same",
			Want:  "more in all than the 64.0 MiB filesystem",
		},
		{
			Name:  "regular entry claiming 2 TiB",
			Tar:   func(t *testing.T) io.Reader { return bytes.NewReader(shortTar("huge", 2<<40)) },
			Entry: "huge",
			Want:  "2.0 TiB of content",
		},
		{
			Name:  "PAX sparse entry claiming 2 TiB",
			Tar:   func(t *testing.T) io.Reader { return bytes.NewReader(sparsePAXTar("sparse", 2<<40)) },
			Entry: "sparse",
			Want:  "2.0 TiB of content",
		},
		{
			Name:  "GNU sparse entry claiming 2 TiB",
			Tar:   func(t *testing.T) io.Reader { return bytes.NewReader(sparseGNUTar("sparse", 2<<40)) },
			Entry: "sparse",
			Want:  "2.0 TiB of content",
		},
		{
			Name:    "entry claiming 16 MiB with 1 KiB behind it",
			Tar:     func(t *testing.T) io.Reader { return bytes.NewReader(shortTar("short", 16<<20)) },
			Entry:   "short",
			WantErr: io.ErrUnexpectedEOF,
			Want:    "read content: unexpected EOF",
		},
	} {
		t.Run(c.Name, func(t *testing.T) {
			fs := mountTmpfs(t, fsSize)
			root := filepath.Join(fs, "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := Apply(t.Context(), root, c.Tar(t), c.Opts)
			want := c.WantErr
			if want == nil {
				want = ErrNoSpace
			}
			if !errors.Is(err, want) {
				t.Fatalf("Apply: %v, want %v", err, want)
			}
			if want == ErrNoSpace && !errors.Is(err, unix.ENOSPC) {
				t.Errorf("Apply: %v is not an ENOSPC", err)
			}
			if !strings.Contains(err.Error(), `entry "`+c.Entry) {
				t.Errorf("Apply: %v does not name the entry %s", err, c.Entry)
			}
			if !strings.Contains(err.Error(), c.Want) {
				t.Errorf("Apply: %v, want it to say %q", err, c.Want)
			}
			if free := freeBytes(t, fs); free < reserve/2 {
				t.Errorf("%d bytes left free on the filesystem; Apply must keep about %d", free, reserve)
			}
			// The entry that failed is not there, not even in part.
			var partial []string
			filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				if fi, err := d.Info(); err == nil && fi.Size() != 1<<20 {
					partial = append(partial, p)
				}
				return nil
			})
			if len(partial) > 0 {
				t.Errorf("partial files left: %v", partial)
			}
		})
	}
}

// TestApplySparse checks that sparse entries (both GNU formats) that fit
// are extracted with their full size, holes as zeros.
func TestApplySparse(t *testing.T) {
	testutil.RequiresRoot(t)
	for name, data := range map[string][]byte{"pax": sparsePAXTar("f", 4096), "gnu": sparseGNUTar("f", 4096)} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Apply(t.Context(), dir, bytes.NewReader(data), ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, "f"))
			if err != nil {
				t.Fatal(err)
			}
			want := append(pad([]byte("data")), make([]byte, 4096-512)...)
			if !bytes.Equal(got, want) {
				t.Errorf("f holds %d bytes starting %q, want 4096 starting \"data\"", len(got), got[:min(len(got), 8)])
			}
		})
	}
}
