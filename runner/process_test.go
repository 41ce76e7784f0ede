package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
)

// started is a container started with pipes for stdin and stdout.
type started struct {
	p      *Process
	in     *os.File // the command's stdin
	out    *bufio.Reader
	outR   *os.File
	errOut strings.Builder
}

func startSleeper(t *testing.T, c *container) *started {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &started{in: inW, out: bufio.NewReader(outR), outR: outR}
	p, err := Start(context.Background(), c.spec, Stdio{Stdin: inR, Stdout: outW, Stderr: &s.errOut})
	// The container has its copies now: ours would keep EOF from coming.
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		t.Fatal(err)
	}
	s.p = p
	t.Cleanup(func() {
		_ = p.Signal(syscall.SIGKILL)
		_ = p.Wait()
		inW.Close()
		outR.Close()
		checkNoHostMounts(t, c.upper, c.lower)
	})
	return s
}

// expect reads the next line of the command's output and fails t unless it
// is want.
func (s *started) expect(t *testing.T, want string) {
	t.Helper()
	line, err := s.out.ReadString('\n')
	if err != nil || line != want+"\n" {
		t.Fatalf("read %q (%v), want %q; stderr %q", line, err, want, s.errOut.String())
	}
}

func TestStartSignalWait(t *testing.T) {
	c := newContainer(t, "", sh(`trap "echo got TERM; exit 0" TERM; echo ready; while :; do sleep 0.1; done`)...)
	s := startSleeper(t, c)
	// The container's pid 1 is the pid Pid reports, as its namespace sees it.
	if ns := procStatus(t, s.p.Pid(), "NSpid"); ns != fmt.Sprintf("%d\t1", s.p.Pid()) {
		t.Fatalf("NSpid of Pid() is %q", ns)
	}
	s.expect(t, "ready")
	if err := s.p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.expect(t, "got TERM")
	if err := s.p.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if rest, _ := io.ReadAll(s.out); len(rest) != 0 {
		t.Fatalf("more output after exit: %q", rest)
	}
	// Wait again answers the same; signalling is over.
	if err := s.p.Wait(); err != nil {
		t.Fatalf("second Wait: %v", err)
	}
	if err := s.p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("Signal after Wait: %v", err)
	}
}

// TestSignalWithoutHandlerIgnored: pid 1 without a handler does not die of
// SIGTERM (the kernel drops it); SIGKILL still works.
func TestSignalWithoutHandlerIgnored(t *testing.T) {
	c := newContainer(t, "", sh(`echo ready; read x; echo "alive $x"; while :; do sleep 1; done`)...)
	s := startSleeper(t, c)
	s.expect(t, "ready")
	if err := s.p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The signal was dropped when sent; the shell still reads.
	if _, err := s.in.WriteString("after TERM\n"); err != nil {
		t.Fatal(err)
	}
	s.expect(t, "alive after TERM")
	if err := s.p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if got := exitCodeOf(t, s.p.Wait()); got != 137 {
		t.Fatalf("exit code %d, want 137", got)
	}
}

// TestStartFails: Start returns Run's errors when the command never runs,
// with no Process to wait for, and leaves nothing behind.
func TestStartFails(t *testing.T) {
	c := newContainer(t, "", "nosuchcmd")
	var errOut strings.Builder
	p, err := Start(context.Background(), c.spec, Stdio{Stderr: &errOut})
	var ee *ExitError
	if p != nil || !errors.As(err, &ee) || ee.Code != 127 || !strings.Contains(errOut.String(), "executable file not found") {
		t.Fatalf("got %v, %v (stderr %q); want exit 127", p, err, errOut.String())
	}

	c = newContainer(t, "", "true")
	c.spec.Mounts = []Mount{{Type: "bind", Source: "/nonexistent/source", Dest: "/x"}}
	p, err = Start(context.Background(), c.spec, Stdio{})
	if p != nil || err == nil || errors.As(err, &ee) || !strings.HasPrefix(err.Error(), "runner: bind mount source") {
		t.Fatalf("got %v, %v; want a setup error", p, err)
	}
	checkNoHostMounts(t, c.upper, c.lower)
	if entries, _ := os.ReadDir(c.upper); len(entries) != 0 {
		t.Fatalf("upper dir keeps %s after a failed start", entries[0].Name())
	}
}

// TestNoHostProcesses: the container can neither see nor signal a host
// process (this test's own).
func TestNoHostProcesses(t *testing.T) {
	pid := os.Getpid()
	script := fmt.Sprintf(`kill -0 %[1]d 2>/dev/null && echo "signalled host pid"
[ -e /proc/%[1]d ] && echo "sees host pid"
ls /proc >/tmp/ls; grep -c '^[0-9]' /tmp/ls`, pid)
	c := newContainer(t, "", sh(script)...)
	// sh and ls: nothing else exists in the container.
	if got := c.mustRun(t); got != "2\n" {
		t.Fatalf("got %q", got)
	}
}

// TestPrivilegedOpsRefused: root in the container has Docker's capabilities
// only: no mounts, no hostname change, no network admin, no raw I/O ports.
func TestPrivilegedOpsRefused(t *testing.T) {
	script := `mount -t tmpfs t /mnt 2>/dev/null && echo mounted
hostname other 2>/dev/null && echo "hostname changed"
ip link set lo down 2>/dev/null && echo "lo down"
echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo "sysctl written"
mknod /tmp/sda b 8 0 && echo "mknod allowed"
chown 1:1 /tmp && echo "chown allowed"
grep CapBnd /proc/self/status`
	c := newContainer(t, "", sh(script)...)
	c.spec.Network = "none"
	got := c.mustRun(t)
	// CAP_MKNOD and CAP_CHOWN are in Docker's set.
	if want := "mknod allowed\nchown allowed\nCapBnd:\t00000000a80425fb\n"; got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// procStatus returns a field of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}
