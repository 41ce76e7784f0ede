package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pooled are output streams with which a container may take a spare init
// (see prestartable): two writers of the caller's.
func pooled() Stdio {
	return Stdio{Stdout: io.Discard, Stderr: &bytes.Buffer{}}
}

// startTicks is when the container's pid 1 started, in clock ticks since
// boot, as its own /proc says: the init's fork, which the command's exec
// keeps.
func startTicks(t *testing.T, stat string) int64 {
	t.Helper()
	// After "pid (comm) ", starttime is the 20th field.
	i := strings.LastIndexByte(stat, ')')
	f := strings.Fields(stat[i+1:])
	if len(f) < 20 {
		t.Fatalf("short /proc/1/stat: %q", stat)
	}
	n, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// uptimeTicks is now in clock ticks since boot (USER_HZ is 100 on Linux).
func uptimeTicks(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	secs, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return int64(secs * 100)
}

// The second container of a pool runs in an init started before it was
// asked for, and both behave as Run's do: output, exit code, stubs.
func TestPoolStartsAhead(t *testing.T) {
	c := newContainer(t, "", "sh", "-c", "cat /proc/1/stat; echo err >&2; exit 3")
	pool := &Pool{}
	defer pool.Close()

	var out, errb bytes.Buffer
	err := pool.Run(context.Background(), c.spec, Stdio{Stdout: &out, Stderr: &errb})
	if code := exitCodeOf(t, err); code != 3 || errb.String() != "err\n" {
		t.Fatalf("first run: exit %d, stderr %q", code, errb.String())
	}

	time.Sleep(300 * time.Millisecond)
	asked := uptimeTicks(t)
	out.Reset()
	errb.Reset()
	err = pool.Run(context.Background(), c.spec, Stdio{Stdout: &out, Stderr: &errb})
	if code := exitCodeOf(t, err); code != 3 || errb.String() != "err\n" {
		t.Fatalf("second run: exit %d, stderr %q", code, errb.String())
	}
	second := startTicks(t, out.String())
	// The spare starts with the first container, 300 ms before it is
	// asked for; one started on demand would be at most a tick early.
	if second > asked-10 {
		t.Errorf("second init started at tick %d, the run was asked for at %d: not started ahead", second, asked)
	}
	checkNoHostMounts(t, c.upper, c.lower)
	assertNoStubs(t, c.upper)
}

// assertNoStubs fails t if the upper dir holds anything: the commands of
// these tests change nothing, so all there could be is a mount-point stub.
func assertNoStubs(t *testing.T, upper string) {
	t.Helper()
	ents, err := os.ReadDir(upper)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left in the upper dir: %s", e.Name())
	}
}

// A spare of the wrong network flavour is not used: each container gets
// the namespaces it asked for.
func TestPoolNetworkFlavours(t *testing.T) {
	c := newContainer(t, "", "sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '")
	pool := &Pool{}
	defer pool.Close()
	for i, network := range []string{"none", "host", "host", "none", "none"} {
		c.spec.Network = network
		var out bytes.Buffer
		if err := pool.Run(context.Background(), c.spec, Stdio{Stdout: &out, Stderr: io.Discard}); err != nil {
			t.Fatalf("run %d (%s): %v", i, network, err)
		}
		onlyLo := out.String() == "lo "
		if onlyLo != (network == "none") {
			t.Errorf("run %d with network %s sees interfaces %q", i, network, out.String())
		}
	}
}

// Containers that need their init set up at start (a terminal, a file as
// output) still run through a pool, with an init of their own.
func TestPoolFileOutput(t *testing.T) {
	c := newContainer(t, "", "sh", "-c", "[ -p /proc/self/fd/1 ] && echo pipe || echo notpipe")
	pool := &Pool{}
	defer pool.Close()
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 2 {
		if err := pool.Run(context.Background(), c.spec, Stdio{Stdout: f}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "notpipe\nnotpipe\n" {
		t.Errorf("output %q: the command should write the file itself", b)
	}
}

// Close kills the spare init; none is left running.
func TestPoolCloseKillsSpare(t *testing.T) {
	c := newContainer(t, "", "true")
	pool := &Pool{}
	if err := pool.Run(context.Background(), c.spec, pooled()); err != nil {
		t.Fatal(err)
	}
	var spare int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		pool.mu.Lock()
		if len(pool.spares) > 0 {
			spare = pool.spares[0].cmd.Process.Pid
		}
		pool.mu.Unlock()
		if spare != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no spare init was started")
		}
	}
	pool.Close()
	if err := syscall.Kill(spare, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("spare init %d still there after Close (kill 0: %v)", spare, err)
	}
	// A closed pool still runs containers, each with its own init.
	if err := pool.Run(context.Background(), c.spec, pooled()); err != nil {
		t.Fatal(err)
	}
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if len(pool.spares) > 0 || pool.filling {
		t.Error("a closed pool started a spare")
	}
}

