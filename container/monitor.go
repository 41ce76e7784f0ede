package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

// monitorReport is what a monitor tells the process that spawned it, on
// its fd 3, once the container runs (Pid) or could not start.
type monitorReport struct {
	Pid   int    `json:"pid,omitempty"`
	Code  int    `json:"code,omitempty"` // the exit code when it could not start
	Error string `json:"error,omitempty"`
}

// NotExecutedError is a detached container whose command could not be
// executed: Code (126 or 127) is its exit, as Docker reports it.
type NotExecutedError struct{ Code int }

func (e NotExecutedError) Error() string { return fmt.Sprintf("exit code %d", e.Code) }

// SpawnMonitor starts a monitor process for c in a session of its own, so
// it outlives this process and no terminal signal reaches it, and waits
// until the container runs. args are the arguments to this executable
// that make it the monitor of c and call Monitor.Run (the command line is
// the caller's). When the command could not be executed it copies the
// container's output (the runner's message) to stderr and returns a
// NotExecutedError.
func SpawnMonitor(ctx context.Context, rt *Runtime, c *Container, args []string, stderr io.Writer) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start monitor: %w", err)
	}
	defer pr.Close()
	// The monitor's own errors, for whoever debugs a container that did
	// not start.
	logf, err := os.OpenFile(filepath.Join(rt.Dir(c.ID), "monitor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		pw.Close()
		return fmt.Errorf("start monitor: %w", err)
	}
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Args[0] = "builder" // what ps shows
	cmd.Dir = "/"           // not to keep the caller's directory busy
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{pw} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close()
	logf.Close()
	if err != nil {
		return fmt.Errorf("start monitor: %w", err)
	}
	// Nobody waits for it: once we exit, init (or a subreaper) reaps it.
	defer cmd.Process.Release()
	var rep monitorReport
	if err := json.NewDecoder(pr).Decode(&rep); err != nil {
		return fmt.Errorf("start container %s: the monitor ended without a word (see %s)", c.Name, filepath.Join(rt.Dir(c.ID), "monitor.log"))
	}
	switch {
	case rep.Error != "":
		return errors.New(rep.Error)
	case rep.Pid == 0:
		_ = ReadLog(ctx, rt.LogPath(c.ID), stderr, stderr, LogOptions{})
		return NotExecutedError{Code: rep.Code}
	}
	return nil
}

// Monitor is the far end of SpawnMonitor, in the monitor process: it runs
// the container and reports, once, on the pipe SpawnMonitor waits on.
type Monitor struct {
	ready *os.File
}

// NewMonitor is the monitor that reports on ready (fd 3 of the monitor
// process; nil reports nothing).
func NewMonitor(ready *os.File) *Monitor {
	return &Monitor{ready: ready}
}

func (m *Monitor) report(r monitorReport) {
	if m.ready != nil {
		_ = json.NewEncoder(m.ready).Encode(r)
		m.ready.Close()
		m.ready = nil
	}
}

// Close reports a failure if nothing was reported yet (the monitor failed
// before it could say why): the spawner must not wait forever. Defer it.
func (m *Monitor) Close() {
	m.report(monitorReport{Error: "the monitor failed"})
}

// Fail reports err (the monitor could not get as far as Run) and returns
// it.
func (m *Monitor) Fail(err error) error {
	m.report(monitorReport{Error: err.Error()})
	return err
}

// Run runs the container id of rt to its end, forwarding signals to it,
// and reports its pid once it runs, or why it could not start.
func (m *Monitor) Run(ctx context.Context, rt *Runtime, id string, signals []os.Signal) error {
	c, err := Get(ctx, rt.Store.Meta(), id)
	if err != nil {
		return m.Fail(err)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, signals...)
	rio := IO{Signals: sigs, Started: func(pid int) { m.report(monitorReport{Pid: pid}) }}
	if c.Host.OpenStdin {
		// -d -i: stdin stays open (and empty), as in Docker with nobody
		// attached.
		r, w, err := os.Pipe()
		if err != nil {
			return m.Fail(err)
		}
		defer w.Close()
		defer r.Close()
		rio.Stdin = r
	}
	code, err := rt.Run(ctx, c.ID, rio)
	if err != nil {
		m.report(monitorReport{Error: err.Error(), Code: code})
		return err
	}
	m.report(monitorReport{Code: code})
	return nil
}
