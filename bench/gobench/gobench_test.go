package gobench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/snapshot/archive"
	"github.com/builder-dev/builder/store"
)

// tree20k writes 20,000 files in 20 directories of 1,000 (S1's shape) with
// sizes from 64 B to ~8 KB, ~40 MB in all, and returns their total size.
func tree20k(b *testing.B, dir string) int64 {
	b.Helper()
	var total int64
	buf := bytes.Repeat([]byte("layer benchmark line of text\n"), 300)
	for d := range 20 {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", d))
		if err := os.Mkdir(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 1000 {
			n := 64 + (f*7919+d*104729)%8000
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", f)), buf[:n], 0o644); err != nil {
				b.Fatal(err)
			}
			total += int64(n)
		}
	}
	return total
}

func BenchmarkWriteLayer20k(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	total := tree20k(b, dir)
	b.SetBytes(total)
	for b.Loop() {
		if err := archive.WriteLayer(ctx, dir, io.Discard, archive.WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(20000*b.N)/b.Elapsed().Seconds(), "files/s")
}

func BenchmarkApply20k(b *testing.B) {
	// Apply restores owners (chown) and may write overlay whiteouts
	// (mknod): root only.
	testutil.RequiresRoot(b)
	ctx := context.Background()
	src := b.TempDir()
	total := tree20k(b, src)
	var layer bytes.Buffer
	if err := archive.WriteLayer(ctx, src, &layer, archive.WriteOptions{}); err != nil {
		b.Fatal(err)
	}
	dst := b.TempDir()
	b.SetBytes(total)
	i := 0
	for b.Loop() {
		dir := filepath.Join(dst, fmt.Sprint(i))
		i++
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := archive.Apply(ctx, dir, bytes.NewReader(layer.Bytes()), archive.ApplyOptions{Overlay: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(20000*b.N)/b.Elapsed().Seconds(), "files/s")
}

// mixedReader yields n bytes: 64 KiB chunks, alternately text and
// pseudo-random bytes (from a 1 MiB pool made per seed, so no chunk repeats
// within gzip's 32 KiB window). It is cheap next to what it feeds.
type mixedReader struct {
	n, off    int64
	text, rnd []byte
}

const chunk = 64 << 10

func newMixed(n int64, seed uint64) *mixedReader {
	m := &mixedReader{n: n, rnd: make([]byte, 1<<20)}
	line := []byte("func layer(ctx context.Context) error { return nil }\n")
	for len(m.text) < chunk {
		m.text = append(m.text, line...)
	}
	m.text = m.text[:chunk]
	x := seed | 1
	for i := 0; i < len(m.rnd); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for k := range 8 {
			m.rnd[i+k] = byte(x >> (8 * k))
		}
	}
	return m
}

func (m *mixedReader) Read(p []byte) (int, error) {
	if m.off >= m.n {
		return 0, io.EOF
	}
	c := m.off / chunk
	in := m.off % chunk
	var src []byte
	if c%2 == 0 {
		src = m.text[in:]
	} else {
		base := (c / 2 * chunk) % int64(len(m.rnd))
		src = m.rnd[base+in : base+chunk]
	}
	n := copy(p, src[:min(int64(len(src)), m.n-m.off)])
	m.off += int64(n)
	return n, nil
}

func BenchmarkIngestLayer100MB(b *testing.B) {
	ctx := context.Background()
	s, err := store.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	const size = 100 << 20
	b.SetBytes(size)
	seed := uint64(1)
	for b.Loop() {
		// A new seed each time: a blob that is already stored is not
		// what this measures.
		seed++
		if _, _, err := s.Content().IngestLayer(ctx, newMixed(size, seed)); err != nil {
			b.Fatal(err)
		}
	}
}
