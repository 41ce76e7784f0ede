package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/runner"
	"github.com/moby/sys/mountinfo"
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

// TestSecuritySeccomp: every RUN and every `run` container is under
// Docker's default seccomp profile: /proc/self/status shows one filter,
// calls the profile blocks fail with EPERM, allowed ones work.
func TestSecuritySeccomp(t *testing.T) {
	h := newHarness(t)
	ctxDir := h.context("FROM base/busybox:1\nCOPY sysprobe /sysprobe\nARG PROBE\nRUN sh -c \"$PROBE\" > /run.out\n", map[string]string{})
	build := exec.Command("go", "build", "-o", filepath.Join(ctxDir, "sysprobe"), "../../runner/testdata/sysprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sysprobe: %v\n%s", err, out)
	}
	probe := "grep -E '^(Seccomp|Seccomp_filters):' /proc/self/status; /sysprobe keyctl add_key unshare-user mount kexec_load bpf perf_event_open clone3 getpid socket-inet"
	want := "Seccomp:\t2\nSeccomp_filters:\t1\nkeyctl EPERM\nadd_key EPERM\nunshare-user EPERM\nmount EPERM\nkexec_load EPERM\nbpf EPERM\nperf_event_open EPERM\nclone3 ENOSYS\ngetpid ok\nsocket-inet ok\n"
	h.mustRun("build", "-t", "seccomp:1", "--build-arg", "PROBE="+probe, ctxDir)
	if got := h.runImage("seccomp:1", "cat", "/run.out"); got != want {
		t.Errorf("RUN: got\n%s\nwant\n%s", got, want)
	}
	if got := h.runImage("seccomp:1", "sh", "-c", probe); got != want {
		t.Errorf("run: got\n%s\nwant\n%s", got, want)
	}
	// --security-opt no-new-privileges: the bit, and the same filter.
	if got := h.mustRun("run", "--rm", "--security-opt", "no-new-privileges", "seccomp:1", "grep", "-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status"); got != "NoNewPrivs:\t1\nSeccomp:\t2\n" {
		t.Errorf("run --security-opt no-new-privileges: %q", got)
	}
	if got := h.runImage("seccomp:1", "grep", "NoNewPrivs:", "/proc/self/status"); got != "NoNewPrivs:\t0\n" {
		t.Errorf("run: %q (Docker leaves no_new_privs off)", got)
	}
	if _, errOut, code := h.run("run", "--rm", "--security-opt", "seccomp=unconfined", "seccomp:1", "true"); code != 2 {
		t.Errorf("run --security-opt seccomp=unconfined: exit %d, want 2\n%s", code, errOut)
	}
	// busybox's unshare: a user namespace is refused in a RUN.
	dir := h.context("FROM base/busybox:1\nRUN unshare -U true\n", map[string]string{})
	if _, errOut, code := h.run("build", dir); code == 0 || !strings.Contains(errOut, "Operation not permitted") {
		t.Errorf("RUN unshare -U: exit %d\n%s", code, errOut)
	}
}

