package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/container"
	"github.com/builder-dev/builder/store"
)

// psEntry is one line of `ps --format json`.
type psEntry struct {
	ID          string
	Image       string
	Names       string
	State       string
	Status      string
	ExitCode    int
	Pid         int
	SizeRw      *int64
	VirtualSize *int64
}

func (h *harness) ps(args ...string) map[string]psEntry {
	h.t.Helper()
	out := h.mustRun(append([]string{"ps", "--format", "json"}, args...)...)
	m := map[string]psEntry{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e psEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			h.t.Fatalf("ps line %q: %v", line, err)
		}
		m[e.Names] = e
	}
	return m
}

// cleanupContainers makes sure no container of the harness outlives the
// test, whatever happened: rm -f of everything ps -a lists.
func (h *harness) cleanupContainers() {
	h.t.Cleanup(func() {
		out, _, _ := h.run("ps", "-a", "-q", "--no-trunc")
		for _, id := range strings.Fields(out) {
			h.run("rm", "-f", id)
		}
	})
}

// record reads a container's record straight from the store.
func (h *harness) record(ref string) *container.Container {
	h.t.Helper()
	st, err := store.Open(context.Background(), h.root)
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := container.Get(context.Background(), st.Meta(), ref)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// dirEntries lists the names in dir ("" if it does not exist).
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestContainerExitCodesAndRm(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"true"}, 0},
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"nope"}, 127},
		{[]string{"/etc/passwd"}, 126},
		// pid 1 cannot be killed from inside its namespace: a child is.
		{[]string{"sh", "-c", "sh -c 'kill -9 $$'; exit $?"}, 137},
	} {
		_, stderr, code := h.run(append([]string{"run", "--rm", "base/busybox:1"}, tc.args...)...)
		if code != tc.code {
			t.Errorf("run %v: exit %d, want %d\n%s", tc.args, code, tc.code, stderr)
		}
	}
	if _, stderr, code := h.run("run", "-d", "base/busybox:1", "nope"); code != 127 || !strings.Contains(stderr, "nope") {
		t.Errorf("run -d nope: exit %d, stderr %q", code, stderr)
	}
	h.mustRun("rm", "-f", strings.TrimSpace(h.mustRun("ps", "-a", "-q", "--no-trunc")))
	// --rm leaves nothing: no record, no writable layer, no directory.
	if out := h.mustRun("ps", "-a", "-q"); out != "" {
		t.Errorf("ps -a after --rm: %q", out)
	}
	if got := dirEntries(t, filepath.Join(h.root, "snapshots", "active")); len(got) != 0 {
		t.Errorf("writable layers left: %v", got)
	}
	if got := dirEntries(t, filepath.Join(h.root, "containers")); len(got) != 0 {
		t.Errorf("container dirs left: %v", got)
	}
}

