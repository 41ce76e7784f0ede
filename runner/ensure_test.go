package runner

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
)

// TestMakeStubStaysInRoot: a mount point's parent found a directory by
// ensure's resolution and then swapped for a symlink to a host directory
// (a volume shared with a running container can change so) gets the stub
// inside the root, never in the host directory.
func TestMakeStubStaysInRoot(t *testing.T) {
	host := t.TempDir()
	r := &rootfs{dir: t.TempDir(), st: &statusWriter{enc: json.NewEncoder(io.Discard)}}
	if err := os.MkdirAll(filepath.Join(r.dir, host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(r.dir, "vol")); err != nil {
		t.Fatal(err)
	}
	rootFd, err := unix.Open(r.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootFd)
	for _, file := range []bool{false, true} {
		name := map[bool]string{false: "dir", true: "file"}[file]
		if made, err := r.makeStub(rootFd, "vol", name, file, false); err != nil || !made {
			t.Fatalf("makeStub vol/%s: %v %v", name, made, err)
		}
		if _, err := os.Lstat(filepath.Join(r.dir, host, name)); err != nil {
			t.Errorf("vol/%s is not in the root: %v", name, err)
		}
	}
	if entries, _ := os.ReadDir(host); len(entries) != 0 {
		t.Errorf("stubs made in the host directory: %v", entries)
	}
}

// TestSameMount: the check before flags go on a new bind accepts only the
// bind itself: not the source directory where it lies (same file, but on
// the mount point's mount), nor another directory.
func TestSameMount(t *testing.T) {
	testutil.RequiresRoot(t)
	src, dir := t.TempDir(), t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	var srcSt unix.Stat_t
	if err := unix.Stat(src, &srcSt); err != nil {
		t.Fatal(err)
	}
	open := func(p string) int {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	fd := open(target)
	if err := unix.Mount(src, fdPath(fd), "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	if !sameMount(fd, open(target), &srcSt) {
		t.Error("the new bind is not recognised")
	}
	if sameMount(fd, open(src), &srcSt) {
		t.Error("the bind's source directory passes for the bind")
	}
	if sameMount(fd, open(dir), &srcSt) {
		t.Error("another directory passes for the bind")
	}
}