// TestSecurityBuildPidsLimit: each RUN gets a pids limit, the default one
// unless --pids-limit says otherwise; a fork loop over it fails the build
// cleanly (no process, no cgroup left). The RUN asks the test, over HTTP,
// to read its pids.max from the host's side while it runs.
func TestSecurityBuildPidsLimit(t *testing.T) {
	h := newHarness(t)
	pidsRoot := pidsHierarchy(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The path is the RUN's cgroup, as its /proc/self/cgroup says.
		data, err := os.ReadFile(filepath.Join(pidsRoot, filepath.Clean(r.URL.Path), "pids.max"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	run := fmt.Sprintf("RUN wget -q -O /pids.max %s$(grep -E ':pids:|^0::' /proc/self/cgroup | head -1 | cut -d: -f3)\n", srv.URL)
	dir := h.context("FROM base/busybox:1\n"+run, map[string]string{})
	h.build(dir, "pids:default")
	if got := h.runImage("pids:default", "cat", "/pids.max"); got != fmt.Sprintf("%d\n", runner.DefaultBuildPidsLimit) {
		t.Errorf("default pids.max of a RUN: %q", got)
	}
	h.build(dir, "pids:set", "--no-cache", "--pids-limit", "123")
	if got := h.runImage("pids:set", "cat", "/pids.max"); got != "123\n" {
		t.Errorf("pids.max with --pids-limit 123: %q", got)
	}

	bomb := h.context("FROM base/busybox:1\nRUN grep -E ':pids:|^0::' /proc/self/cgroup; for i in $(seq 100); do sleep 4321 & done; echo all\"\"started\n", map[string]string{})
	out, errOut, code := h.run("build", "--progress", "plain", "--pids-limit", "20", bomb)
	if code != 1 || strings.Contains(out+errOut, "allstarted") || !strings.Contains(errOut, "can't fork") {
		t.Fatalf("fork loop under --pids-limit 20: exit %d\n%s%s", code, out, errOut)
	}
	cg := regexp.MustCompile(`/builder/run-[0-9a-f]+`).FindString(errOut)
	if cg == "" {
		t.Fatalf("the RUN did not show its cgroup:\n%s", errOut)
	}
	if _, err := os.Stat(filepath.Join(pidsRoot, cg)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed RUN's cgroup %s is left (%v)", cg, err)
	}
	if data, err := exec.Command("pgrep", "-f", "sleep 4321").Output(); err == nil {
		t.Errorf("processes of the failed RUN left: %s", data)
	}
	// --memory: a RUN that needs more is killed, and the build fails.
	hog := h.context("FROM base/busybox:1\nRUN dd if=/dev/zero of=/dev/null bs=256M count=1\n", map[string]string{})
	if _, errOut, code := h.run("build", "--memory", "64m", hog); code != 1 || !strings.Contains(errOut, "137") {
		t.Errorf("RUN over --memory 64m: exit %d\n%s", code, errOut)
	}
	h.mustRun("build", "--memory", "512m", hog)
	for _, bad := range [][]string{{"--memory", "1k"}, {"--memory", "lots"}} {
		if _, errOut, code := h.run(append([]string{"build"}, append(bad, dir)...)...); code != 2 {
			t.Errorf("build %v: exit %d, want 2\n%s", bad, code, errOut)
		}
	}
}

// pidsHierarchy is where this host's pids controller is mounted: its v1
// hierarchy, else the unified one.
func pidsHierarchy(t *testing.T) string {
	t.Helper()
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		t.Fatal(err)
	}
	v2 := ""
	for _, m := range mounts {
		switch {
		case m.FSType == "cgroup" && strings.Contains(","+m.VFSOptions+",", ",pids,"):
			return m.Mountpoint
		case m.FSType == "cgroup2" && v2 == "":
			v2 = m.Mountpoint
		}
	}
	if v2 == "" {
		t.Skip("no pids controller")
	}
	return v2
}

// Where the pids controller's hierarchy is read-only (a builder inside a
// container), a build runs without its default pids limit and says so; a
// limit the user asked for still fails the build.
func TestSecurityDefaultPidsLimitWithoutCgroups(t *testing.T) {
	h := newHarness(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare(1)")
	}
	dir := h.context("FROM base/busybox:1\nRUN echo ran > /ran\n", map[string]string{})
	// A private mount namespace whose pids hierarchy is bound read-only.
	script := `mount --make-rprivate / && mount -o remount,bind,ro "$0" && exec "$@"`
	readOnly := func(args ...string) (string, int) {
		cmd := exec.Command("unshare", append([]string{"-m", "sh", "-c", script, pidsHierarchy(t), builderBin, "--root", h.root}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := readOnly("build", "--progress", "plain", "-t", "nolimit:1", dir)
	if code != 0 || !strings.Contains(out, "without the default pids limit") {
		t.Fatalf("default limit on a read-only cgroupfs: exit %d, want 0 and a warning\n%s", code, out)
	}
	if got := h.runImage("nolimit:1", "cat", "/ran"); got != "ran\n" {
		t.Errorf("RUN did not run: %q", got)
	}
	if out, code := readOnly("build", "--no-cache", "--pids-limit", "100", dir); code == 0 {
		t.Errorf("an asked-for pids limit on a read-only cgroupfs succeeded\n%s", out)
	}
}
