package gc

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/snapshot"
)

// Sweep removes what killed processes left (temporary files, writable
// snapshots no container owns, a mount in tmp/) and keeps index.json's
// temporary file, which is written without the build lock, and the
// containers' writable snapshots.
func TestSweep(t *testing.T) {
	f := newFixture(t)
	ingest := f.temp(f.st.TmpDir(), "ingest-1", 0)
	unpack := f.temp(filepath.Join(f.st.SnapshotsDir(), "tmp"), "unpack-1", 0)
	index := f.temp(f.st.TmpDir(), "index.json.new", 0)
	owned, err := f.snap.Prepare(f.ctx, snapshot.Committed{})
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := f.snap.Prepare(f.ctx, snapshot.Committed{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan.UpperDir(), "file"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Without Containers, writable snapshots are not touched.
	rep, err := f.c.Sweep(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TempFiles != 2 || rep.Actives != 0 || exists(ingest) || exists(unpack) || !exists(index) {
		t.Errorf("sweep: %+v; ingest %v, unpack %v, index.json.new %v", rep, exists(ingest), exists(unpack), exists(index))
	}
	if !exists(orphan.UpperDir()) {
		t.Error("a writable snapshot went without a list of containers' ones")
	}

	// With them, a writable snapshot or container directory no container
	// owns goes.
	f.c.ContainersDir = filepath.Join(f.st.Root(), "containers")
	ownedDir := f.temp(filepath.Join(f.c.ContainersDir, "c1"), "log", 0)
	orphanDir := f.temp(filepath.Join(f.c.ContainersDir, "c2"), "log", 0)
	f.c.Containers = func(context.Context) (Owned, error) {
		return Owned{Snapshots: []string{owned.ID()}, IDs: []string{"c1"}}, nil
	}
	rep, err = f.c.Sweep(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Actives != 1 || exists(filepath.Dir(orphan.UpperDir())) || !exists(owned.UpperDir()) {
		t.Errorf("sweep: %+v; orphan %v, owned %v", rep, exists(orphan.UpperDir()), exists(owned.UpperDir()))
	}
	if rep.ContainerDirs != 1 || exists(filepath.Dir(orphanDir)) || !exists(ownedDir) {
		t.Errorf("sweep: %+v; orphan dir %v, owned dir %v", rep, exists(orphanDir), exists(ownedDir))
	}
}

// A mount a killed process left under tmp/ is unmounted before its
// directory is removed, and what it showed is untouched.
func TestSweepUnmounts(t *testing.T) {
	testutil.RequiresRoot(t)
	f := newFixture(t)
	layer := f.unpacked(digest.FromString("layer"), 100)
	mnt := filepath.Join(f.st.TmpDir(), "mnt-1")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := (mount.Mount{Type: "bind", Source: layer, Options: []string{"bind"}}).Mount(mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mount.Unmount(mnt) })
	if _, err := f.c.Sweep(f.ctx); err != nil {
		t.Fatal(err)
	}
	if exists(mnt) {
		t.Error("mount point kept")
	}
	if entries, err := os.ReadDir(layer); err != nil || len(entries) == 0 {
		t.Errorf("the mounted layer lost its content: %v, %v", entries, err)
	}
}