// Cancelling the context kills a container whose init came from the pool.
func TestPoolCancel(t *testing.T) {
	c := newContainer(t, "", "sleep", "60")
	pool := &Pool{}
	defer pool.Close()
	if err := pool.Run(context.Background(), newContainer(t, "", "true").spec, pooled()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := pool.Run(ctx, c.spec, pooled())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancelled run took %v", d)
	}
}

// A spare that died while waiting (killed, out of memory) is not handed a
// container: the container starts an init of its own and runs as usual.
func TestPoolSpareDied(t *testing.T) {
	c := newContainer(t, "", "sh", "-c", "echo ran")
	pool := &Pool{}
	defer pool.Close()
	if err := pool.Run(context.Background(), c.spec, pooled()); err != nil {
		t.Fatal(err)
	}
	var spare *initProc
	for deadline := time.Now().Add(10 * time.Second); spare == nil; time.Sleep(10 * time.Millisecond) {
		pool.mu.Lock()
		if len(pool.spares) > 0 {
			spare = pool.spares[0]
		}
		pool.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("no spare init was started")
		}
	}
	if err := spare.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Let it die before the next container takes it.
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(spare.cmd.Process.Pid, 0) == nil; time.Sleep(10 * time.Millisecond) {
		var st [1024]byte
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(spare.cmd.Process.Pid) + "/stat")
		copy(st[:], b)
		if strings.Contains(string(b), ") Z ") || time.Now().After(deadline) {
			break
		}
	}
	var out bytes.Buffer
	if err := pool.Run(context.Background(), c.spec, Stdio{Stdout: &out, Stderr: io.Discard}); err != nil || out.String() != "ran\n" {
		t.Fatalf("run after the spare died: %v, output %q", err, out.String())
	}
}

// TestPoolLimits: a container with resource limits still takes the spare
// (started before it was asked for); the spare joins its cgroup and the
// limit holds: a fork loop fails under a pids limit, as a pool's default
// limits apply to a spec without any.
func TestPoolLimits(t *testing.T) {
	requiresCgroups(t, Resources{Pids: 8})
	c := newContainer(t, "", "sh", "-c", "cat /proc/1/stat; grep -c ':pids:/builder/' /proc/self/cgroup; for i in $(seq 20); do sleep 1000 & done; echo all started")
	pool := &Pool{Resources: &Resources{Pids: 8}}
	defer pool.Close()
	var out, errb bytes.Buffer
	if err := pool.Run(context.Background(), c.spec, Stdio{Stdout: &out, Stderr: &errb}); exitCodeOf(t, err) == 0 {
		t.Fatalf("first run: fork loop succeeded: %q", out.String())
	}
	time.Sleep(300 * time.Millisecond)
	asked := uptimeTicks(t)
	out.Reset()
	errb.Reset()
	err := pool.Run(context.Background(), c.spec, Stdio{Stdout: &out, Stderr: &errb})
	if exitCodeOf(t, err) == 0 || strings.Contains(out.String(), "all started") || !strings.Contains(errb.String(), "can't fork") {
		t.Fatalf("second run: %v, stdout %q, stderr %q", err, out.String(), errb.String())
	}
	stat, rest, _ := strings.Cut(out.String(), "\n")
	if second := startTicks(t, stat); second > asked-10 {
		t.Errorf("second init started at tick %d, the run was asked for at %d: not started ahead", second, asked)
	}
	if !strings.HasPrefix(rest, "1\n") {
		t.Errorf("not in a builder pids cgroup: %q", rest)
	}
	// Limits of its own: the spare's cgroup does not fit, the container
	// gets an init (and a cgroup) of its own, and its limit holds.
	time.Sleep(300 * time.Millisecond)
	asked = uptimeTicks(t)
	out.Reset()
	errb.Reset()
	own := c.spec
	own.Resources = &Resources{Pids: 4}
	own.Args = sh("cat /proc/1/stat; sleep 1000 & sleep 1000 & sleep 1000 & sleep 1000 & echo all started")
	err = pool.Run(context.Background(), own, Stdio{Stdout: &out, Stderr: &errb})
	if exitCodeOf(t, err) == 0 || strings.Contains(out.String(), "all started") || !strings.Contains(errb.String(), "can't fork") {
		t.Fatalf("own limits: %v, stdout %q, stderr %q", err, out.String(), errb.String())
	}
	if third := startTicks(t, out.String()); third < asked-1 {
		t.Errorf("third init started at tick %d, before it was asked for at %d: it took the spare of other limits", third, asked)
	}
	// The next two spares wait in cgroups of their own, which Close
	// removes.
	pool.fills.Wait()
	pool.mu.Lock()
	var spareCgroups []string
	for _, ip := range pool.spares {
		if ip.cg != nil {
			spareCgroups = append(spareCgroups, ip.cg.dirs[0].path)
		}
	}
	pool.mu.Unlock()
	if len(spareCgroups) != 2 {
		t.Fatalf("%d spares in cgroups, want 2 (see depth)", len(spareCgroups))
	}
	pool.Close()
	for _, p := range spareCgroups {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the spare's cgroup %s is left (%v)", p, err)
		}
	}
	checkNoHostMounts(t, c.upper, c.lower)
}

