package fileop

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	dir := os.Getenv("PROBE")
	if dir == "" {
		t.Skip()
	}
	ctx := context.Background()
	req := CopyRequest{SrcRoot: dir, Sources: []string{"."}, Dest: "/ctx"}
	for _, p := range []int{1, 2, 1, 2, 4} {
		runtime.GOMAXPROCS(p)
		best := time.Hour
		for range 5 {
			t0 := time.Now()
			if _, err := req.selectSources(ctx); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(t0))
		}
		t.Logf("procs %d: select best %v", p, best)
	}
}
