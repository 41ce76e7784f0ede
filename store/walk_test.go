package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Walk lists exactly the blobs present, with their sizes: not a name that
// is no digest, nor a digest's name that holds no regular file (damage,
// which Verify reports), nor another algorithm's directory.
func TestWalk(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	want := map[digest.Digest]int64{}
	for _, c := range []string{"one", "two two"} {
		d, err := s.Content().Ingest(ctx, "text/plain", strings.NewReader(c))
		if err != nil {
			t.Fatal(err)
		}
		want[d.Digest] = int64(len(c))
	}
	dir := filepath.Dir(s.Content().blobPath(digest.FromString("")))
	for _, name := range []string{"not-a-digest", digest.FromString("x").Encoded() + ".tmp"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/passwd", s.Content().blobPath(digest.FromString("link"))); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s.Content().blobPath(digest.FromString("dir")), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(s.Content().blobPath(digest.FromString("fifo")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Content().ContentDir(), "blobs", "sha512"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := map[digest.Digest]int64{}
	err := s.Content().Walk(ctx, func(d digest.Digest, size int64) error {
		got[d] = size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("Walk = %v, want %v", got, want)
	}
	for d, n := range want {
		if got[d] != n {
			t.Errorf("Walk: %s has size %d, want %d", d, got[d], n)
		}
	}

	// fn's error stops the walk.
	stop := errors.New("stop")
	calls := 0
	err = s.Content().Walk(ctx, func(digest.Digest, int64) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Walk with a failing fn: %v after %d calls", err, calls)
	}
}