// A nil writer (/dev/null), a file, stdin or a terminal keep a container
// from taking a spare; one writer for both streams does not (see
// TestPoolMergedStreamsKeepOrder).
func TestPoolPrestartable(t *testing.T) {
	var b bytes.Buffer
	for _, tc := range []struct {
		stdio Stdio
		want  bool
	}{
		{Stdio{Stdout: &b, Stderr: io.Discard}, true},
		{Stdio{Stdout: &b, Stderr: &b}, true},
		{Stdio{Stdout: &b}, false},
		{Stdio{Stdout: os.Stdout, Stderr: &b}, false},
		{Stdio{Stdout: &b, Stderr: io.Discard, Stdin: &b}, false},
	} {
		if got := prestartable(Spec{}, tc.stdio); got != tc.want {
			t.Errorf("prestartable(%+v) = %v", tc.stdio, got)
		}
	}
	if prestartable(Spec{Tty: true}, Stdio{Stdout: &b, Stderr: io.Discard}) {
		t.Error("a tty container took a spare")
	}
}

// One writer for both streams gets the output in the order the command
// wrote it, also from a spare init (the second and third runs), and a
// spare started for one pipe is not given to a container that wants two.
func TestPoolMergedStreamsKeepOrder(t *testing.T) {
	script := "for i in 1 2 3 4 5 6 7 8; do echo out$i; echo err$i >&2; done"
	c := newContainer(t, "", "sh", "-c", script)
	var want strings.Builder
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&want, "out%d\nerr%d\n", i, i)
	}
	pool := &Pool{}
	defer pool.Close()
	for i := range 3 {
		var b bytes.Buffer
		if err := pool.Run(context.Background(), c.spec, Stdio{Stdout: &b, Stderr: &b}); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if b.String() != want.String() {
			t.Errorf("run %d: output %q, want %q", i, b.String(), want.String())
		}
	}
	var out, errb bytes.Buffer
	if err := pool.Run(context.Background(), c.spec, Stdio{Stdout: &out, Stderr: &errb}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "err") || strings.Contains(errb.String(), "out") {
		t.Errorf("two writers got stdout %q, stderr %q", out.String(), errb.String())
	}
	assertNoStubs(t, c.upper)
}

// TestPoolReusesCgroups: a pool's containers in sequence run in cgroups
// that earlier ones left, rather than in a new one each; the limit holds in
// a reused cgroup, set again at exec: a limit of 1 leaves the command's
// shell no fork, and it is lifted while the next spare waits in the cgroup
// (the init's Go runtime has several threads). Close leaves none of them.
func TestPoolReusesCgroups(t *testing.T) {
	requiresCgroups(t, Resources{Pids: 1})
	h, err := findHierarchies()
	if err != nil {
		t.Fatal(err)
	}
	root := h.mounts.v1[ctlPids]
	if root == "" {
		root = h.mounts.v2
	}
	c := newContainer(t, "", "sh", "-c", "while read l; do case $l in *builder/run-*) echo $l;; esac; done </proc/self/cgroup; sleep 1000 & echo all started")
	pool := &Pool{Resources: &Resources{Pids: 1}}
	defer pool.Close()
	used := map[string]int{}
	const runs = 4
	for i := range runs {
		var out, errb bytes.Buffer
		err := pool.Run(context.Background(), c.spec, Stdio{Stdout: &out, Stderr: &errb})
		if exitCodeOf(t, err) == 0 || strings.Contains(out.String(), "all started") || !strings.Contains(errb.String(), "can't fork") {
			t.Fatalf("run %d: the limit did not hold: %v, stdout %q, stderr %q", i, err, out.String(), errb.String())
		}
		line, _, _ := strings.Cut(out.String(), "\n")
		at := strings.Index(line, "/builder/run-")
		if at < 0 {
			t.Fatalf("run %d: not in a builder cgroup: %q", i, out.String())
		}
		used[filepath.Join(root, line[at:])]++
	}
	if len(used) == runs {
		t.Errorf("%d containers in %d cgroups: none reused", runs, len(used))
	}
	// The spares wait in cgroups that containers left, the limit lifted.
	pool.fills.Wait()
	pool.mu.Lock()
	reused := 0
	for _, ip := range pool.spares {
		if ip.cg == nil || used[ip.cg.dirs[0].path] == 0 {
			continue
		}
		reused++
		max, err := os.ReadFile(filepath.Join(ip.cg.dirs[0].path, "pids.max"))
		if err != nil || strings.TrimSpace(string(max)) != "max" {
			t.Errorf("a spare waits in %s with pids.max %q (%v), want max", ip.cg.dirs[0].path, max, err)
		}
	}
	pool.mu.Unlock()
	if reused == 0 {
		t.Error("no spare waits in a cgroup a container left")
	}
	pool.Close()
	for p := range used {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s is left after Close (%v)", p, err)
		}
	}
	checkNoHostMounts(t, c.upper, c.lower)
}