func TestContainerConfigRules(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	dir := h.context(`FROM base/busybox:1
ENV A=image B=image
WORKDIR /srv
USER nobody
ENTRYPOINT ["echo", "ep"]
CMD ["cmd"]
`, map[string]string{})
	h.build(dir, "rules:1")
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# comment\n\nB=file\nC=file\nFROMHOST\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FROMHOST", "host-value")
	t.Setenv("UNSETME", "")
	os.Unsetenv("UNSETME")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"entrypoint+cmd", []string{"rules:1"}, "ep cmd\n"},
		{"args replace cmd", []string{"rules:1", "x", "y"}, "ep x y\n"},
		{"entrypoint drops cmd", []string{"--entrypoint", "echo", "rules:1"}, "\n"},
		{"entrypoint and args", []string{"--entrypoint", "printf", "rules:1", "%s-", "a", "b"}, "a-b-"},
		{"empty entrypoint", []string{"--entrypoint", "", "rules:1", "echo", "plain"}, "plain\n"},
		{"image env, workdir, user", []string{"--entrypoint", "sh", "rules:1", "-c", `echo $A $B $PWD $(id -u) $HOME`}, "image image /srv 65534 /nonexistent\n"},
		{"env overrides", []string{"--env-file", envFile, "-e", "A=flag", "-e", "C", "-e", "B=flag2", "--entrypoint", "sh", "rules:1", "-c", `echo $A $B ${C-unset} $FROMHOST`}, "flag flag2 unset host-value\n"},
		{"bare -e unset removes", []string{"-e", "A", "--entrypoint", "sh", "rules:1", "-c", `echo ${A-unset}`}, "unset\n"},
		{"workdir created", []string{"-w", "/new/dir", "--entrypoint", "sh", "rules:1", "-c", `pwd; ls -ld /new/dir | cut -c1-10`}, "/new/dir\ndrwxr-xr-x\n"},
		{"user:group numeric", []string{"-u", "1234:5", "--entrypoint", "sh", "rules:1", "-c", "id -u; id -g"}, "1234\n5\n"},
		{"user root", []string{"-u", "root", "--entrypoint", "sh", "rules:1", "-c", "id -u; echo $HOME"}, "0\n/root\n"},
		{"hostname", []string{"--hostname", "box", "--entrypoint", "sh", "rules:1", "-c", "hostname; echo $HOSTNAME"}, "box\nbox\n"},
		{"tty", []string{"-t", "--entrypoint", "sh", "rules:1", "-c", "echo $TERM; [ -t 1 ] && echo tty"}, "xterm\r\ntty\r\n"},
	} {
		out, stderr, code := h.run(append([]string{"run", "--rm"}, tc.args...)...)
		if code != 0 || out != tc.want {
			t.Errorf("%s: exit %d, out %q, want %q\n%s", tc.name, code, out, tc.want, stderr)
		}
	}
	// Without --hostname, the hostname is the short ID.
	out := h.mustRun("run", "--name", "hn", "--entrypoint", "hostname", "rules:1")
	if id := h.record("hn").ID; out != id[:12]+"\n" {
		t.Errorf("default hostname %q, want %s", out, id[:12])
	}
	if _, stderr, code := h.run("run", "--rm", "-w", "rel", "rules:1"); code != 2 || !strings.Contains(stderr, "absolute") {
		t.Errorf("-w rel: exit %d, %s", code, stderr)
	}
	if _, _, code := h.run("run", "--rm", "--name", "hn", "rules:1"); code == 0 {
		t.Error("a second container named hn was made")
	}
}

// TestContainerInteractiveTty runs `run -it` on a real terminal: the
// user's terminal goes raw, so keys reach the container's terminal as typed.
func TestContainerInteractiveTty(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	// The container's terminal has our terminal's size, and follows it.
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 33, Cols: 101}); err != nil {
		t.Fatal(err)
	}
	script := `stty -echo; stty size; echo ready; while [ "$(stty size)" = "33 101" ]; do sleep 0.05; done; stty size; read line; echo got:$line; exit 4`
	cmd := exec.Command(builderBin, "--root", h.root, "run", "--rm", "-it", "base/busybox:1", "sh", "-c", script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	timer := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	var out []byte
	buf := make([]byte, 4096)
	resized, wrote := false, false
	for {
		n, err := ptmx.Read(buf)
		out = append(out, buf[:n]...)
		if !resized && strings.Contains(string(out), "ready") {
			if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
				t.Fatal(err)
			}
			resized = true
		}
		if !wrote && strings.Contains(string(out), "40 120") {
			// The container's terminal no longer echoes: any echo now
			// would be the user's terminal's, i.e. not raw.
			if _, err := ptmx.Write([]byte("hello\r")); err != nil {
				t.Fatal(err)
			}
			wrote = true
		}
		if err != nil {
			break // EIO once the builder is gone
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Errorf("run -it: %v, want exit 4", err)
	}
	if strings.Count(string(out), "hello") != 1 {
		t.Errorf("run -it: the user's terminal is not raw (or echoed): %q", out)
	}
	if !strings.Contains(string(out), "33 101\r\nready") || !strings.Contains(string(out), "got:hello") {
		t.Errorf("run -it output %q", out)
	}
}

