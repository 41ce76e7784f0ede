package testutil

import (
	"archive/tar"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// RequiresRoot skips t unless it runs as root: namespaces, overlayfs and
// chown need it. CI runs as root, so there these tests always run.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, overlayfs, chown); CI runs as root")
	}
}

// Busybox returns the path of a static busybox binary. Makefile's test target
// installs Debian's busybox-static; without it the test fails loudly rather
// than skipping, so a CI machine missing it is noticed.
func Busybox(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if isStatic(p) {
			return p
		}
	}
	t.Fatal("static busybox not found: apt-get install -y busybox-static")
	return ""
}

// isStatic reports whether p is an ELF executable without an interpreter, so
// it runs inside a root filesystem that has no libc.
func isStatic(p string) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// Applets lists the applet names the busybox binary at bb provides.
func Applets(t testing.TB, bb string) []string {
	t.Helper()
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	return strings.Fields(string(out))
}

// Passwd and Group are the busybox base image's account files.
const (
	Passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	Group  = "root:x:0:\nnogroup:x:65534:\n"
)

// BusyboxRootfs writes a minimal busybox root filesystem into dir (created if
// missing): /bin/busybox with one symlink per applet, /etc/passwd and
// /etc/group, and the usual empty directories.
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	bb := Busybox(t)
	for _, d := range []string{"bin", "etc", "proc", "root", "dev", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	write := func(p string, b []byte, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, p), b, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("bin/busybox", data, 0o755)
	write("etc/passwd", []byte(Passwd), 0o644)
	write("etc/group", []byte(Group), 0o644)
	for _, a := range Applets(t, bb) {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
}

// BusyboxLayer returns an uncompressed, deterministic layer tar of the
// busybox root filesystem (the same tree BusyboxRootfs writes).
func BusyboxLayer(t testing.TB) []byte {
	t.Helper()
	bb := Busybox(t)
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	var entries []TarEntry
	for _, d := range []string{"bin/", "dev/", "etc/", "proc/", "root/", "sys/"} {
		entries = append(entries, TarEntry{Name: d, Type: tar.TypeDir})
	}
	entries = append(entries,
		TarEntry{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
		TarEntry{Name: "bin/busybox", Mode: 0o755, Body: string(data)})
	applets := Applets(t, bb)
	sort.Strings(applets)
	for _, a := range applets {
		if a != "busybox" {
			entries = append(entries, TarEntry{Name: "bin/" + a, Type: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
		}
	}
	entries = append(entries,
		TarEntry{Name: "etc/group", Body: Group},
		TarEntry{Name: "etc/passwd", Body: Passwd})
	for i := range entries {
		entries[i].ModTime = time.Unix(0, 0)
		entries[i].Format = tar.FormatPAX
	}
	return Tar(t, entries...)
}
