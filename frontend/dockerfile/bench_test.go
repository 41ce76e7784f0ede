package dockerfile

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkConvert converts every golden case's Dockerfile: the frontend's
// share of a no-op rebuild.
func BenchmarkConvert(b *testing.B) {
	files, _ := filepath.Glob("testdata/*/Dockerfile")
	var srcs [][]byte
	for _, f := range files {
		dt, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		srcs = append(srcs, dt)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, dt := range srcs {
			Convert(context.Background(), dt, testOptions(&stubResolver{}))
		}
	}
}
