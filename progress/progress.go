package progress

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/solver"
)

// ErrUnknownMode is wrapped by New for a mode it does not know, so the
// caller can report a usage error.
var ErrUnknownMode = errors.New("unknown progress mode")

// Modes lists the modes New accepts, in the order --progress documents them.
var Modes = []string{"auto", "tty", "plain", "json", "quiet"}

// refreshInterval is how often the terminal view redraws: often enough for a
// running timer to look alive, rarely enough to cost nothing.
const refreshInterval = 100 * time.Millisecond

// display is one output format. The Printer serialises every call.
type display interface {
	event(e solver.Event)
	warn(msg string)
	done(id string, tags []string, elapsed time.Duration)
	// close flushes what is pending and prints the final state.
	close()
}

// Printer formats a build's progress. Its methods are safe to call from
// several goroutines.
type Printer struct {
	mu     sync.Mutex
	w      *errWriter
	stdout io.Writer
	quiet  bool
	out    display
	closed bool

	// The terminal view's refresher; nil in the other modes.
	tty     *ttyDisplay
	stop    chan struct{}
	stopped chan struct{}

	closeOnce sync.Once
}

// New returns a printer that writes progress to w in mode: "auto" (tty when
// w is a terminal, else plain), "tty", "plain", "json" or "quiet". stdout
// receives only what a script wants to capture: in quiet mode, the image ID
// that Done reports. Close must be called to stop the terminal refresher.
func New(w, stdout io.Writer, mode string) (*Printer, error) {
	if mode == "auto" {
		mode = "plain"
		if isTerminal(w) && os.Getenv("TERM") != "dumb" {
			mode = "tty"
		}
	}
	ew := &errWriter{w: w}
	p := &Printer{w: ew, stdout: stdout}
	switch mode {
	case "plain":
		p.out = newPlain(ew, time.Now)
	case "json":
		p.out = newJSON(ew, time.Now)
	case "quiet":
		p.quiet = true
		p.out = nopDisplay{}
	case "tty":
		p.tty = newTTY(ew, time.Now, terminalSize(w), os.Getenv("NO_COLOR") == "")
		p.out = p.tty
		p.stop = make(chan struct{})
		p.stopped = make(chan struct{})
		go p.refresh(refreshInterval)
	default:
		return nil, fmt.Errorf("%w %q (want auto, tty, plain, json or quiet)", ErrUnknownMode, mode)
	}
	return p, nil
}

// Event reports one solver event; it is a solver.Reporter. Events after
// Close are dropped.
func (p *Printer) Event(e solver.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.out.event(e)
}

// Warn reports a warning about the build (a deprecated instruction, an
// unused build arg). The terminal view keeps warnings for after its final
// frame, where they are not redrawn away.
func (p *Printer) Warn(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.warn(msg)
}

// Done reports the image the build wrote and the tags that name it. Called
// before Close, the terminal view shows it in its final frame; after Close it
// is printed below. In quiet mode only the ID is printed, on stdout.
func (p *Printer) Done(id string, tags []string, elapsed time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet {
		if p.stdout != nil {
			fmt.Fprintln(p.stdout, id)
		}
		return
	}
	p.out.done(id, tags, elapsed)
}

// Close flushes partial output lines, stops the terminal refresher and
// prints the final frame (with the full log of any failed step). It returns
// the first error writing the progress stream met. Calling it again returns
// the same error and prints nothing.
func (p *Printer) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		// The refresher takes mu for every frame, so wait for it without
		// holding mu.
		if p.stop != nil {
			close(p.stop)
			<-p.stopped
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.out.close()
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.w.err
}

func (p *Printer) refresh(interval time.Duration) {
	defer close(p.stopped)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			if !p.closed {
				p.tty.draw(false)
			}
			p.mu.Unlock()
		}
	}
}

// errWriter remembers the first write error and then stops writing: a
// progress stream that went away (a closed pipe) must not fail the build, but
// Close can still say what happened.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	if err != nil {
		e.err = fmt.Errorf("write progress: %w", err)
	}
	return n, err
}

type nopDisplay struct{}

func (nopDisplay) event(solver.Event)                   {}
func (nopDisplay) warn(string)                          {}
func (nopDisplay) done(string, []string, time.Duration) {}
func (nopDisplay) close()                               {}

type fder interface{ Fd() uintptr }

// isTerminal reports whether w is a terminal: TCGETS succeeds only on a tty
// (this is what golang.org/x/term does on Linux).
func isTerminal(w io.Writer) bool {
	f, ok := w.(fder)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// terminalSize returns a function reporting w's current size in columns and
// rows; it asks the kernel each time so the view follows a resize. Zero
// means unknown, and the view falls back to 80x24.
func terminalSize(w io.Writer) func() (int, int) {
	f, ok := w.(fder)
	if !ok {
		return func() (int, int) { return 0, 0 }
	}
	return func() (int, int) {
		ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
		if err != nil {
			return 0, 0
		}
		return int(ws.Col), int(ws.Row)
	}
}
