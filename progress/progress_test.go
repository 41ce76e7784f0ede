package progress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/builder-dev/builder/solver"
)

func TestNewModes(t *testing.T) {
	for _, mode := range Modes {
		var buf bytes.Buffer
		p, err := New(&buf, io.Discard, mode)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("%s: close: %v", mode, err)
		}
	}
	_, err := New(io.Discard, io.Discard, "fancy")
	if !errors.Is(err, ErrUnknownMode) || !strings.Contains(err.Error(), `"fancy"`) {
		t.Errorf("unknown mode: %v", err)
	}
}

func TestAutoIsPlainOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	p, err := New(&buf, nil, "auto")
	if err != nil {
		t.Fatal(err)
	}
	p.Event(start(1, "[a 1/1] RUN x", 0))
	p.Event(end(1, solver.StatusDone, 100, 100))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p.tty != nil || buf.String() != "#1 [a 1/1] RUN x\n#1 DONE 0.1s\n" {
		t.Errorf("auto on a buffer: tty=%v output %q", p.tty != nil, buf.String())
	}
}

// On a real terminal "auto" picks the live view, which learns the size
// from the kernel.
func TestAutoOnTerminal(t *testing.T) {
	master, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer master.Close()
	defer tty.Close()
	go io.Copy(io.Discard, master) // keep the pty from filling up
	if err := pty.Setsize(tty, &pty.Winsize{Cols: 101, Rows: 33}); err != nil {
		t.Fatal(err)
	}
	if cols, rows := terminalSize(tty)(); cols != 101 || rows != 33 {
		t.Errorf("size %dx%d, want 101x33", cols, rows)
	}
	t.Setenv("TERM", "xterm")
	p, err := New(tty, nil, "auto")
	if err != nil {
		t.Fatal(err)
	}
	if p.tty == nil {
		t.Error("auto on a terminal did not pick the live view")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if !isTerminal(tty) || isTerminal(&bytes.Buffer{}) {
		t.Error("isTerminal: wrong answer for a pty or a buffer")
	}
}

func TestQuiet(t *testing.T) {
	var progress, stdout bytes.Buffer
	p, err := New(&progress, &stdout, "quiet")
	if err != nil {
		t.Fatal(err)
	}
	p.Warn("w")
	p.Event(start(1, "[a 1/1] RUN x", 0))
	p.Event(logEv(1, "out\n", 1))
	p.Event(end(1, solver.StatusDone, 2, 2))
	p.Done("sha256:abc", []string{"t"}, time.Second)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if progress.Len() != 0 || stdout.String() != "sha256:abc\n" {
		t.Errorf("progress %q stdout %q", progress.String(), stdout.String())
	}
}

func TestCloseIdempotent(t *testing.T) {
	for _, mode := range []string{"plain", "tty", "json"} {
		t.Run(mode, func(t *testing.T) {
			var buf bytes.Buffer
			p, err := New(&buf, nil, mode)
			if err != nil {
				t.Fatal(err)
			}
			p.Event(start(1, "[a 1/1] RUN x", 0))
			p.Event(logEv(1, "tail", 1))
			for range 3 {
				if err := p.Close(); err != nil {
					t.Fatal(err)
				}
			}
			n := buf.Len()
			p.Event(logEv(1, "more\n", 2)) // dropped after Close
			if err := p.Close(); err != nil || buf.Len() != n {
				t.Errorf("after close: err %v, %d bytes more", err, buf.Len()-n)
			}
		})
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(b []byte) (int, error) {
	f.n++
	return 0, errors.New("broken pipe")
}

// A progress stream that fails is written to once; the error comes back
// from Close, and the build is not disturbed.
func TestWriteError(t *testing.T) {
	for _, mode := range []string{"plain", "tty", "json"} {
		w := &failWriter{}
		p, err := New(w, nil, mode)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < 5; i++ {
			p.Event(start(i, "x", 0))
			p.Event(end(i, solver.StatusDone, 1, 1))
		}
		err = p.Close()
		if err == nil || !strings.Contains(err.Error(), "broken pipe") || w.n != 1 {
			t.Errorf("%s: err %v after %d writes", mode, err, w.n)
		}
	}
}

// lockedScreen lets the test look at the screen while the refresher draws.
type lockedScreen struct {
	mu sync.Mutex
	s  screen
}

func (l *lockedScreen) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Write(b)
}

func (l *lockedScreen) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.String()
}

// The refresher draws while events arrive from several goroutines (run with
// -race), and Close stops it and leaves the final frame on the screen.
func TestTTYRefresher(t *testing.T) {
	scr := &lockedScreen{}
	p, err := New(scr, nil, "tty")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 1; g <= 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Event(solver.Event{Vertex: g, Name: fmt.Sprintf("[s%d 1/1] RUN x", g), Status: solver.StatusStart, Time: time.Now()})
			for i := range 50 {
				p.Event(solver.Event{Vertex: g, Status: solver.StatusLog, Data: fmt.Appendf(nil, "line %d\n", i), Time: time.Now()})
			}
			p.Warn(fmt.Sprintf("warning %d", g))
		}()
	}
	wg.Wait()
	// Wait for a live frame, so the test knows the refresher runs.
	for !strings.Contains(scr.String(), "[+] Building") {
		time.Sleep(10 * time.Millisecond)
	}
	for g := 1; g <= 4; g++ {
		p.Event(solver.Event{Vertex: g, Status: solver.StatusDone, Time: time.Now(), Duration: time.Millisecond})
	}
	p.Done("sha256:abc", []string{"app"}, time.Second)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	got := scr.String()
	lines := strings.Split(got, "\n")
	if !strings.HasPrefix(lines[0], "[+] Building 1.0s (5/5) FINISHED") || len(lines) != 12 {
		t.Errorf("final screen:\n%s", got)
	}
	if strings.Contains(got, "line 49") {
		t.Errorf("output of finished steps left on screen:\n%s", got)
	}
	select {
	case <-p.stopped:
	default:
		t.Error("refresher still running after Close")
	}
}
