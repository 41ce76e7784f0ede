package du

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Size counts a hard-linked file once and a missing path as nothing.
func TestSize(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	one := Size(dir)
	if one < 64<<10 {
		t.Fatalf("Size = %d, want at least %d", one, 64<<10)
	}
	if err := os.Link(f, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if got := Size(dir); got != one {
		t.Errorf("with a hard link: %d, want %d", got, one)
	}
	if got := Size(filepath.Join(dir, "missing")); got != 0 {
		t.Errorf("missing path: %d", got)
	}
}

// Remove unmounts first, then measures and removes; a failed unmount
// leaves the tree.
func TestRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "litter")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "f"), make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	want := Size(dir)
	boom := errors.New("boom")
	if _, err := Remove(dir, func(string) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Remove with a failing unmount: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("removed although the unmount failed: %v", err)
	}
	var unmounted string
	n, err := Remove(dir, func(d string) error { unmounted = d; return nil })
	if err != nil || n != want || unmounted != dir {
		t.Errorf("Remove = %d, %v (unmounted %q); want %d, nil (%q)", n, err, unmounted, want, dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("still there: %v", err)
	}
}

func TestEntries(t *testing.T) {
	dir := t.TempDir()
	if names, err := Names(filepath.Join(dir, "missing")); err != nil || names != nil {
		t.Fatalf("Names(missing) = %v, %v; want none", names, err)
	}
	for _, n := range []string{"a", "b", "keep"} {
		if err := os.WriteFile(filepath.Join(dir, n), make([]byte, 8192), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names, err := Names(dir)
	if err != nil || len(names) != 3 {
		t.Fatalf("Names = %v, %v", names, err)
	}
	ctx := context.Background()
	want := Size(filepath.Join(dir, "a")) + Size(filepath.Join(dir, "b"))
	if got, err := SizeOfEntries(ctx, dir, []string{"a", "b"}); err != nil || got != want || got == 0 {
		t.Fatalf("SizeOfEntries = %d, %v; want %d", got, err, want)
	}
	n, freed, err := RemoveEntries(ctx, dir, []string{"a", "b"}, nil)
	if err != nil || n != 2 || freed != want {
		t.Fatalf("RemoveEntries = %d, %d, %v; want 2, %d", n, freed, err, want)
	}
	if names, _ := Names(dir); len(names) != 1 || names[0] != "keep" {
		t.Fatalf("left %v, want [keep]", names)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if n, _, err := RemoveEntries(cancelled, dir, []string{"keep"}, nil); n != 0 || err == nil {
		t.Fatalf("RemoveEntries after cancel = %d, %v; want 0 and an error", n, err)
	}
}
