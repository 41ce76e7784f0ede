package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
)

// The isolation probes: what a hostile Dockerfile or image can try from
// inside a RUN step or a `run` container, each held to what `docker run`
// (runc with Docker's defaults) and a BuildKit RUN allow.

// isoImage imports, as name, a busybox root holding the marker /.inside
// and the static probe /sysprobe (runner/testdata/sysprobe), after edit
// (if any) has changed it.
func isoImage(t *testing.T, h *harness, name string, edit func(root string)) {
	t.Helper()
	root := t.TempDir()
	testutil.BusyboxRootfs(t, root)
	build := exec.Command("go", "build", "-o", filepath.Join(root, "sysprobe"), "../../runner/testdata/sysprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sysprobe: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(root, ".inside"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(root)
	}
	h.mustRun("import", root, name)
}

// hostTree is a directory standing for the host's files: a build or a
// container may change nothing in it.
type hostTree struct {
	dir    string
	before map[string]string
}

// newHostTree makes the tree with files (path -> content; a path ending
// in / is a directory) and records its state.
func newHostTree(t *testing.T, files map[string]string) *hostTree {
	t.Helper()
	ht := &hostTree{dir: t.TempDir()}
	for p, body := range files {
		full := filepath.Join(ht.dir, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An old mtime everywhere: a change made at test time shows.
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	filepath.WalkDir(ht.dir, func(p string, _ fs.DirEntry, _ error) error { return os.Chtimes(p, old, old) })
	ht.before = ht.state(t)
	return ht
}

func (ht *hostTree) path(p string) string { return filepath.Join(ht.dir, p) }

// state maps each path to its type, mode, mtime and content digest.
func (ht *hostTree) state(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(ht.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		s := fmt.Sprintf("%v %d", fi.Mode(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		rel, _ := filepath.Rel(ht.dir, p)
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// untouched fails t for every path of the tree that changed, appeared or
// went away, but the allowed paths and what is under them (a volume the
// container may write).
func (ht *hostTree) untouched(t *testing.T, allowed ...string) {
	t.Helper()
	now := ht.state(t)
	mayChange := func(p string) bool {
		for _, a := range allowed {
			if p == a || strings.HasPrefix(p, a+"/") {
				return true
			}
		}
		return false
	}
	for p, s := range ht.before {
		if n, ok := now[p]; !ok {
			t.Errorf("host %s is gone", p)
		} else if n != s && !mayChange(p) {
			t.Errorf("host %s changed: %s -> %s", p, s, n)
		}
	}
	for p := range now {
		if _, ok := ht.before[p]; !ok && !mayChange(p) {
			t.Errorf("host %s appeared", p)
		}
	}
}

// TestIsolationStubSymlinkSwap: the init makes mount points missing from
// the image (an image without /etc gets /etc, /etc/hosts, ...) and the
// runner removes them from the layer afterwards, on the host. A RUN that
// moves the made /etc away and puts a symlink to a host directory in its
// place must not have the host remove, or touch, that directory's files.
func TestIsolationStubSymlinkSwap(t *testing.T) {
	h := newHarness(t)
	ht := newHostTree(t, map[string]string{"hosts": "", "resolv.conf": "", "hostname": "", "empty/": ""})
	isoImage(t, h, "noetc:1", func(root string) {
		if err := os.RemoveAll(filepath.Join(root, "etc")); err != nil {
			t.Fatal(err)
		}
	})
	swap := "mv /etc /etc.moved && ln -s " + ht.dir + " /etc"
	dir := h.context("FROM noetc:1\nRUN "+swap+"\n", map[string]string{})
	h.build(dir, "noetc:swapped")
	ht.untouched(t)
	h.runImage("noetc:1", "sh", "-c", swap)
	ht.untouched(t)
	// The layer has what the command made: the moved dir and the symlink.
	if got := h.runImage("noetc:swapped", "readlink", "/etc"); got != ht.dir+"\n" {
		t.Errorf("/etc in the layer: %q", got)
	}
}

// TestIsolationMountTargetSymlinks: symlinks in the image at the places
// the runner mounts on (/etc/resolv.conf, hosts, hostname, a volume's or
// a tmpfs's target, the working directory), pointing at host paths by
// absolute or ../ paths, resolve inside the container's root: the host's
// files keep their content and nothing appears on the host.
func TestIsolationMountTargetSymlinks(t *testing.T) {
	h := newHarness(t)
	ht := newHostTree(t, map[string]string{"secret": "host secret\n", "hosts": "host hosts\n", "d/keep": "k", "vol/file": "v"})
	up := strings.Repeat("../", 12)
	isoImage(t, h, "links:1", func(root string) {
		// The host tree's path exists in the image too (WORKDIR does not
		// make a dangling link's missing parents): whichever of the two
		// a mount or a write lands in shows.
		if err := os.MkdirAll(filepath.Join(root, ht.dir), 0o755); err != nil {
			t.Fatal(err)
		}
		for link, target := range map[string]string{
			"etc/resolv.conf": ht.path("secret"),
			"etc/hosts":       up + ht.path("hosts")[1:],
			"etc/hostname":    ht.path("newfile"),
			"ctr":             ht.path("d"),
			"wd":              ht.path("d"),
			"tmp/hl":          ht.dir,
		} {
			if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
				t.Fatal(err)
			}
		}
	})
	write := "echo pwn >/etc/resolv.conf && echo pwn >/etc/hosts && echo pwn >/etc/hostname && touch inwd && test -e /.inside"
	dir := h.context("FROM links:1\nWORKDIR /wd\nRUN "+write+"\n", map[string]string{})
	h.build(dir, "links:built")
	ht.untouched(t)
	// The working directory, made where the link points inside the root.
	if got := h.runImage("links:built", "ls", ht.path("d")); got != "inwd\n" {
		t.Errorf("the RUN's working directory: %q", got)
	}
	out := h.mustRun("run", "--rm", "-v", ht.path("vol")+":/ctr", "--tmpfs", "/tmp/hl/tm", "-w", "/wd", "links:1",
		"sh", "-c", write+" && touch /ctr/inctr /tmp/hl/tm/x && cat /wd/file")
	if out != "v" {
		t.Errorf("the volume, through /ctr -> %s: %q", ht.path("d"), out)
	}
	ht.untouched(t, "vol")
	if _, err := os.Stat(ht.path("vol/inctr")); err != nil {
		t.Errorf("the volume did not get the container's file: %v", err)
	}
	// An image VOLUME at the link: the volume starts as a copy of what
	// the image (not the host) has there, which is nothing.
	dir = h.context("FROM links:1\nVOLUME /ctr\n", map[string]string{})
	h.build(dir, "links:volume")
	if got := h.runImage("links:volume", "sh", "-c", "ls -A /ctr; touch /ctr/new"); got != "" {
		t.Errorf("the image VOLUME at /ctr -> %s starts with: %q", ht.path("d"), got)
	}
	ht.untouched(t, "vol")
}

// TestIsolationEtcFilesStayOut: what a RUN writes to the /etc/hosts,
// resolv.conf and hostname bound into it reaches neither the host's files
// nor the layer (as with BuildKit): the image's own /etc/hosts stays, and
// the files the image lacks stay absent.
func TestIsolationEtcFilesStayOut(t *testing.T) {
	h := newHarness(t)
	isoImage(t, h, "etc:1", func(root string) {
		if err := os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("image hosts\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	before := map[string][]byte{}
	for _, f := range []string{"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"} {
		before[f], _ = os.ReadFile(f)
	}
	dir := h.context("FROM etc:1\nRUN for f in hosts resolv.conf hostname; do echo pwn >>/etc/$f; done\n", map[string]string{})
	out := t.TempDir()
	h.mustRun("build", "-o", "type=local,dest="+out, dir)
	for f, data := range before {
		if now, _ := os.ReadFile(f); !bytes.Equal(now, data) {
			t.Errorf("host %s changed: %q -> %q", f, data, now)
		}
	}
	if got, err := os.ReadFile(filepath.Join(out, "etc/hosts")); err != nil || string(got) != "image hosts\n" {
		t.Errorf("/etc/hosts in the layer: %q %v", got, err)
	}
	for _, f := range []string{"etc/resolv.conf", "etc/hostname"} {
		if _, err := os.Lstat(filepath.Join(out, f)); err == nil {
			t.Errorf("%s is in the layer", f)
		}
	}
}

// TestIsolationSystemDirSymlinks: an image whose /proc, /dev or /sys is a
// symlink is refused, as runc refuses it. Mounting through the link put
// /dev's nodes and directories into whatever host directory an absolute
// link named (the init made them through the host-side path of the
// root), could leave an unmasked /proc at a path the masks miss, and put
// a read-only sysfs over the whole root.
func TestIsolationSystemDirSymlinks(t *testing.T) {
	h := newHarness(t)
	ht := newHostTree(t, map[string]string{"devdir/": "", "procdir/": ""})
	for dir, target := range map[string]string{"proc": ht.path("procdir"), "sys": "/", "dev": ht.path("devdir")} {
		t.Run(dir, func(t *testing.T) {
			name := "sysdir-" + dir + ":1"
			isoImage(t, h, name, func(root string) {
				if err := os.Remove(filepath.Join(root, dir)); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(root, dir)); err != nil {
					t.Fatal(err)
				}
			})
			want := "/" + dir + " in the image is a symlink"
			ctx := h.context("FROM "+name+"\nRUN true\n", map[string]string{})
			if _, errOut, code := h.run("build", ctx); code != 1 || !strings.Contains(errOut, want) {
				t.Errorf("build: exit %d, want 1 and %q\n%s", code, want, errOut)
			}
			if _, errOut, code := h.run("run", "--rm", name, "true"); code == 0 || !strings.Contains(errOut, want) {
				t.Errorf("run: exit %d, want %q\n%s", code, want, errOut)
			}
			ht.untouched(t)
		})
	}
}

// isoProcProbe prints nothing but the capability lines where /proc and
// /sys are as Docker leaves them: sysctls, sysrq and irq settings
// read-only, the leaking files masked, /sys read-only, no writable cgroup
// file system, no kernel log, no clock, module, I/O port or file handle
// (the "shocker" escape) call.
const isoProcProbe = `grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status
for f in /proc/sys/kernel/domainname /proc/sys/kernel/core_pattern /proc/sys/vm/overcommit_memory /proc/sys/net/ipv4/ip_forward /proc/sysrq-trigger /proc/irq/default_smp_affinity /sys/kernel/uevent_helper; do
  [ -e $f ] && (cat $f >$f) 2>/dev/null && echo "wrote $f"
done
for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/interrupts /proc/latency_stats /proc/timer_stats; do
  [ -e $f ] && [ "$(head -c 1 $f | wc -c)" != 0 ] && echo "read $f"
done
for d in /proc/acpi /proc/scsi /proc/asound /sys/firmware; do
  [ -d $d ] && [ -n "$(ls -A $d)" ] && echo "listed $d"
done
head -c 1 /proc/kmsg >/dev/null 2>&1 && echo "read /proc/kmsg"
touch /sys/kernel/probe 2>/dev/null && echo "wrote /sys"
mkdir /sys/fs/cgroup/probe 2>/dev/null && echo "wrote cgroupfs"
grep -E ' cgroup2? ' /proc/self/mounts | grep -v ' ro,' | sed 's/^/rw cgroup: /'
/sysprobe clock_settime init_module iopl open_by_handle_at | grep -v EPERM
true`

// TestIsolationProcSysCaps: /proc, /sys and capabilities in a RUN and in
// `run`, as root and as another user, against Docker's defaults.
func TestIsolationProcSysCaps(t *testing.T) {
	h := newHarness(t)
	isoImage(t, h, "iso:1", func(root string) {
		// A setuid-root copy of the probe, as images carry su or ping.
		data, err := os.ReadFile(filepath.Join(root, "sysprobe"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "suidprobe"), data, 0o755); err != nil {
			t.Fatal(err)
		}
		// unix.Chmod: os.Chmod takes Go's mode bits, not 0o4000.
		if err := unix.Chmod(filepath.Join(root, "suidprobe"), 0o4755); err != nil {
			t.Fatal(err)
		}
	})
	const dockerCaps = "00000000a80425fb"
	root := fmt.Sprintf("CapInh:\t0000000000000000\nCapPrm:\t%[1]s\nCapEff:\t%[1]s\nCapBnd:\t%[1]s\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n", dockerCaps)
	// Another user has no capabilities; its setuid-root binary gets
	// root back (no no_new_privs, as in Docker).
	nobody := fmt.Sprintf("CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t%s\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nsetuid-root ok\n", dockerCaps)
	dir := h.context("FROM iso:1\nCOPY probe.sh /probe.sh\nRUN sh /probe.sh >/out.root\nUSER nobody\nRUN (sh /probe.sh; /suidprobe setuid-root) >/tmp/out.nobody\n",
		map[string]string{"probe.sh": isoProcProbe})
	h.build(dir, "iso:probed")
	if got := h.runImage("iso:probed", "cat", "/out.root"); got != root {
		t.Errorf("RUN as root:\n%s\nwant\n%s", got, root)
	}
	if got := h.runImage("iso:probed", "cat", "/tmp/out.nobody"); got != nobody {
		t.Errorf("RUN as nobody:\n%s\nwant\n%s", got, nobody)
	}
	if got := h.mustRun("run", "--rm", "-u", "0", "iso:probed", "sh", "/probe.sh"); got != root {
		t.Errorf("run as root:\n%s\nwant\n%s", got, root)
	}
	if got := h.mustRun("run", "--rm", "-u", "65534", "iso:probed", "sh", "-c", "sh /probe.sh; /suidprobe setuid-root"); got != nobody {
		t.Errorf("run -u 65534:\n%s\nwant\n%s", got, nobody)
	}
	// no-new-privileges: the setuid bit no longer gives root.
	if got := h.mustRun("run", "--rm", "-u", "65534", "--security-opt", "no-new-privileges", "iso:probed", "/suidprobe", "setuid-root"); got != "setuid-root EPERM\n" {
		t.Errorf("run -u 65534 --security-opt no-new-privileges: %q", got)
	}
}

// TestIsolationNamespaces: a RUN and a `run` container see only their own
// processes and cannot signal the host's, have their own hostname and
// SysV IPC, only lo with --network none, a /proc/1/root that is their own
// root, no way out of the root by the chroot-and-climb trick, and no
// mount the host makes after they start.
func TestIsolationNamespaces(t *testing.T) {
	h := newHarness(t)
	isoImage(t, h, "ns:1", nil)
	host := exec.Command("sleep", "4324")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { host.Process.Kill(); host.Wait() }()
	if out, err := exec.Command("ipcmk", "-M", "4096").CombinedOutput(); err == nil {
		var id int
		if _, err := fmt.Sscanf(string(out), "Shared memory id: %d", &id); err == nil {
			defer exec.Command("ipcrm", "-m", fmt.Sprint(id)).Run()
		}
	}
	hostname, _ := os.Hostname()
	probe := fmt.Sprintf(`ps -o pid,args | grep -c '[s]leep 4324'
kill -0 %d 2>/dev/null && echo "signalled the host"
[ "$(hostname)" = %q ] && echo "the host's name"
grep -vc key /proc/sysvipc/shm
ls /sys/class/net
test -e /proc/1/root/.inside && echo "own /proc/1/root"
/sysprobe chroot-escape
mount -t tmpfs none /tmp 2>/dev/null && echo "mounted"
true
`, host.Process.Pid, hostname)
	want := "0\n0\nlo\nown /proc/1/root\nchroot-escape ok\n"
	dir := h.context("FROM ns:1\nCOPY probe.sh /probe.sh\nRUN sh /probe.sh >/out && ! hostname probe 2>/dev/null\n", map[string]string{"probe.sh": probe})
	h.build(dir, "ns:probed", "--network", "none")
	if got := h.runImage("ns:probed", "cat", "/out"); got != want {
		t.Errorf("RUN --network none:\n%s\nwant\n%s", got, want)
	}
	if got := h.mustRun("run", "--rm", "--network", "none", "--hostname", "isohost", "ns:probed", "sh", "/probe.sh"); got != want {
		t.Errorf("run --network none:\n%s\nwant\n%s", got, want)
	}
	if now, _ := os.Hostname(); now != hostname {
		t.Errorf("host name changed: %q -> %q", hostname, now)
	}

	// The host mounts a tmpfs in a volume's directory once the container
	// is up: the container's mounts are a private copy, so it does not
	// see it (Docker's binds are rprivate).
	vol := t.TempDir()
	os.Mkdir(filepath.Join(vol, "sub"), 0o755)
	id := strings.TrimSpace(h.mustRun("run", "-d", "-v", vol+":/v", "ns:1", "sh", "-c",
		"touch /v/ready; while [ ! -e /v/go ]; do sleep 0.05; done; grep -c ' /v/sub ' /proc/self/mountinfo >/v/result"))
	defer h.run("rm", "-f", id)
	waitFile(t, filepath.Join(vol, "ready"))
	if err := unix.Mount("tmpfs", filepath.Join(vol, "sub"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(filepath.Join(vol, "sub"), unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(vol, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(vol, "result"))
	if got, _ := os.ReadFile(filepath.Join(vol, "result")); string(got) != "0\n" {
		t.Errorf("the container saw the host's later mount: %q", got)
	}
}

// waitFile waits for the container to make p; a container that never
// does fails the test after a generous while.
func waitFile(t *testing.T, p string) {
	t.Helper()
	for range 600 {
		if data, err := os.ReadFile(p); err == nil && (filepath.Base(p) != "result" || len(data) > 0) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", p)
}

// TestIsolationDevicesEverywhere: a node made with mknod (CAP_MKNOD is in
// Docker's set) opens nowhere the container can write: the root, /tmp,
// /dev, /dev/shm, /run, a volume, a tmpfs; and /dev holds none of the
// host's dangerous nodes.
func TestIsolationDevicesEverywhere(t *testing.T) {
	h := newHarness(t)
	isoImage(t, h, "dev:1", nil)
	probe := `for d in / /tmp /dev /dev/shm /run /v /tm; do
  mkdir -p $d && mknod $d/z c 1 5 && head -c 1 $d/z >/dev/null 2>&1 && echo "opened $d/z"
done
for n in mem kmem port kmsg sda vda nvme0 loop0 fuse; do [ -e /dev/$n ] && echo "/dev/$n"; done
true`
	if got := h.mustRun("run", "--rm", "-v", t.TempDir()+":/v", "--tmpfs", "/tm", "dev:1", "sh", "-c", probe); got != "" {
		t.Errorf("run:\n%s", got)
	}
	dir := h.context("FROM dev:1\nCOPY probe.sh /probe.sh\nRUN sh /probe.sh >/out\n", map[string]string{"probe.sh": strings.ReplaceAll(probe, " /v /tm", "")})
	h.build(dir, "dev:probed")
	if got := h.runImage("dev:probed", "cat", "/out"); got != "" {
		t.Errorf("RUN:\n%s", got)
	}
}

// TestIsolationProcessesEnd: what a RUN leaves running in the background
// dies with the step; a Ctrl-C to the builder during a RUN kills it and
// leaves no process and no mount; --pids-limit holds in `run`.
func TestIsolationProcessesEnd(t *testing.T) {
	h := newHarness(t)
	dir := h.context("FROM base/busybox:1\nRUN sleep 4325 & (setsid sleep 4326 &) ; nohup sleep 4327 >/dev/null 2>&1 & echo started\n", map[string]string{})
	h.build(dir, "bg:1")
	for _, s := range []string{"sleep 4325", "sleep 4326", "sleep 4327"} {
		if out, err := exec.Command("pgrep", "-f", s).Output(); err == nil {
			t.Errorf("%s outlived its RUN: %s", s, out)
		}
	}

	dir = h.context("FROM base/busybox:1\nRUN sleep 4328\n", map[string]string{})
	cmd := exec.Command(builderBin, "--root", h.root, "build", "--progress", "plain", dir)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if err := exec.Command("pgrep", "-f", "sleep 4328").Run(); err == nil {
			break
		}
		if i == 600 {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the RUN never started:\n%s", errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if err == nil {
		t.Errorf("build went on after SIGINT:\n%s", errOut.String())
	}
	if out, err := exec.Command("pgrep", "-f", "sleep 4328").Output(); err == nil {
		t.Errorf("the RUN outlived the builder's SIGINT: %s", out)
	}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(data), h.root) {
		t.Errorf("mounts left under the store after SIGINT (%v):\n%s", err, data)
	}

	out, errOut2, code := h.run("run", "--rm", "--pids-limit", "20", "base/busybox:1", "sh", "-c",
		"for i in $(seq 40); do sleep 4329 & done; echo forked")
	if code == 0 || strings.Contains(out, "forked") || !strings.Contains(errOut2, "can't fork") {
		t.Errorf("run --pids-limit 20 started 40 processes: exit %d\n%s%s", code, out, errOut2)
	}
	if out, err := exec.Command("pgrep", "-f", "sleep 4329").Output(); err == nil {
		t.Errorf("processes of the `run --rm` container left: %s", out)
	}
}