func TestContainerFilesystemLifecycle(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	h.mustRun("run", "--name", "c1", "base/busybox:1", "sh", "-c",
		"head -c 100000 /dev/zero > /root/data; rm /etc/group; echo x >> /etc/passwd; mkdir -p /a/b; echo hi > /a/b/c")
	h.mustRun("run", "--name", "c2", "base/busybox:1", "sh", "-c", "echo 12345 > /tmp/small")
	ps := h.ps("-a", "-s")
	c1, c2 := ps["c1"], ps["c2"]
	if c1.Status[:10] != "Exited (0)" || c1.Image != "base/busybox:1" || c1.State != "exited" {
		t.Errorf("ps c1: %+v", c1)
	}
	// SIZE is each container's own; VIRTUAL SIZE adds the same image once.
	if *c1.SizeRw < 100000 || *c1.SizeRw > 101000 || *c2.SizeRw != 6 {
		t.Errorf("SIZE c1 %d, c2 %d", *c1.SizeRw, *c2.SizeRw)
	}
	image := *c1.VirtualSize - *c1.SizeRw
	if image < 100000 || *c2.VirtualSize-*c2.SizeRw != image {
		t.Errorf("image part of VIRTUAL SIZE: c1 %d, c2 %d", image, *c2.VirtualSize-*c2.SizeRw)
	}
	table := h.mustRun("ps", "-a", "-s")
	if !strings.Contains(table, "SIZE") || !strings.Contains(table, "VIRTUAL SIZE") || !strings.Contains(table, "c1") {
		t.Errorf("ps -a -s:\n%s", table)
	}

	wantDiff := "A /a\nA /a/b\nA /a/b/c\nC /etc\nD /etc/group\nC /etc/passwd\nC /root\nA /root/data\n"
	if got := h.mustRun("diff", "c1"); got != wantDiff {
		t.Errorf("diff c1:\n%s\nwant:\n%s", got, wantDiff)
	}

	// The changes survive start; start runs the same command again.
	h.mustRun("start", "-a", "c2")
	if out := h.mustRun("start", "-a", "c2"); out != "" {
		t.Errorf("start -a output %q", out)
	}
	if out := h.mustRun("diff", "c2"); out != "C /tmp\nA /tmp/small\n" {
		t.Errorf("diff c2 after start: %q", out)
	}
	h.mustRun("run", "--name", "c3", "-e", "GREETING=hi", "-w", "/work", "base/busybox:1", "sh", "-c", `echo $GREETING > note; [ -f note.old ] && cat note.old; mv note note.old`)
	if out := h.mustRun("start", "-a", "c3"); out != "hi\n" {
		t.Errorf("second start of c3 saw %q, want the first run's file", out)
	}

	// commit: the new layer holds exactly c1's changes; the config is
	// the container's with --change applied.
	id := strings.TrimSpace(h.mustRun("commit", "-m", "from c1", "-c", "ENV COMMITTED=yes", "-c", `CMD ["cat", "/a/b/c"]`, "c1", "committed:1"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Errorf("commit printed %q", id)
	}
	if out := h.runImage("committed:1"); out != "hi\n" {
		t.Errorf("run committed:1 = %q", out)
	}
	if out := h.runImage("committed:1", "sh", "-c", "echo $COMMITTED; ls /etc/group 2>&1; wc -c < /root/data"); out != "yes\nls: /etc/group: No such file or directory\n100000\n" {
		t.Errorf("committed image: %q", out)
	}
	entries := lastLayerEntries(t, h, "committed:1")
	want := []string{"a/", "a/b/", "a/b/c", "etc/", "etc/.wh.group", "etc/passwd", "root/", "root/data"}
	if !slices.Equal(entries, want) {
		t.Errorf("committed layer: %v, want %v", entries, want)
	}
	var insp []struct {
		History []ocispec.History
	}
	if err := json.Unmarshal([]byte(h.mustRun("inspect", "committed:1")), &insp); err != nil || len(insp) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	hist := insp[0].History
	if last := hist[len(hist)-1]; last.Comment != "from c1" || last.EmptyLayer || !strings.HasPrefix(last.CreatedBy, "sh -c head") {
		t.Errorf("history entry %+v", last)
	}
	// The container stays.
	if _, ok := h.ps("-a")["c1"]; !ok {
		t.Error("commit removed the container")
	}

	// An image a container uses is not removed unless forced; forced,
	// the container still starts.
	h.mustRun("tag", "base/busybox:1", "other:1")
	h.mustRun("rmi", "other:1") // another name stays: only untagged
	if _, stderr, code := h.run("rmi", "base/busybox:1"); code == 0 || !strings.Contains(stderr, "container") {
		t.Errorf("rmi of a used image: exit %d, %s", code, stderr)
	}
	h.mustRun("rmi", "-f", "base/busybox:1")
	h.mustRun("cache", "prune", "--all")
	if out := h.mustRun("start", "-a", "c2"); out != "" {
		t.Errorf("start after rmi -f and prune: %q", out)
	}
	if img := h.ps("-a")["c2"].Image; len(img) != 12 {
		t.Errorf("IMAGE of a container whose image is gone: %q, want the short ID", img)
	}
}

// lastLayerEntries lists the entries of an image's top layer.
func lastLayerEntries(t *testing.T, h *harness, ref string) []string {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, h.root)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := st.Content().Resolve(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := st.Content().LoadImage(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := st.Content().OpenLayer(ctx, m.Layers[len(m.Layers)-1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
	sort.Strings(names)
	return names
}

func TestContainerDetached(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	dir := h.context("FROM base/busybox:1\nSTOPSIGNAL SIGUSR1\n", map[string]string{})
	h.build(dir, "stopsig:1")
	script := `trap 'echo got $SIG; exit 7' USR1; trap 'echo got TERM; exit 8' TERM; echo started; echo oops >&2; while :; do sleep 0.05; done`
	id := strings.TrimSpace(h.mustRun("run", "-d", "--name", "dd", "-e", "SIG=usr1", "stopsig:1", "sh", "-c", script))
	if len(id) != 64 {
		t.Fatalf("run -d printed %q", id)
	}
	// `logs -f` follows until the container stops.
	follow := exec.Command(builderBin, "--root", h.root, "logs", "-f", "dd")
	var followOut strings.Builder
	follow.Stdout = &followOut
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the trap to be set: the script prints once it is.
	for !strings.Contains(h.mustRun("logs", "dd"), "started") {
		h.mustRun("ps") // paces the loop without a sleep
	}
	if e := h.ps()["dd"]; e.State != "running" || !strings.HasPrefix(e.Status, "Up") || e.Pid == 0 {
		t.Errorf("ps: %+v", e)
	}
	if out := h.mustRun("stop", "dd"); out != "dd\n" {
		t.Errorf("stop printed %q", out)
	}
	if err := follow.Wait(); err != nil {
		t.Errorf("logs -f: %v", err)
	}
	if e := h.ps("-a")["dd"]; e.ExitCode != 7 || !strings.HasPrefix(e.Status, "Exited (7)") {
		t.Errorf("after stop: %+v", e)
	}
	stdout, stderr, _ := h.run("logs", "dd")
	if stdout != "started\ngot usr1\n" || stderr != "oops\n" {
		t.Errorf("logs: stdout %q, stderr %q", stdout, stderr)
	}
	if !strings.Contains(followOut.String(), "got usr1") {
		t.Errorf("logs -f: %q", followOut.String())
	}
	if _, ok := h.ps()["dd"]; ok {
		t.Error("ps without -a lists a stopped container")
	}

	// start brings it back with its settings; rm -f kills it.
	if out := h.mustRun("start", "dd"); out != "dd\n" {
		t.Errorf("start printed %q", out)
	}
	rec := h.record(id)
	if rec.State.Status != container.Running || !container.Live(rec) {
		t.Errorf("after start: %+v", rec.State)
	}
	if _, _, code := h.run("rm", "dd"); code == 0 {
		t.Error("rm of a running container succeeded")
	}
	h.mustRun("rm", "-f", "dd")
	if alive(rec.State.Pid) || alive(rec.State.MonitorPid) {
		t.Error("rm -f left the container or its monitor running")
	}
	if _, ok := h.ps("-a")["dd"]; ok {
		t.Error("rm -f left the record")
	}

	// The default stop signal is SIGTERM, which a trap can answer.
	h.mustRun("run", "-d", "--name", "term", "base/busybox:1", "sh", "-c", `trap 'echo got TERM; exit 8' TERM; echo ready; while :; do sleep 0.05; done`)
	for !strings.Contains(h.mustRun("logs", "term"), "ready") {
		h.mustRun("ps")
	}
	h.mustRun("stop", "term")
	if e := h.ps("-a")["term"]; e.ExitCode != 8 {
		t.Errorf("SIGTERM trap: %+v", e)
	}
	if out := h.mustRun("logs", "term"); out != "ready\ngot TERM\n" {
		t.Errorf("logs after SIGTERM: %q", out)
	}
	h.mustRun("rm", "term")

	// -d --rm: gone once stopped.
	h.mustRun("run", "-d", "--rm", "--name", "tmp", "base/busybox:1", "sleep", "100")
	h.mustRun("stop", "-t", "0", "tmp")
	if _, ok := h.ps("-a")["tmp"]; ok {
		t.Error("--rm container left after stop")
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func TestContainerMonitorCrash(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	id := strings.TrimSpace(h.mustRun("run", "-d", "base/busybox:1", "sleep", "100"))
	rec := h.record(id)
	if rec.State.MonitorPid == 0 || !alive(rec.State.Pid) {
		t.Fatalf("record: %+v", rec.State)
	}
	// The runner's files for it are in its own directory, which the
	// next start replaces and rm removes: nothing stays behind elsewhere.
	runDir := filepath.Join(h.root, "containers", rec.ID, "run")
	if b, err := os.ReadFile(filepath.Join(runDir, "hostname")); err != nil || string(b) != id[:12]+"\n" {
		t.Fatalf("run dir: %q, %v", b, err)
	}
	// kill -9 the monitor: its container dies with it, and ps says so.
	if err := syscall.Kill(rec.State.MonitorPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var e psEntry
	for {
		e = h.ps("-a")[rec.Name]
		if e.State != "running" {
			break
		}
	}
	if !strings.HasPrefix(e.Status, "Exited (255)") {
		t.Errorf("after the monitor's crash: %+v", e)
	}
	if alive(rec.State.Pid) {
		t.Error("the container outlived its monitor")
	}
	// It starts again.
	h.mustRun("start", rec.Name)
	if e := h.ps()[rec.Name]; e.State != "running" {
		t.Errorf("restart after crash: %+v", e)
	}
	h.mustRun("rm", "-f", rec.Name)
	if _, err := os.Stat(runDir); !os.IsNotExist(err) {
		t.Errorf("run dir after rm: %v", err)
	}
}

func TestContainerLimits(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	// dd allocates its block size: 64 MB over a 16 MB limit.
	_, stderr, code := h.run("run", "--name", "oom", "--memory", "16m", "base/busybox:1", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
	if code != 137 && strings.Contains(stderr, "cgroup") {
		t.Skipf("memory limit not available here: %s", stderr)
	}
	if code != 137 {
		t.Errorf("over the memory limit: exit %d, want 137\n%s", code, stderr)
	}
	if rec := h.record("oom"); !rec.State.OOMKilled {
		t.Errorf("OOMKilled not recorded: %+v", rec.State)
	}
	// busybox sh gives up (exit 2) when it cannot fork.
	forks := "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; echo forked"
	if out, stderr, code := h.run("run", "--rm", "--pids-limit", "5", "base/busybox:1", "sh", "-c", forks); code == 0 || out != "" || !strings.Contains(stderr, "fork") {
		t.Errorf("under --pids-limit 5: exit %d, out %q, stderr %q", code, out, stderr)
	}
	if out := h.mustRun("run", "--rm", "--pids-limit", "20", "base/busybox:1", "sh", "-c", forks); out != "forked\n" {
		t.Errorf("under --pids-limit 20: %q", out)
	}
	if _, stderr, code := h.run("run", "--memory", "1k", "base/busybox:1", "true"); code != 2 || !strings.Contains(stderr, "6MB") {
		t.Errorf("--memory 1k: exit %d, %s", code, stderr)
	}
	if _, stderr, code := h.run("run", "--cpus", "1000", "base/busybox:1", "true"); code != 2 || !strings.Contains(stderr, "CPUs") {
		t.Errorf("--cpus 1000: exit %d, %s", code, stderr)
	}
	if n := len(h.ps("-a")); n != 1 {
		t.Errorf("invalid limits made containers: %d listed", n)
	}
	// A CPU limit applies (its effect is a matter of time, not tested).
	if out := h.mustRun("run", "--rm", "--cpus", "0.5", "base/busybox:1", "echo", "ok"); out != "ok\n" {
		t.Errorf("--cpus 0.5: %q", out)
	}
}

// TestContainerIsolation checks the isolation points from inside a
// container, as a user sees them.
func TestContainerIsolation(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	ro := t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "f"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		`echo pid=$$`,
		`grep CapBnd /proc/self/status | cut -f2`,
		`wc -c < /proc/keys`,
		`touch /sys/x 2>/dev/null || echo sys-ro`,
		`echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo procsys-ro`,
		`mount -t tmpfs t /mnt 2>/dev/null || echo no-mount`,
		`cat /ro/f; echo x > /ro/f 2>/dev/null || echo bind-ro`,
		`touch /root/x 2>/dev/null || echo root-ro`,
		`touch /scratch/x && echo tmpfs-rw`,
		`grep -c : /proc/net/dev`,
		`[ $(ls -d /proc/[0-9]* | wc -l) -lt 10 ] && echo own-pids`, // not the host's hundreds
	}, "; ")
	out, stderr, code := h.run("run", "--rm", "--read-only", "--network", "none", "-v", ro+":/ro:ro", "--tmpfs", "/scratch",
		"base/busybox:1", "sh", "-c", script)
	want := "pid=1\n00000000a80425fb\n0\nsys-ro\nprocsys-ro\nno-mount\nhost\nbind-ro\nroot-ro\ntmpfs-rw\n1\nown-pids\n"
	if code != 0 || out != want {
		t.Errorf("isolation: exit %d\n%s\nwant:\n%s\nstderr: %s", code, out, want, stderr)
	}
	if out := h.mustRun("run", "--rm", "-u", "nobody", "base/busybox:1", "grep", "CapEff", "/proc/self/status"); !strings.Contains(out, "0000000000000000") {
		t.Errorf("a non-root user has capabilities: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(ro, "f")); string(b) != "host\n" {
		t.Errorf("read-only bind mount written: %q", b)
	}
}

// TestContainerForegroundSignals: a signal to `builder run` reaches the
// container's process.
func TestContainerForegroundSignals(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	cmd := exec.Command(builderBin, "--root", h.root, "run", "--rm", "base/busybox:1", "sh", "-c",
		`trap 'echo got TERM; exit 9' TERM; trap 'echo got HUP' HUP; echo ready; while :; do sleep 0.05; done`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	var out string
	for !strings.Contains(out, "ready") {
		n, err := stdout.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (%q)", err, out)
		}
		out += string(buf[:n])
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(out, "got HUP") {
		n, err := stdout.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (%q)", err, out)
		}
		out += string(buf[:n])
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stdout)
	out += string(rest)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 9 {
		t.Errorf("builder run after SIGTERM: %v, want exit 9", err)
	}
	if out != "ready\ngot HUP\ngot TERM\n" {
		t.Errorf("output %q", out)
	}
}

// TestContainerStdin: -i passes stdin; without it the container reads
// nothing; -d -i keeps stdin open (empty) so a reader waits.
func TestContainerStdin(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"-i"}, "from stdin\n"},
		{nil, ""},
	} {
		cmd := exec.Command(builderBin, append(append([]string{"--root", h.root, "run", "--rm"}, tc.flags...), "base/busybox:1", "cat")...)
		cmd.Stdin = strings.NewReader("from stdin\n")
		out, err := cmd.Output()
		if err != nil || string(out) != tc.want {
			t.Errorf("run %v cat: %q, %v; want %q", tc.flags, out, err, tc.want)
		}
	}
	h.mustRun("run", "-d", "-i", "--name", "reader", "base/busybox:1", "cat")
	h.mustRun("run", "--name", "noreader", "base/busybox:1", "cat")
	ps := h.ps("-a")
	if ps["reader"].State != "running" || ps["noreader"].State != "exited" {
		t.Errorf("-d -i cat: %+v; cat without -i: %+v", ps["reader"], ps["noreader"])
	}
}

// Each VOLUME of the image is an anonymous volume, as with docker run: a
// copy of what the image has there (or an empty directory), whose changes
// stay out of the writable layer and survive start, and go with rm; -v on
// the same path replaces it.
func TestContainerAnonymousVolumes(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	dir := h.context(`FROM base/busybox:1
RUN mkdir -p /data && echo before > /data/f && chown 7:8 /data && chmod 750 /data
VOLUME ["/data", "/empty/sub"]
`, map[string]string{})
	h.build(dir, "vol:1")
	script := `stat -c '%u:%g %a' /data; cat /data/f; ls -A /empty/sub; [ -f /data/run ] && echo again; date >> /data/run; echo w > /empty/sub/w`
	if out := h.mustRun("run", "--name", "v1", "vol:1", "sh", "-c", script); out != "7:8 750\nbefore\n" {
		t.Errorf("first run: %q", out)
	}
	if out := h.mustRun("diff", "v1"); out != "" {
		t.Errorf("diff shows what went to volumes:\n%s", out)
	}
	if out := h.mustRun("start", "-a", "v1"); out != "7:8 750\nbefore\nw\nagain\n" {
		t.Errorf("second start: %q", out)
	}
	volumes := filepath.Join(h.root, "containers", h.record("v1").ID, "volumes")
	if _, err := os.Stat(volumes); err != nil {
		t.Fatalf("volumes dir: %v", err)
	}
	h.mustRun("rm", "v1")
	if _, err := os.Stat(volumes); !os.IsNotExist(err) {
		t.Errorf("volumes left after rm: %v", err)
	}

	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "mine"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := h.mustRun("run", "--rm", "-v", host+":/data", "vol:1", "ls", "/data"); out != "mine\n" {
		t.Errorf("with -v over the volume: %q", out)
	}
}
