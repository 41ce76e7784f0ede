package runner

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRemoveStubsFollowsNoSymlink: the command moved a stub's parent away
// and put a symlink to a host directory in its place; the host directory's
// empty files and directories of the stubs' names stay, with their times,
// and so does the symlink (the command's).
func TestRemoveStubsFollowsNoSymlink(t *testing.T) {
	upper, host, lower := t.TempDir(), t.TempDir(), t.TempDir()
	old := time.Unix(1_000_000, 0)
	for _, name := range []string{"hosts", "hostname"} {
		if err := os.WriteFile(filepath.Join(host, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{filepath.Join(host, "sub"), filepath.Join(lower, "etc", "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(host, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(upper, "etc")); err != nil {
		t.Fatal(err)
	}
	stubs := []stub{
		{Path: "etc/hosts", ParentMtime: old.UnixNano(), ParentMtimeAfter: old.UnixNano()},
		{Path: "etc/hostname", ParentMtime: old.UnixNano(), ParentMtimeAfter: old.UnixNano()},
		{Path: "etc/sub/x", ParentMtime: old.UnixNano(), ParentMtimeAfter: old.UnixNano()},
	}
	if err := removeStubs(upper, []string{lower}, stubs); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(host)
	if err != nil || len(entries) != 3 {
		t.Errorf("host directory now holds %v (%v)", entries, err)
	}
	if fi, err := os.Stat(host); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("host directory's mtime changed: %v %v", fi.ModTime(), err)
	}
	if _, err := os.Readlink(filepath.Join(upper, "etc")); err != nil {
		t.Errorf("the command's symlink is gone: %v", err)
	}
}
