package runner

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
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
