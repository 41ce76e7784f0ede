package statcache

import (
	"context"
	"os"
	"syscall"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/builder-dev/builder/solver/ops/fileop"
)

func TestProbe(t *testing.T) {
	dir := os.Getenv("PROBE")
	if dir == "" {
		t.Skip()
	}
	ctx := context.Background()
	db := newDB(t)
	c := open(t, db, dir)
	cf, _ := os.Create("/tmp/cold.prof")
	pprof.StartCPUProfile(cf)
	t0 := time.Now()
	sums(t, dir, c)
	t.Logf("cold digest %v", time.Since(t0))
	t0 = time.Now()
	flush(t, c)
	t.Logf("cold flush %v", time.Since(t0))
	pprof.StopCPUProfile()
	pf, _ := os.Create("/tmp/warm2.prof")
	pprof.StartCPUProfile(pf)
	defer pprof.StopCPUProfile()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	var bo, bd, bf, bt time.Duration = time.Hour, time.Hour, time.Hour, time.Hour
	for range 40 {
		t0 := time.Now()
		c, err := Open(ctx, db, dir)
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		req := fileop.CopyRequest{SrcRoot: dir, Sources: []string{"."}, Dest: "/ctx", ReadSums: c.ReadSums}
		if _, _, err := fileop.DigestEntries(ctx, req); err != nil {
			t.Fatal(err)
		}
		t2 := time.Now()
		flush(t, c)
		t3 := time.Now()
		bo, bd, bf, bt = min(bo, t1.Sub(t0)), min(bd, t2.Sub(t1)), min(bf, t3.Sub(t2)), min(bt, t3.Sub(t0))
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / 40
	t.Logf("warm cpu per run %v (user %v sys %v)", cpu, time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano())/40, time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())/40)
	t.Logf("warm best: open %v digest %v flush %v total %v", bo, bd, bf, bt)
}
