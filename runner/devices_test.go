package runner

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostBlockDevice returns the major:minor of a block device the host has
// (its first partition table entry), so that opening a node of it would
// succeed if nothing stopped it; skips if there is none.
func hostBlockDevice(t *testing.T) (major, minor uint32) {
	t.Helper()
	f, err := os.Open("/proc/partitions")
	if err != nil {
		t.Skipf("no /proc/partitions: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if _, err := fmt.Sscan(sc.Text(), &major, &minor); err == nil {
			return major, minor
		}
	}
	t.Skip("the host has no block device")
	return 0, 0
}

// TestImageDeviceNodesDoNotOpen: device nodes an image carries, anywhere
// in its layers, cannot be opened from the container (a RUN runs as root
// with CAP_DAC_OVERRIDE, so only nodev stops it): reading the host's disk
// fails with "Permission denied", while the container's own /dev works.
func TestImageDeviceNodesDoNotOpen(t *testing.T) {
	lower := ownLower(t)
	major, minor := hostBlockDevice(t)
	for _, n := range []struct {
		path string
		mode uint32
		dev  int
	}{
		{"disk", unix.S_IFBLK, int(unix.Mkdev(major, minor))},
		{"dev/disk", unix.S_IFBLK, int(unix.Mkdev(major, minor))}, // hidden by /dev's tmpfs, but still
		{"var/zero", unix.S_IFCHR, int(unix.Mkdev(1, 5))},
	} {
		p := filepath.Join(lower, n.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(p, n.mode|0o666, n.dev); err != nil {
			t.Fatal(err)
		}
	}
	script := `dd if=/disk of=/dev/null bs=512 count=1 2>&1; echo "disk $?"
head -c 1 /var/zero 2>&1 >/dev/null; echo "zero $?"
head -c 4 /dev/zero | wc -c`
	c := newContainer(t, lower, sh(script)...)
	out := c.mustRun(t)
	for _, want := range []string{"disk 1", "zero 1", "Permission denied", "\n4\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "records in") && !strings.Contains(out, "Permission denied") {
		t.Errorf("the host's disk was read:\n%s", out)
	}
}

// TestMknodDevicesDoNotOpen: a node the command makes (CAP_MKNOD is one
// of Docker's default capabilities) does not open wherever it can write:
// the root, /dev, /dev/shm, a tmpfs and a bind-mounted host directory.
func TestMknodDevicesDoNotOpen(t *testing.T) {
	major, minor := hostBlockDevice(t)
	vol := t.TempDir()
	var script strings.Builder
	for _, dir := range []string{"/tmp", "/dev", "/dev/shm", "/scratch", "/vol"} {
		fmt.Fprintf(&script, "mknod %[1]s/blk b %[2]d %[3]d && mknod %[1]s/chr c 1 5 || echo 'mknod failed in %[1]s'\n", dir, major, minor)
		fmt.Fprintf(&script, "dd if=%[1]s/blk of=/dev/null bs=512 count=1 2>/dev/null && echo 'opened %[1]s/blk'\n", dir)
		fmt.Fprintf(&script, "head -c 1 %[1]s/chr >/dev/null 2>&1 && echo 'opened %[1]s/chr'\n", dir)
	}
	script.WriteString("echo done")
	c := newContainer(t, "", sh(script.String())...)
	c.spec.Mounts = []Mount{{Type: "tmpfs", Dest: "/scratch"}, {Type: "bind", Source: vol, Dest: "/vol"}}
	if out := c.mustRun(t); out != "done\n" {
		t.Fatalf("got:\n%s", out)
	}
}

// TestBindMountSubmountsNodev: a bind-mounted host directory that holds a
// device file system of its own (here a devtmpfs-like tmpfs with a node)
// serves no device either: nodev reaches every mount below the bind.
func TestBindMountSubmountsNodev(t *testing.T) {
	c := newContainer(t, "", sh("head -c 1 /host/sub/zero >/dev/null 2>&1 && echo opened; echo done")...)
	src := t.TempDir()
	sub := filepath.Join(src, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=16k"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(sub, unix.MNT_DETACH)
	if err := unix.Mknod(filepath.Join(sub, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	c.spec.Mounts = []Mount{{Type: "bind", Source: src, Dest: "/host"}}
	if out := c.mustRun(t); out != "done\n" {
		t.Fatalf("got %q", out)
	}
}

// TestNodevStays: the container cannot remount its root or /dev to get
// device access back (no CAP_SYS_ADMIN).
func TestNodevStays(t *testing.T) {
	script := `mount -o remount,dev / 2>&1; mount -o remount,dev /dev 2>&1
mknod /z c 1 5 && mknod /dev/z c 1 5 && head -c 1 /z >/dev/null 2>&1 || head -c 1 /dev/z >/dev/null 2>&1 || echo refused`
	c := newContainer(t, "", sh(script)...)
	out := c.mustRun(t)
	if strings.Count(strings.ToLower(out), "permission denied") != 2 || !strings.HasSuffix(out, "refused\n") {
		t.Fatalf("got:\n%s", out)
	}
}

// TestAllowedDevicesOpen: the container's /dev nodes all work, the
// terminal ones with Tty too.
func TestAllowedDevicesOpen(t *testing.T) {
	script := `echo x > /dev/null && head -c 2 /dev/zero | wc -c && head -c 2 /dev/urandom | wc -c &&
head -c 2 /dev/random | wc -c && (echo x > /dev/full) 2>&1 | grep -c 'No space' &&
echo tty > /dev/tty && test -c /dev/console && (exec 3<>/dev/ptmx) && echo ok`
	c := newContainer(t, "", sh(script)...)
	c.spec.Tty = true
	var out strings.Builder
	if _, _, err := c.runContext(t, t.Context(), Stdio{Stdout: &out}); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if got, want := out.String(), "2\r\n2\r\n2\r\n1\r\ntty\r\nok\r\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestDeviceNodesStayTheHosts: the allowed nodes are the host's, bound
// in read-only: root in the container (CAP_FOWNER, CAP_CHOWN) cannot
// change the host's /dev/null.
func TestDeviceNodesStayTheHosts(t *testing.T) {
	var before unix.Stat_t
	if err := unix.Stat("/dev/null", &before); err != nil {
		t.Fatal(err)
	}
	c := newContainer(t, "", sh("chmod 600 /dev/null 2>&1; chown 65534 /dev/null 2>&1; touch -d 2001-01-01 /dev/null 2>&1; echo x > /dev/null && echo written")...)
	out := c.mustRun(t)
	var after unix.Stat_t
	if err := unix.Stat("/dev/null", &after); err != nil {
		t.Fatal(err)
	}
	if after.Mode != before.Mode || after.Uid != before.Uid || after.Mtim != before.Mtim {
		// Put it back before failing: the host needs it.
		_ = unix.Chmod("/dev/null", before.Mode&0o7777)
		_ = unix.Chown("/dev/null", int(before.Uid), int(before.Gid))
		_ = unix.UtimesNano("/dev/null", []unix.Timespec{before.Atim, before.Mtim})
		t.Fatalf("the container changed the host's /dev/null (mode %o -> %o, uid %d -> %d):\n%s", before.Mode, after.Mode, before.Uid, after.Uid, out)
	}
	if strings.Count(out, "Read-only file system") != 3 || !strings.HasSuffix(out, "written\n") {
		t.Fatalf("got:\n%s", out)
	}
}
