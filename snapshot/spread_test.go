package snapshot

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestNewSpreadsScratchDirs checks that, on ext4, New marks the dirs where
// layers are unpacked and snapshots written with FS_TOPDIR_FL (and only
// that flag: a wrong bit, FS_JOURNAL_DATA_FL, was once refused with EPERM
// and silently dropped), and that opening the snapshotter again keeps it.
func TestNewSpreadsScratchDirs(t *testing.T) {
	s := newSnapshotter(t)
	var sfs unix.Statfs_t
	if err := unix.Statfs(s.tmpDir(), &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type != unix.EXT4_SUPER_MAGIC {
		t.Skipf("the temp dir is not on ext4 (magic %#x): FS_TOPDIR_FL is ext4's", sfs.Type)
	}
	flags := func(dir string) uint32 {
		t.Helper()
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		f, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	rootFlags := flags(s.root)
	if rootFlags&fsTopdirFL != 0 {
		t.Fatalf("the root is marked too (flags %#x)", rootFlags)
	}
	if _, err := New(s.root); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{s.tmpDir(), s.activeDir()} {
		// The same flags as a plain directory, plus FS_TOPDIR_FL.
		if got, want := flags(d), rootFlags|fsTopdirFL; got != want {
			t.Errorf("%s: flags %#x, want %#x", d, got, want)
		}
	}
}
