package container

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	line := "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n"
	state, start, err := parseStat(line)
	if err != nil || state != 'S' || start != 987654 {
		t.Errorf("parseStat = %c, %d, %v", state, start, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 x S"} {
		if _, _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestAlive(t *testing.T) {
	self := os.Getpid()
	start, err := ProcStart(self)
	if err != nil {
		t.Fatal(err)
	}
	if !alive(self, start) {
		t.Error("this process is not alive")
	}
	if alive(self, start+1) {
		t.Error("a pid with another start time is alive: a reused pid would be mistaken")
	}
	if alive(0, 0) || alive(-1, 0) {
		t.Error("pid 0 alive")
	}
	if err := signalProc(self, start+1, unix.Signal(0)); !errors.Is(err, errGone) {
		t.Errorf("signal to a reused pid: %v", err)
	}
	if err := signalProc(self, start, unix.Signal(0)); err != nil {
		t.Errorf("signal 0 to self: %v", err)
	}

	// An exited child not yet waited for (a zombie) is not alive.
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	cstart, _ := ProcStart(pid)
	var info unix.Siginfo
	// Wait for its exit without reaping it.
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if alive(pid, cstart) {
		t.Error("a zombie is alive")
	}
	if err := signalProc(pid, cstart, unix.SIGTERM); !errors.Is(err, errGone) {
		t.Errorf("signal to a zombie: %v", err)
	}
	cmd.Wait()
	if alive(pid, cstart) {
		t.Error("a reaped process is alive")
	}
}

func TestLive(t *testing.T) {
	self := os.Getpid()
	start, _ := ProcStart(self)
	for _, tc := range []struct {
		st   State
		want bool
	}{
		{State{Status: Running, Pid: self, PidStart: start}, true},
		{State{Status: Running, MonitorPid: self, MonitorStart: start}, true}, // starting
		{State{Status: Running, Pid: self, PidStart: start + 1}, false},
		{State{Status: Exited, Pid: self, PidStart: start}, false},
	} {
		if got := Live(&Container{State: tc.st}); got != tc.want {
			t.Errorf("Live(%+v) = %v", tc.st, got)
		}
	}
}
