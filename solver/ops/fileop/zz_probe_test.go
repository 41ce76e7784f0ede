package fileop

import (
	"context"
	"os"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

func TestProbe(t *testing.T) {
	dir := os.Getenv("PROBE")
	if dir == "" {
		t.Skip()
	}
	ctx := context.Background()
	req := CopyRequest{SrcRoot: dir, Sources: []string{"."}, Dest: "/ctx"}
	t0 := time.Now()
	sels, err := req.selectSources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("select: %v (%d entries)", time.Since(t0), len(sels[0].entries))
	t0 = time.Now()
	for _, e := range sels[0].entries {
		readXattrs(e.host)
	}
	t.Logf("xattrs: %v", time.Since(t0))
	req.ContentDigest = func(ctx context.Context, p string, fi os.FileInfo) (digest.Digest, error) {
		return digest.FromString(""), nil
	}
	t0 = time.Now()
	Digest(ctx, req)
	t.Logf("digest with fake cache: %v", time.Since(t0))
	if os.Getenv("PROBE_COLD") != "" {
		req.ContentDigest = nil
		t0 = time.Now()
		Digest(ctx, req)
		t.Logf("digest cold: %v", time.Since(t0))
	}
}
