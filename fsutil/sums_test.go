package fsutil

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

func TestHashFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		size     int
		statSize int // the size the caller saw, when the file changed since
	}{
		{0, 0}, {1, 1}, {64<<10 - 1, 64<<10 - 1}, {64 << 10, 64 << 10}, {64<<10 + 1, 64<<10 + 1}, {200000, 200000},
		{100, 50},          // grew since the stat
		{64 << 10, 1},      // grew by a full buffer
		{50, 100},          // shrank
		{128 << 10, 0},     // was empty
		{3 * 64 << 10, 64}, // many reads past the stat
	} {
		data := make([]byte, tc.size)
		rand.Read(data)
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := hashFile(context.Background(), p, int64(tc.statSize))
		if err != nil {
			t.Fatal(err)
		}
		if want := digest.FromBytes(data); got != want {
			t.Errorf("size %d (stat said %d): %s, want %s", tc.size, tc.statSize, got, want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := hashFile(ctx, filepath.Join(dir, "f"), 0); err == nil {
		t.Error("hashing with a cancelled context: no error")
	}
	if err := os.Symlink("f", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	if _, err := hashFile(context.Background(), filepath.Join(dir, "l"), 0); err == nil {
		t.Error("hashing followed a symlink")
	}
}
