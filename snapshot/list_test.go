package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/internal/du"
	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/internal/testutil"
)

// Walk lists the committed layers present and, as damage, a chain ID's
// name that holds no directory; names that are no chain ID are not listed.
func TestWalk(t *testing.T) {
	ctx := context.Background()
	s := newSnapshotter(t)
	good := digest.FromString("good")
	if err := os.MkdirAll(s.LayerDir(good), 0o755); err != nil {
		t.Fatal(err)
	}
	bad := digest.FromString("bad")
	if err := os.Symlink("/etc", s.LayerDir(bad)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(filepath.Dir(s.LayerDir(good)), "not-a-chain"), 0o755); err != nil {
		t.Fatal(err)
	}
	var layers, damaged []digest.Digest
	err := s.Walk(ctx, func(ch digest.Digest, isDamaged bool) error {
		if isDamaged {
			damaged = append(damaged, ch)
		} else {
			layers = append(layers, ch)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(layers, []digest.Digest{good}) || !slices.Equal(damaged, []digest.Digest{bad}) {
		t.Errorf("Walk: layers %v, damaged %v; want [%s], [%s]", layers, damaged, good, bad)
	}
}

// SweepTmp empties tmp/ and says what it freed, which TmpUsage counted
// before; SweepActive removes one writable snapshot and leaves the others.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	s := newSnapshotter(t)
	if err := os.MkdirAll(filepath.Join(s.tmpDir(), "unpack-1", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.tmpDir(), "unpack-1", "etc", "f"), make([]byte, 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	usage, err := s.TmpUsage(ctx)
	if err != nil || usage < 10000 {
		t.Fatalf("TmpUsage = %d, %v", usage, err)
	}
	n, freed, err := s.SweepTmp(ctx)
	if err != nil || n != 1 || freed != usage {
		t.Errorf("SweepTmp = %d, %d, %v; want 1, %d", n, freed, err, usage)
	}
	if names, _ := du.Names(s.tmpDir()); len(names) != 0 {
		t.Errorf("tmp/ keeps %v", names)
	}

	keep, err := s.Prepare(ctx, Committed{})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := s.Prepare(ctx, Committed{})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := s.Actives()
	slices.Sort(ids)
	want := []string{keep.ID(), gone.ID()}
	slices.Sort(want)
	if err != nil || !slices.Equal(ids, want) {
		t.Fatalf("Actives = %v, %v; want %v", ids, err, want)
	}
	if _, err := s.SweepActive(ctx, gone.ID()); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.Actives(); !slices.Equal(ids, []string{keep.ID()}) {
		t.Errorf("after SweepActive: %v, want [%s]", ids, keep.ID())
	}
	for _, id := range []string{"", "..", "a/b"} {
		if _, err := s.SweepActive(ctx, id); err == nil {
			t.Errorf("SweepActive(%q) took it", id)
		}
	}
}

// A mount a killed process left in tmp/ is unmounted before its directory
// goes, and what it showed is untouched.
func TestSweepTmpUnmounts(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	s := newSnapshotter(t)
	shown := t.TempDir()
	if err := os.WriteFile(filepath.Join(shown, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(s.tmpDir(), "mnt-1")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := (mount.Mount{Type: "bind", Source: shown, Options: []string{"bind"}}).Mount(mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mount.Unmount(mnt) })
	if _, _, err := s.SweepTmp(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mnt); !os.IsNotExist(err) {
		t.Errorf("mount point kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(shown, "f")); err != nil {
		t.Errorf("the mounted directory lost its content: %v", err)
	}
}
