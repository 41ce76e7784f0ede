package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// initProc is a started init waiting for its spec: the process and our ends
// of its pipes. Start hands it its container; a Pool starts one ahead.
type initProc struct {
	cmd     *exec.Cmd
	specW   *os.File // the init reads its initConfig from the other end
	statusR *os.File // and reports on this one's
	// status reads statusR: one decoder, since it reads ahead.
	status *json.Decoder
	// exited is closed once the init is reaped; until then the OS thread
	// that started it is kept alive (see spawn).
	exited chan struct{}
	// stdout and stderr take the command's output once the container is
	// known (late: a Pool starts the init before); nil when the init got
	// the streams themselves.
	stdout, stderr *lateWriter
	// cg is the cgroup a Pool's spare waits in, made with res; Start
	// takes it over for a container with the same limits.
	cg  *cgroup
	res Resources
}

// spawnOptions are what must be fixed when the init process starts.
type spawnOptions struct {
	network string // "none" adds a network namespace
	// stdio are given to the init as they are; with late set, the init
	// writes into pipes whose reader is chosen when the container is.
	stdio Stdio
	late  bool
	// merged gives the late streams one pipe (see flavour).
	merged bool
	// extra become the init's fds from firstExtraFd on (the console
	// socket, the cgroup files it writes at exec); setsid gives it its
	// own session.
	extra  []*os.File
	setsid bool
}

// spawn starts an init. It does nothing until its spec arrives.
func spawn(o spawnOptions) (*initProc, error) {
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("runner: spec pipe: %w", err)
	}
	defer specR.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		specW.Close()
		return nil, fmt.Errorf("runner: status pipe: %w", err)
	}
	defer statusW.Close()

	p := &initProc{specW: specW, statusR: statusR, status: json.NewDecoder(statusR), exited: make(chan struct{})}
	cmd := exec.Command(initBinary())
	cmd.Args = []string{"builder-runner-init"}
	// Async preemption signals could interrupt the init's mount and exec
	// calls; the init is short and single-minded, so it does without.
	// One P and no GC: the init is a short single-threaded setup, and every
	// RUN pays for its start (extra runtime threads, collector work).
	cmd.Env = []string{initEnv + "=" + protocol(), "GODEBUG=asyncpreemptoff=1", "GOMAXPROCS=1", "GOGC=off"}
	cmd.ExtraFiles = append([]*os.File{specR, statusW}, o.extra...) // specFd, statusFd, ...
	// No new mount namespace yet: the init makes its own once it has its
	// container (see containerInit), so that a spare waiting for one does
	// not hold copies of whatever the builder had mounted when it started.
	flags := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if o.network == "none" {
		flags |= unix.CLONE_NEWNET
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: flags,
		// If the builder dies, the container's pid 1 dies with it, and so
		// does everything in its pid namespace.
		Pdeathsig: unix.SIGKILL,
		Setsid:    o.setsid,
	}
	if o.late {
		p.stdout, p.stderr = newLateWriter(), newLateWriter()
		if o.merged {
			p.stderr = p.stdout // one writer: os/exec makes one pipe
		}
		cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = o.stdio.Stdin, o.stdio.Stdout, o.stdio.Stderr
	}

	// The parent-death signal is sent when the *thread* that forked the
	// init ends, not the process: the Go runtime ends a thread whenever a
	// goroutine exits while locked to it, which could kill a long-running
	// container at random. The fork happens on a thread of our own,
	// locked until the init is reaped.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			<-p.exited
		}
	}()
	if err := <-started; err != nil {
		specW.Close()
		statusR.Close()
		return nil, fmt.Errorf("runner: start init: %w", err)
	}
	p.cmd = cmd
	return p, nil
}

// sendSpec hands the init its container; an error means the init is gone.
func (p *initProc) sendSpec(cfg initConfig) error {
	err := json.NewEncoder(p.specW).Encode(cfg)
	if cerr := p.specW.Close(); err == nil {
		err = cerr
	}
	return err
}

// specRead waits for the init's first status message, which says it read
// its spec; false when the init ended first.
func (p *initProc) specRead() bool {
	var m status
	return p.status.Decode(&m) == nil && m.SpecRead
}

// wait reaps the init; the caller's streams get the last of its output.
func (p *initProc) wait() error {
	err := p.cmd.Wait()
	close(p.exited)
	return err
}

// discard kills an init that never got a container and reaps it.
func (p *initProc) discard() {
	p.specW.Close()
	p.statusR.Close()
	_ = p.cmd.Process.Kill()
	if p.stdout != nil {
		p.stdout.set(nil)
		p.stderr.set(nil)
	}
	_ = p.wait()
	_ = p.cg.release()
}

// lateWriter is an output stream whose destination is set after the
// process writing it started: writes wait for set. The init writes nothing
// before it has its container, so in practice none ever waits.
type lateWriter struct {
	once  sync.Once
	ready chan struct{}
	w     io.Writer
}

func newLateWriter() *lateWriter { return &lateWriter{ready: make(chan struct{})} }

// set gives the destination (nil: discard); only the first call counts.
func (l *lateWriter) set(w io.Writer) {
	l.once.Do(func() {
		l.w = w
		close(l.ready)
	})
}

func (l *lateWriter) Write(b []byte) (int, error) {
	<-l.ready
	if l.w == nil {
		return len(b), nil
	}
	return l.w.Write(b)
}
