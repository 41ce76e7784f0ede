package gobench

// A/B benchmarks of the two pieces of low-level code that replace what the
// standard library does: internal/dirent (getdents parsed in place) against
// os.File.Readdirnames, os.File.ReadDir and x/sys's ParseDirent, and
// internal/hugeheap (the build command's heap advised onto huge pages)
// on against off, in the workload it was written for. Each decision is
// recorded in the package's doc comment, with the numbers.
//
//	go test -run '^$' -bench 'ReadDir20k|Hugeheap' -count 5 ./bench/gobench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/fsutil"
	"github.com/builder-dev/builder/fsutil/statcache"
	"github.com/builder-dev/builder/internal/dirent"
	"github.com/builder-dev/builder/internal/hugeheap"
)

// flatDir makes a directory of n empty files with names of ~20 bytes.
func flatDir(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("file-with-a-name-%06d", i)))
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	return dir
}

func openDirFd(b *testing.B, dir string) int {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	return fd
}

// BenchmarkReadDir20k lists a 20,000-entry directory, opened as the callers
// open it (a raw descriptor), the names collected as fsutil collects them.
func BenchmarkReadDir20k(b *testing.B) {
	const n = 20000
	dir := flatDir(b, n)
	check := func(b *testing.B, got int) {
		if got != n {
			b.Fatalf("listed %d entries, want %d", got, n)
		}
	}
	b.Run("dirent.Read", func(b *testing.B) {
		var arena []byte
		var spans []int
		for b.Loop() {
			fd := openDirFd(b, dir)
			arena, spans = arena[:0], spans[:0]
			err := dirent.Read(fd, func(name []byte) {
				spans = append(spans, len(arena))
				arena = append(append(arena, name...), 0)
			})
			unix.Close(fd)
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(spans))
		}
	})
	b.Run("dirent.ReadTypes", func(b *testing.B) {
		type child struct {
			name string
			typ  uint8
		}
		for b.Loop() {
			fd := openDirFd(b, dir)
			var children []child
			err := dirent.ReadTypes(fd, func(name []byte, typ uint8) {
				children = append(children, child{string(name), typ})
			})
			unix.Close(fd)
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(children))
		}
	})
	b.Run("os.File.Readdirnames", func(b *testing.B) {
		for b.Loop() {
			f := os.NewFile(uintptr(openDirFd(b, dir)), dir)
			names, err := f.Readdirnames(-1)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(names))
		}
	})
	b.Run("os.File.ReadDir", func(b *testing.B) {
		for b.Loop() {
			f := os.NewFile(uintptr(openDirFd(b, dir)), dir)
			ents, err := f.ReadDir(-1)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(ents))
		}
	})
	b.Run("unix.ParseDirent", func(b *testing.B) {
		buf := make([]byte, 32<<10)
		for b.Loop() {
			fd := openDirFd(b, dir)
			var names []string
			for {
				m, err := unix.Getdents(fd, buf)
				if err != nil {
					b.Fatal(err)
				}
				if m <= 0 {
					break
				}
				_, _, names = unix.ParseDirent(buf[:m], -1, names)
			}
			unix.Close(fd)
			check(b, len(names))
		}
	})
}

// boltDB is the statcache's DB over a bare bbolt file, as the store
// provides it to a build.
type boltDB struct{ db *bbolt.DB }

func (d boltDB) View(_ context.Context, fn func(*bbolt.Tx) error) error   { return d.db.View(fn) }
func (d boltDB) Update(_ context.Context, fn func(*bbolt.Tx) error) error { return d.db.Update(fn) }

const hugeheapChildEnv = "GOBENCH_HUGEHEAP_CHILD"

// TestHugeheapChild is the process BenchmarkHugeheapNoopDigest starts:
// what `builder build` does for a no-op rebuild's COPY . (the statcache
// answering for every file of the context, the walk and the digest), in a
// fresh process with build's GC setting, with or without hugeheap.Reserve
// as build calls it. It does nothing in a normal test run.
func TestHugeheapChild(t *testing.T) {
	mode := os.Getenv(hugeheapChildEnv)
	if mode == "" {
		t.Skip("started by BenchmarkHugeheapNoopDigest only")
	}
	debug.SetGCPercent(400)
	if mode == "on" {
		hugeheap.Reserve(16 << 20)
	}
	ctx := context.Background()
	dir, dbPath := os.Getenv("GOBENCH_CONTEXT"), os.Getenv("GOBENCH_DB")
	db, err := bbolt.Open(dbPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := statcache.Open(ctx, boltDB{db}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fsutil.Digest(ctx, fsutil.CopyRequest{SrcRoot: dir, Sources: []string{"."}, Context: true, Dest: "/app/", ReadSums: c.ReadSums}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if hits := c.Stats(); os.Getenv("GOBENCH_WARM") != "" && hits.Hits == 0 {
		t.Fatalf("no statcache hits: %+v", hits)
	}
}

// BenchmarkHugeheapNoopDigest runs TestHugeheapChild in a fresh process per
// op over S1's 20,000-file context with a warm stat cache, hugeheap off
// and on, and reports the child's CPU time and page faults besides the
// wall time.
func BenchmarkHugeheapNoopDigest(b *testing.B) {
	dir := b.TempDir()
	tree20k(b, dir)
	dbPath := filepath.Join(b.TempDir(), "meta.db")
	// The stat cache keeps no record of a file changed in its last two
	// seconds (racy): let the tree age, then warm the cache once.
	time.Sleep(2500 * time.Millisecond)
	run := func(b *testing.B, mode string, warm bool) *syscall.Rusage {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHugeheapChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), hugeheapChildEnv+"="+mode, "GOBENCH_CONTEXT="+dir, "GOBENCH_DB="+dbPath)
		if warm {
			cmd.Env = append(cmd.Env, "GOBENCH_WARM=1")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		return cmd.ProcessState.SysUsage().(*syscall.Rusage)
	}
	run(b, "off", false)
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			var cpu time.Duration
			var faults int64
			for b.Loop() {
				ru := run(b, mode, true)
				cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
				faults += ru.Minflt
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N)/1000, "cpu-ms/op")
			b.ReportMetric(float64(faults)/float64(b.N), "faults/op")
		})
	}
}
