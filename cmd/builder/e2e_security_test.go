package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
)

// TestSecurityDevicesDenied: device nodes do not open in a RUN or a `run`
// container, whether a layer carries them (an imported root with a node
// of the host's disk and of /dev/zero) or the command makes them with
// mknod; the container's own /dev works.
func TestSecurityDevicesDenied(t *testing.T) {
	h := newHarness(t)
	var disk [2]uint32
	data, err := os.ReadFile("/proc/partitions")
	if err != nil {
		t.Skipf("no /proc/partitions: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if _, err := fmt.Sscan(line, &disk[0], &disk[1]); err == nil {
			break
		}
	}
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	if err := unix.Mknod(filepath.Join(rootfs, "disk"), unix.S_IFBLK|0o666, int(unix.Mkdev(disk[0], disk[1]))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(rootfs, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	h.mustRun("import", rootfs, "devices:1")

	for name, run := range map[string]string{
		"layer char node":  "head -c 1 /zero",
		"layer block node": "dd if=/disk of=/dev/null bs=512 count=1",
		"mknod char":       "mknod /tmp/z c 1 5 && head -c 1 /tmp/z",
		"mknod block":      fmt.Sprintf("mknod /tmp/sda b %d %d && dd if=/tmp/sda of=/dev/null bs=512 count=1", disk[0], disk[1]),
	} {
		t.Run(name, func(t *testing.T) {
			dir := h.context("FROM devices:1\nRUN "+run+"\n", map[string]string{})
			_, errOut, code := h.run("build", "-t", "devices:run", dir)
			if code == 0 {
				t.Fatalf("RUN %s succeeded", run)
			}
			if !strings.Contains(errOut, "Permission denied") && !strings.Contains(errOut, "Operation not permitted") {
				t.Errorf("no permission error:\n%s", errOut)
			}
			out, _, code := h.run("run", "--rm", "devices:1", "sh", "-c", run+" >/dev/null 2>&1; echo $?")
			if code != 0 || strings.TrimSpace(out) == "0" {
				t.Errorf("run: %s opened it (exit %d, %q)", run, code, out)
			}
		})
	}
	dir := h.context("FROM devices:1\nRUN echo x >/dev/null && head -c 2 /dev/zero | wc -c && head -c 2 /dev/urandom | wc -c && test -c /dev/full\n", map[string]string{})
	h.build(dir, "devices:ok")
	if out := h.runImage("devices:1", "sh", "-c", "head -c 2 /dev/zero | wc -c; head -c 2 /dev/random | wc -c"); out != "2\n2\n" {
		t.Errorf("run: /dev/zero, /dev/random: %q", out)
	}
}
