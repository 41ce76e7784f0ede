package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/runner/seccomp"
	"github.com/moby/sys/mountinfo"
)

func TestMain(m *testing.M) {
	// The re-executed test binary becomes the container init here.
	Init()
	code := m.Run()
	if sharedLower != "" {
		os.RemoveAll(sharedLower)
	}
	os.Exit(code)
}

// container is a busybox root for one test: an overlay of a busybox lower
// dir with a fresh upper, as the snapshotter hands the runner.
type container struct {
	lower, upper string
	spec         Spec
}

// newContainer returns a container over the busybox root (or over lower, if
// given) running args.
func newContainer(t *testing.T, lower string, args ...string) *container {
	t.Helper()
	testutil.RequiresRoot(t)
	if lower == "" {
		lower = busyboxLower(t)
	}
	dir := t.TempDir()
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &container{lower: lower, upper: upper, spec: Spec{
		Root: []mount.Mount{{
			Type:    "overlay",
			Source:  "overlay",
			Options: []string{"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work},
		}},
		UpperDir: upper,
		Args:     args,
		Seccomp:  defaultSeccomp(t),
	}}
}

// defaultSeccomp is the program every container of the builder gets.
func defaultSeccomp(t *testing.T) []unix.SockFilter {
	t.Helper()
	prog, err := seccomp.Default(DefaultCapabilities())
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

var (
	sharedLowerOnce sync.Once
	sharedLower     string
)

// busyboxLower is one busybox root shared by the tests that do not change
// it: overlays never write to their lower dirs.
func busyboxLower(t *testing.T) string {
	sharedLowerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runner-test-lower-")
		if err != nil {
			t.Fatal(err)
		}
		testutil.BusyboxRootfs(t, dir)
		sharedLower = dir
	})
	if sharedLower == "" {
		t.Fatal("busybox lower dir could not be made")
	}
	return sharedLower
}

// ownLower writes a busybox root that the test may change first.
func ownLower(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "lower")
	testutil.BusyboxRootfs(t, dir)
	return dir
}

// run runs c and returns its output, checking afterwards that nothing of the
// run is left mounted on the host.
func (c *container) run(t *testing.T) (stdout, stderr string, err error) {
	t.Helper()
	return c.runContext(t, context.Background(), Stdio{})
}

func (c *container) runContext(t *testing.T, ctx context.Context, stdio Stdio) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	if stdio.Stdout == nil {
		stdio.Stdout = &out
	}
	if stdio.Stderr == nil {
		stdio.Stderr = &errb
	}
	err = Run(ctx, c.spec, stdio)
	checkNoHostMounts(t, c.upper, c.lower)
	return out.String(), errb.String(), err
}

// mustRun runs c and fails the test unless it exits 0.
func (c *container) mustRun(t *testing.T) string {
	t.Helper()
	out, errOut, err := c.run(t)
	if err != nil {
		t.Fatalf("run %q: %v\nstdout: %s\nstderr: %s", c.spec.Args, err, out, errOut)
	}
	return out
}

// checkNoHostMounts fails t if the host's mount table mentions any of the
// test's directories or a runner run dir: every mount belongs inside the
// container's namespace.
func checkNoHostMounts(t *testing.T, dirs ...string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		for _, d := range append(dirs, filepath.Join(runDirParent(), "builder-runner-")) {
			if d != "" && strings.Contains(line, d) {
				t.Errorf("left mounted on the host: %s", line)
			}
		}
	}
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func exitCodeOf(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("want an *ExitError, got %v", err)
	}
	return ee.Code
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		code      int
		stderrSub string
	}{
		{name: "success", args: []string{"true"}, code: 0},
		{name: "exit 3", args: sh("exit 3"), code: 3},
		{name: "not in PATH", args: []string{"nosuchcmd"}, code: 127, stderrSub: `exec: "nosuchcmd": executable file not found in $PATH`},
		{name: "missing path", args: []string{"/no/such"}, code: 127, stderrSub: `exec: "/no/such": stat /no/such: no such file or directory`},
		{name: "not executable", args: []string{"/etc/passwd"}, code: 126, stderrSub: `exec: "/etc/passwd": permission denied`},
		{name: "directory", args: []string{"/bin"}, code: 126},
		{name: "killed by a signal", args: sh("sleep 100 & kill -9 $!; wait $!"), code: 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newContainer(t, "", tt.args...)
			_, stderr, err := c.run(t)
			if got := exitCodeOf(t, err); got != tt.code {
				t.Fatalf("exit code %d, want %d (stderr %q)", got, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderrSub) {
				t.Fatalf("stderr %q, want it to contain %q", stderr, tt.stderrSub)
			}
		})
	}
}

