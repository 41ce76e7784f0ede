package container

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// errGone: the process a record names has exited (or its pid now belongs
// to another process).
var errGone = errors.New("process is gone")

// procStat reads the state letter and start time (clock ticks since boot)
// of pid from /proc/<pid>/stat.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStat(string(b))
}

// parseStat reads fields 3 (state) and 22 (starttime) of a /proc/<pid>/stat
// line. The command name (field 2) may hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(s string) (byte, uint64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed /proc stat: %w", err)
	}
	return f[0][0], start, nil
}

// ProcStart returns the start time of pid, to record next to it.
func ProcStart(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

// alive reports whether the process pid that started at start still runs.
// A zombie has exited: it only waits for its parent to collect its status.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	state, st, err := procStat(pid)
	if err != nil {
		return false
	}
	return st == start && state != 'Z' && state != 'X'
}

// Live reports whether c is really running: recorded so, and its container
// process or its monitor (which may be starting it, or recording its exit)
// still alive.
func Live(c *Container) bool {
	if c.State.Status != Running {
		return false
	}
	return alive(c.State.Pid, c.State.PidStart) || alive(c.State.MonitorPid, c.State.MonitorStart)
}

// signalProc sends sig to pid if it is still the process that started at
// start. The pidfd pins the process: once its start time has been checked
// through it, the signal cannot reach a newer process that reused the pid.
func signalProc(pid int, start uint64, sig unix.Signal) error {
	if pid <= 0 {
		return errGone
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return errGone
	}
	if err != nil {
		return fmt.Errorf("open pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if !alive(pid, start) {
		return errGone
	}
	err = unix.PidfdSendSignal(fd, sig, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return errGone
	}
	if err != nil {
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	return nil
}
