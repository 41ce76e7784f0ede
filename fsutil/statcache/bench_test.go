package statcache

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/builder-dev/builder/fsutil"
)

// The benchmarks digest a context as `COPY . /ctx` does: 20,000 files in
// 400 directories, log-normal sizes (median ~1.5 KB, ~50 MB in all, so
// that a cold run stays short), generated once with a fixed seed. Set
// STATCACHE_BENCH_CONTEXT to a directory to use it instead (for instance
// the S2 bench context, 300 MB).

var benchCtx struct {
	once sync.Once
	dir  string
	tmp  string // generated here; removed by TestMain
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchCtx.tmp != "" {
		os.RemoveAll(benchCtx.tmp)
	}
	os.Exit(code)
}

func benchContext(b *testing.B) string {
	b.Helper()
	benchCtx.once.Do(func() {
		if d := os.Getenv("STATCACHE_BENCH_CONTEXT"); d != "" {
			benchCtx.dir = d
			return
		}
		benchCtx.tmp, benchCtx.err = os.MkdirTemp("", "statcache-bench-")
		if benchCtx.err == nil {
			benchCtx.dir = benchCtx.tmp
			benchCtx.err = generate(benchCtx.dir, 20000)
		}
	})
	if benchCtx.err != nil {
		b.Fatal(benchCtx.err)
	}
	return benchCtx.dir
}

func generate(dir string, files int) error {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for i := range files {
		d := filepath.Join(dir, fmt.Sprintf("p%02d/m%02d", i%20, (i/20)%20))
		if i < 400 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		size := min(int(math.Exp(7.3+1.2*r.NormFloat64())), len(buf))
		off := r.IntN(len(buf) - size + 1)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d", i)), buf[off:off+size], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func benchDigest(b *testing.B, dir string, c *Cache) {
	b.Helper()
	req := fsutil.CopyRequest{SrcRoot: dir, Sources: []string{"."}, Dest: "/ctx"}
	if c != nil {
		req.ReadSums = c.ReadSums
	}
	if _, _, err := fsutil.DigestEntries(context.Background(), req); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDigestWarm is a no-op rebuild's share: open the cache, walk and
// digest the context with every file answered from a record, flush
// (nothing to write).
func BenchmarkDigestWarm(b *testing.B) {
	dir := benchContext(b)
	db := newDB(b)
	c := open(b, db, dir) // no racy window: the files were just written
	benchDigest(b, dir, c)
	flush(b, c)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		c, err := Open(context.Background(), db, dir)
		if err != nil {
			b.Fatal(err)
		}
		benchDigest(b, dir, c)
		if err := c.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		if s := c.Stats(); s.Misses != 0 {
			b.Fatalf("warm run read %d files", s.Misses)
		}
	}
	reportCPU(b, cpu)
}

// cpuTime returns the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per iteration since start: on a shared
// machine it moves less than the wall time does.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

// BenchmarkDigestCold is a first build's share: every file read and
// hashed (in parallel), and every record written.
func BenchmarkDigestCold(b *testing.B) {
	dir := benchContext(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		db := newDB(b)
		b.StartTimer()
		c := open(b, db, dir)
		benchDigest(b, dir, c)
		flush(b, c)
	}
}

// BenchmarkDigestUncached digests without a stat cache, for comparison.
func BenchmarkDigestUncached(b *testing.B) {
	dir := benchContext(b)
	b.ReportAllocs()
	for b.Loop() {
		benchDigest(b, dir, nil)
	}
}