func TestStdoutStderrSeparate(t *testing.T) {
	c := newContainer(t, "", sh("echo out; echo err >&2; echo out2")...)
	out, errOut, err := c.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if out != "out\nout2\n" || errOut != "err\n" {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}
}

func TestStdin(t *testing.T) {
	c := newContainer(t, "", "cat")
	var out bytes.Buffer
	if _, _, err := c.runContext(t, context.Background(), Stdio{Stdin: strings.NewReader("piped in\n"), Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "piped in\n" {
		t.Fatalf("cat echoed %q", out.String())
	}
}

// TestEnvExact: the command sees exactly the spec's env plus PATH and HOME,
// nothing of the host's (or of the init's marker).
func TestEnvExact(t *testing.T) {
	t.Setenv("RUNNER_TEST_HOST_LEAK", "leaked")
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"defaults added", []string{"FOO=bar"}, []string{"FOO=bar", "HOME=/root", "PATH=" + DefaultPath}},
		{"given ones kept", []string{"PATH=/bin", "HOME=/tmp", "A=b c"}, []string{"A=b c", "HOME=/tmp", "PATH=/bin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newContainer(t, "", "env")
			c.spec.Env = tt.env
			got := strings.Split(strings.TrimSpace(c.mustRun(t)), "\n")
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("env:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestUser(t *testing.T) {
	lower := ownLower(t)
	appendTo := func(rel, data string) {
		f, err := os.OpenFile(filepath.Join(lower, rel), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	appendTo("etc/passwd", "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n")
	appendTo("etc/group", "alice:x:1000:\nstaff:x:50:alice,bob\naudio:x:29:alice\n")

	const script = `echo "$(id -u) $(id -g) $(id -G) $HOME"; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status | tr -s '\t\n' '  '`
	const noCaps = "CapPrm: 0000000000000000 CapEff: 0000000000000000 CapBnd: 00000000a80425fb "
	const rootCaps = "CapPrm: 00000000a80425fb CapEff: 00000000a80425fb CapBnd: 00000000a80425fb "
	tests := []struct {
		user string
		want string
	}{
		{"", "0 0 0 /root\n" + rootCaps},
		{"root", "0 0 0 /root\n" + rootCaps},
		{"alice", "1000 1000 1000 29 50 /home/alice\n" + noCaps},
		{"1000", "1000 1000 1000 29 50 /home/alice\n" + noCaps},
		{"alice:staff", "1000 50 50 29 /home/alice\n" + noCaps},
		{"1000:50", "1000 50 50 29 /home/alice\n" + noCaps},
		{"4242", "4242 0 0 /\n" + noCaps},
		{"nobody", "65534 65534 65534 /nonexistent\n" + noCaps},
	}
	for _, tt := range tests {
		t.Run("user="+tt.user, func(t *testing.T) {
			c := newContainer(t, lower, sh(script)...)
			c.spec.User = tt.user
			if got := c.mustRun(t); got != tt.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	t.Run("unknown name is a setup error", func(t *testing.T) {
		c := newContainer(t, lower, "true")
		c.spec.User = "mallory"
		_, _, err := c.run(t)
		var ee *ExitError
		if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "runner: resolve user") {
			t.Fatalf("want a setup error, got %v", err)
		}
	})
}

func TestCwdCreated(t *testing.T) {
	c := newContainer(t, "", sh("pwd; stat -c %a .")...)
	c.spec.Cwd = "/work/deep/dir"
	c.spec.User = "nobody"
	if got := c.mustRun(t); got != "/work/deep/dir\n755\n" {
		t.Fatalf("got %q", got)
	}
	// A made WORKDIR is the command's, not a stub: it stays in the layer.
	if _, err := os.Stat(filepath.Join(c.upper, "work/deep/dir")); err != nil {
		t.Fatalf("working directory not kept in the upper dir: %v", err)
	}
}

func TestHostname(t *testing.T) {
	for _, name := range []string{"", "myhost"} {
		t.Run("hostname="+name, func(t *testing.T) {
			c := newContainer(t, "", sh("hostname; cat /etc/hostname; grep ^127.0.0.1 /etc/hosts")...)
			c.spec.Hostname = name
			want := name
			if want == "" {
				want = DefaultHostname
			}
			if got := c.mustRun(t); got != fmt.Sprintf("%s\n%s\n127.0.0.1\tlocalhost %s\n", want, want, want) {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestPid1(t *testing.T) {
	c := newContainer(t, "", sh("echo $$; ls /proc >/tmp/ls; grep -c '^[0-9]' /tmp/ls")...)
	// While ls runs, the container has two processes, sh and ls: the
	// host's are not visible.
	if got := c.mustRun(t); got != "1\n2\n" {
		t.Fatalf("got %q", got)
	}
}

// TestNoInheritedState: no file descriptor, blocked or ignored signal of the
// builder or the init reaches the command.
func TestNoInheritedState(t *testing.T) {
	c := newContainer(t, "", sh("ls /proc/self/fd; grep -E '^Sig(Blk|Ign)' /proc/self/status; umask")...)
	got := c.mustRun(t)
	// ls's own directory fd is 3.
	want := "0\n1\n2\n3\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n0022\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMaskedProcPaths(t *testing.T) {
	script := `
for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do
	[ -e $f ] || continue
	echo "$f: $(cat $f | wc -c)"
done
if [ -d /proc/scsi ]; then echo "/proc/scsi: $(ls -A /proc/scsi | wc -l)"; fi
echo x > /proc/sys/kernel/domainname && echo "domainname writable"
echo y > /proc/sysrq-trigger && echo "sysrq writable"
true`
	c := newContainer(t, "", sh(script)...)
	out, errOut, err := c.run(t)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		if strings.Contains(line, "writable") || !strings.HasSuffix(line, ": 0") {
			t.Errorf("not masked: %s", line)
		}
	}
	if !strings.Contains(errOut, "Read-only file system") {
		t.Errorf("writes to /proc/sys did not fail read-only: %q", errOut)
	}
}

// containerMounts parses mountinfo lines: mount point -> mount options.
func containerMounts(t *testing.T, table string) map[string]string {
	t.Helper()
	infos, err := mountinfo.GetMountsFromReader(strings.NewReader(table), nil)
	if err != nil {
		t.Fatalf("bad mountinfo: %v", err)
	}
	m := map[string]string{}
	for _, i := range infos {
		m[i.Mountpoint] = i.Options
	}
	return m
}

// TestMountTable: the container sees only its own mounts, with the expected
// flags; none of the host's.
func TestMountTable(t *testing.T) {
	c := newContainer(t, "", "cat", "/proc/self/mountinfo")
	mounts := containerMounts(t, c.mustRun(t))
	allowed := map[string]bool{"/": true, "/proc": true, "/dev": true, "/sys": true,
		"/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true,
		"/etc/resolv.conf": true, "/etc/hosts": true, "/etc/hostname": true}
	for _, d := range devices {
		allowed["/dev/"+d] = true
	}
	for _, p := range append(maskedPaths, readonlyPaths...) {
		allowed[p] = true
	}
	for p := range mounts {
		if !allowed[p] {
			t.Errorf("unexpected mount %s in the container", p)
		}
	}
	for _, p := range []string{"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/sys", "/etc/hosts", "/proc/sys"} {
		if _, ok := mounts[p]; !ok {
			t.Errorf("%s is not mounted", p)
		}
	}
	for _, p := range []string{"/sys", "/proc/sys", "/proc/sysrq-trigger"} {
		if _, err := os.Stat(p); err != nil {
			continue // not in this kernel (sysrq-trigger needs CONFIG_MAGIC_SYSRQ)
		}
		if opts := mounts[p]; !strings.HasPrefix(opts, "ro,") {
			t.Errorf("%s mounted %s, want read-only", p, opts)
		}
	}
	if opts := mounts["/"]; !strings.HasPrefix(opts, "rw,") {
		t.Errorf("/ mounted %s, want read-write", opts)
	}
}

func TestSysReadOnly(t *testing.T) {
	c := newContainer(t, "", sh("ls /sys/kernel >/dev/null && echo readable; mkdir /sys/x 2>&1")...)
	out, _, _ := c.run(t)
	if !strings.Contains(out, "readable") || !strings.Contains(out, "Read-only file system") {
		t.Fatalf("got %q", out)
	}
}

func TestDev(t *testing.T) {
	script := `ls /dev | tr '\n' ' '; echo
echo hi > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c
stat -c '%A' /dev/shm; readlink /dev/ptmx; readlink /dev/fd`
	c := newContainer(t, "", sh(script)...)
	got := c.mustRun(t)
	want := "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero \n4\n4\ndrwxrwxrwt\npts/ptmx\n/proc/self/fd\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestReadOnlyRoot(t *testing.T) {
	c := newContainer(t, "", sh("pwd; touch /x 2>&1; touch /dev/shm/ok && echo tmpfs writable")...)
	c.spec.ReadOnlyRoot = true
	c.spec.Cwd = "/made"
	out := c.mustRun(t)
	if !strings.Contains(out, "/made\n") || !strings.Contains(out, "Read-only file system") || !strings.Contains(out, "tmpfs writable") {
		t.Fatalf("got %q", out)
	}
}

func TestNetworkNone(t *testing.T) {
	c := newContainer(t, "", sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ip -o link show lo")...)
	c.spec.Network = "none"
	out := c.mustRun(t)
	lines := strings.Split(out, "\n")
	if lines[0] != "lo" || !strings.Contains(lines[1], "UP") {
		t.Fatalf("network none shows\n%s", out)
	}
}

func TestNetworkHost(t *testing.T) {
	host, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	c := newContainer(t, "", "cat", "/proc/net/dev")
	c.spec.Network = "host"
	out := c.mustRun(t)
	ifaces := func(s string) []string {
		var names []string
		for _, line := range strings.Split(s, "\n")[2:] {
			if name, _, ok := strings.Cut(line, ":"); ok {
				names = append(names, strings.TrimSpace(name))
			}
		}
		sort.Strings(names)
		return names
	}
	if got, want := ifaces(out), ifaces(string(host)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("host network shows %q, the host has %q", got, want)
	}
}

// TestStubsRemoved: the mount points the runner made (busybox has no
// /etc/resolv.conf, /etc/hosts or /etc/hostname) do not reach the upper dir,
// and /etc there looks as it did in the lower dir.
func TestStubsRemoved(t *testing.T) {
	c := newContainer(t, "", sh("echo nameserver 10.0.0.1 > /etc/resolv.conf; echo x > /etc/added; echo new > /new")...)
	c.mustRun(t)
	for _, name := range etcFiles {
		if _, err := os.Lstat(filepath.Join(c.upper, "etc", name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stub etc/%s left in the upper dir (%v)", name, err)
		}
	}
	for _, rel := range []string{"new", "etc/added"} {
		if _, err := os.Stat(filepath.Join(c.upper, rel)); err != nil {
			t.Errorf("the command's own file is missing: %v", err)
		}
	}

	// A run that changes nothing leaves nothing: not even the etc/ that
	// making the stubs copied up.
	c = newContainer(t, "", "true")
	c.mustRun(t)
	entries, err := os.ReadDir(c.upper)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("upper dir has %s after a run that wrote nothing", e.Name())
	}
}

// TestStubsInRootWithoutEtc: a root with no /etc at all gets one for the
// run, and loses it afterwards.
func TestStubsInRootWithoutEtc(t *testing.T) {
	lower := ownLower(t)
	if err := os.RemoveAll(filepath.Join(lower, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(lower, "sys")); err != nil {
		t.Fatal(err)
	}
	c := newContainer(t, lower, sh("id -u; cat /etc/hostname")...)
	if got := c.mustRun(t); got != "0\n"+DefaultHostname+"\n" {
		t.Fatalf("got %q", got)
	}
	entries, err := os.ReadDir(c.upper)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("upper dir keeps %d entries (%s...), want none", len(entries), entries[0].Name())
	}
}

func TestBindRoot(t *testing.T) {
	testutil.RequiresRoot(t)
	root := ownLower(t)
	c := &container{lower: root, spec: Spec{
		Root:     []mount.Mount{{Type: "bind", Source: root, Options: []string{"rbind"}}},
		UpperDir: root, // stubs land in the root itself here
		Args:     sh("echo ok > /tmp/out; cat /etc/hostname"),
		Seccomp:  defaultSeccomp(t),
	}}
	if got := c.mustRun(t); got != DefaultHostname+"\n" {
		t.Fatalf("got %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp/out")); err != nil {
		t.Fatalf("write through the bind root lost: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/hostname")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stub etc/hostname left in the root (%v)", err)
	}
}

func TestExtraMounts(t *testing.T) {
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "f"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostsFile := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hostsFile, []byte("10.9.9.9 custom\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `cat /mnt/data/f; touch /mnt/data/g 2>&1; touch /mnt/rw/g && echo rw ok
touch /scratch/t && stat -c %a /scratch; cat /etc/hosts`
	c := newContainer(t, "", sh(script)...)
	c.spec.Mounts = []Mount{
		{Type: "tmpfs", Dest: "/scratch"},
		{Type: "bind", Source: data, Dest: "/mnt/rw"},
		{Type: "bind", Source: data, Dest: "/mnt/data", ReadOnly: true},
		{Type: "bind", Source: hostsFile, Dest: "/etc/hosts", ReadOnly: true},
	}
	got := c.mustRun(t)
	want := "from host\ntouch: /mnt/data/g: Read-only file system\nrw ok\n1777\n10.9.9.9 custom\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(data, "g")); err != nil {
		t.Fatalf("write through the rw bind lost: %v", err)
	}
	for _, rel := range []string{"mnt", "scratch", "etc/hosts"} {
		if _, err := os.Lstat(filepath.Join(c.upper, rel)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stub %s left in the upper dir (%v)", rel, err)
		}
	}
}

func TestSetupErrors(t *testing.T) {
	c := newContainer(t, "", "true")
	c.spec.Mounts = []Mount{{Type: "bind", Source: "/nonexistent/source", Dest: "/x"}}
	_, _, err := c.run(t)
	var ee *ExitError
	if err == nil || errors.As(err, &ee) || !strings.HasPrefix(err.Error(), "runner: bind mount source") {
		t.Fatalf("want a setup error, got %v", err)
	}

	c = newContainer(t, "", "true")
	c.spec.Root = []mount.Mount{{Type: "bind", Source: "/nonexistent/root", Options: []string{"rbind"}}}
	if _, _, err = c.run(t); err == nil || !strings.HasPrefix(err.Error(), "runner: mount root") {
		t.Fatalf("want a root mount error, got %v", err)
	}

	// With a terminal, a failure before the pty exists must not leave Run
	// waiting for it.
	c.spec.Tty = true
	if _, _, err = c.run(t); err == nil || !strings.HasPrefix(err.Error(), "runner: mount root") {
		t.Fatalf("want a root mount error, got %v", err)
	}
}

// cancelOnWrite cancels a context at the first write: the command's "ready"
// proves it runs, with no timing involved.
type cancelOnWrite struct {
	cancel context.CancelFunc
}

func (w cancelOnWrite) Write(p []byte) (int, error) {
	w.cancel()
	return len(p), nil
}

func TestCancelKills(t *testing.T) {
	// A child keeps the output pipe open too: killing pid 1 must take it
	// along, or Run would wait for the pipe forever.
	c := newContainer(t, "", sh("sleep 1000 & echo ready; sleep 1000")...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, _, err := c.runContext(t, ctx, Stdio{Stdout: cancelOnWrite{cancel}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestTty(t *testing.T) {
	script := `test -t 0 && test -t 1 && test -t 2 && echo tty; tty; echo err >&2
stat -c '%t:%T %u' /dev/console; stty size; read line; echo "got $line"`
	c := newContainer(t, "", sh(script)...)
	c.spec.Tty = true
	c.spec.ConsoleSize = &Winsize{Rows: 33, Cols: 101}
	c.spec.User = "nobody"
	var out bytes.Buffer
	_, errOut, err := c.runContext(t, context.Background(), Stdio{Stdin: strings.NewReader("typed\n"), Stdout: &out})
	if err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	// A terminal merges both streams, echoes input and ends lines with
	// \r\n. The pty is the container's own (pts/0), as is /dev/console,
	// and belongs to the user.
	// The echo lands whenever the input is written.
	got := strings.Replace(out.String(), "got typed", "GOT", 1)
	got = strings.Replace(got, "typed\r\n", "", 1)
	want := "tty\r\n/dev/pts/0\r\nerr\r\n88:0 65534\r\n33 101\r\nGOT\r\n"
	if got != want || errOut != "" {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut)
	}
}

// TestConcurrentRuns: runs from one process do not share or leak anything
// (pipes, run dirs) into each other.
func TestConcurrentRuns(t *testing.T) {
	const n = 4
	var wg sync.WaitGroup
	outs := make([]string, n)
	errs := make([]error, n)
	cs := make([]*container, n)
	for i := range n {
		cs[i] = newContainer(t, "", sh(fmt.Sprintf("echo %d; ls /proc/self/fd | wc -l", i))...)
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out bytes.Buffer
			errs[i] = Run(context.Background(), cs[i].spec, Stdio{Stdout: &out})
			outs[i] = out.String()
		}()
	}
	wg.Wait()
	for i := range n {
		// 0, 1, 2 and ls's own directory.
		if want := fmt.Sprintf("%d\n4\n", i); errs[i] != nil || outs[i] != want {
			t.Errorf("run %d: %q, %v; want %q", i, outs[i], errs[i], want)
		}
	}
	checkNoHostMounts(t)
}

// An init whose protocol differs from the one it is started with (an
// init binary from another build) reports that and runs nothing.
func TestInitProtocolMismatch(t *testing.T) {
	specR, specW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer specW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer statusR.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{initEnv + "=0000000000000000"}
	cmd.ExtraFiles = []*os.File{specR, statusW}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	specR.Close()
	statusW.Close()
	var m status
	decErr := json.NewDecoder(statusR).Decode(&m)
	waitErr := cmd.Wait()
	if decErr != nil {
		t.Fatalf("no status from the init: %v (wait: %v)", decErr, waitErr)
	}
	if !strings.Contains(m.Error, "another build of the builder") || !strings.Contains(m.Error, protocol()) {
		t.Errorf("status error = %q, want the protocol mismatch named", m.Error)
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
}

// A given run dir is made for the run, replacing what a killed run left
// there, and removed when the run ends.
func TestRunDirGiven(t *testing.T) {
	c := newContainer(t, "", "cat", "/etc/hostname")
	c.spec.Hostname = "given"
	c.spec.RunDir = filepath.Join(t.TempDir(), "run")
	for _, p := range []string{"root", "hosts"} {
		if err := os.MkdirAll(c.spec.RunDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if p == "root" {
			if err := os.Mkdir(filepath.Join(c.spec.RunDir, p), 0o755); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(filepath.Join(c.spec.RunDir, p), []byte("stale\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out := c.mustRun(t); out != "given\n" {
		t.Errorf("output %q", out)
	}
	if _, err := os.Stat(c.spec.RunDir); !os.IsNotExist(err) {
		t.Errorf("run dir after the run: %v", err)
	}
}

// Resize changes the terminal's size under a running command, which gets
// SIGWINCH.
func TestTtyResize(t *testing.T) {
	c := newContainer(t, "", sh(`trap 'stty size; exit 0' WINCH; echo ready; while :; do sleep 0.05; done`)...)
	c.spec.Tty = true
	c.spec.ConsoleSize = &Winsize{Rows: 24, Cols: 80}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Start(ctx, c.spec, Stdio{Stdout: outW})
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(outR)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\r\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if err := p.Resize(Winsize{Rows: 20, Cols: 50}); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	outW.Close() // the terminal's output is all copied once Wait returns
	rest, _ := io.ReadAll(r)
	if string(rest) != "20 50\r\n" {
		t.Errorf("after resize: %q", rest)
	}
}
