package archive

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/builder-dev/builder/internal/testutil"
)

// manyEntriesTar streams a layer of n entries, made as it is read: modules
// of 15 one-byte files, every fourth of them a hardlink to the one before,
// as deep paths. A million entries is a ~1 GB tar that never exists whole.
func manyEntriesTar(t testing.TB, n int) io.Reader {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	go func() {
		tw := testutil.NewTarWriter(pw)
		err := func() error {
			var dir string
			for i := range n {
				e := tarEntry{ModTime: t0, Format: tar.FormatPAX}
				switch f := i % 16; {
				case f == 0:
					dir = fmt.Sprintf("usr/share/application/modules/m%07d", i/16)
					e.Type, e.Name = tar.TypeDir, dir+"/"
				case f%4 == 0:
					e.Type, e.Name = tar.TypeLink, fmt.Sprintf("%s/file%02d.txt", dir, f)
					e.Linkname = fmt.Sprintf("%s/file%02d.txt", dir, f-1)
				default:
					e.Name, e.Body = fmt.Sprintf("%s/file%02d.txt", dir, f), "x"
				}
				if err := tw.Add(e); err != nil {
					return err
				}
			}
			return tw.Close()
		}()
		pw.CloseWithError(err)
	}()
	return pr
}

// heapPeak samples the live heap (after a collection) every 8 MiB of a
// stream passing through it, and keeps the largest growth over the heap at
// its start.
type heapPeak struct {
	base, peak uint64
	n          int64
}

func newHeapPeak() *heapPeak {
	h := &heapPeak{}
	h.base = liveHeap()
	return h
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func (h *heapPeak) count(n int) {
	h.n += int64(n)
	if h.n >= 8<<20 {
		h.n = 0
		if live := liveHeap(); live > h.base && live-h.base > h.peak {
			h.peak = live - h.base
		}
	}
}

type peakReader struct {
	r io.Reader
	h *heapPeak
}

func (p peakReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.h.count(n)
	return n, err
}

type peakWriter struct {
	w io.Writer
	h *heapPeak
}

func (p peakWriter) Write(b []byte) (int, error) {
	p.h.count(len(b))
	return p.w.Write(b)
}

// maxHeapGrowth bounds the live heap Apply and WriteLayer may add while
// they handle a layer, whatever its number of entries.
const maxHeapGrowth = 4 << 20

// applyAndWriteMany applies an n-entry layer into a fresh directory (as a
// layer dir, and as ADD does onto a root), writes the first back as a
// layer, and fails t if any of them grew the live heap by more than
// maxHeapGrowth.
func applyAndWriteMany(t testing.TB, n int) {
	// A tmpfs: the disk is not what is measured, and a million inodes
	// made and removed on it would take minutes.
	fs := mountTmpfs(t, 4<<30)
	for _, c := range []struct {
		name string
		opts ApplyOptions
	}{{"layer", ApplyOptions{Overlay: true}}, {"add", ApplyOptions{NoWhiteouts: true}}} {
		dir := filepath.Join(fs, c.name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		h := newHeapPeak()
		if _, err := Apply(t.Context(), dir, peakReader{manyEntriesTar(t, n), h}, c.opts); err != nil {
			t.Fatal(err)
		}
		t.Logf("apply %d entries (%s): live heap grew by at most %.1f MiB", n, c.name, float64(h.peak)/(1<<20))
		if h.peak > maxHeapGrowth {
			t.Errorf("apply %d entries (%s): live heap grew by %.1f MiB, want at most %d MiB", n, c.name, float64(h.peak)/(1<<20), maxHeapGrowth>>20)
		}
		if c.opts.Overlay {
			// Free the tmpfs's memory for the next one.
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			continue
		}
		h = newHeapPeak()
		pr, pw := io.Pipe()
		count := make(chan int64, 1)
		go countEntries(pr, count)
		err := WriteLayer(t.Context(), dir, peakWriter{pw, h}, WriteOptions{})
		pw.Close()
		got := <-count
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("write %d entries: live heap grew by at most %.1f MiB", n, float64(h.peak)/(1<<20))
		if h.peak > maxHeapGrowth {
			t.Errorf("write %d entries: live heap grew by %.1f MiB, want at most %d MiB", n, float64(h.peak)/(1<<20), maxHeapGrowth>>20)
		}
		// The usr/share/application/modules directories come first.
		if want := int64(n + 4); got != want {
			t.Errorf("WriteLayer wrote %d entries, want %d", got, want)
		}
	}
}

// countEntries counts the tar entries read from r.
func countEntries(r *io.PipeReader, n chan<- int64) {
	tr := tar.NewReader(r)
	var c int64
	for {
		if _, err := tr.Next(); err != nil {
			if err != io.EOF {
				c = -1
			}
			r.CloseWithError(err)
			n <- c
			return
		}
		c++
	}
}

// TestApplyManyEntries applies and writes back a layer of 200,000 entries
// with a bounded heap. BenchmarkApplyMillionEntries does a million.
func TestApplyManyEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("200,000 files: not with -short")
	}
	applyAndWriteMany(t, 200_000)
}

func BenchmarkApplyMillionEntries(b *testing.B) {
	for b.Loop() {
		applyAndWriteMany(b, 1_000_000)
	}
}

// TestApplyDirTimesSpilled applies more directories than dirTimes keeps in
// memory, each with its own mtime and with a file added to each after all
// directories (so every directory is changed after its entry): all keep the
// tar's times, those read back from the temporary file too.
func TestApplyDirTimesSpilled(t *testing.T) {
	dir := mountTmpfs(t, 64<<20)
	n := maxDirTimesInMemory + 1000
	pr, pw := io.Pipe()
	go func() {
		tw := testutil.NewTarWriter(pw)
		err := func() error {
			for pass := range 2 {
				for i := range n {
					e := tarEntry{Type: tar.TypeDir, Name: fmt.Sprintf("d%05d/", i), ModTime: t0.Add(time.Duration(i) * time.Second)}
					if pass == 1 {
						e = tarEntry{Name: fmt.Sprintf("d%05d/f", i), ModTime: t0}
					}
					if err := tw.Add(e); err != nil {
						return err
					}
				}
			}
			return tw.Close()
		}()
		pw.CloseWithError(err)
	}()
	if _, err := Apply(t.Context(), dir, pr, ApplyOptions{Overlay: true}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		fi, err := os.Stat(filepath.Join(dir, fmt.Sprintf("d%05d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if want := t0.Add(time.Duration(i) * time.Second); !fi.ModTime().Equal(want) {
			t.Fatalf("d%05d: mtime %v, want %v", i, fi.ModTime(), want)
		}
	}
}
