package solver

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// Status says what happened to a vertex.
type Status string

const (
	StatusStart  Status = "start"
	StatusCached Status = "cached"
	StatusDone   Status = "done"
	StatusError  Status = "error"
	StatusLog    Status = "log"
)

// Event is one progress report. Vertex numbers are stable within a build
// (like BuildKit's #N), so a formatter can interleave parallel stages.
type Event struct {
	Vertex   int           `json:"vertex"`
	Name     string        `json:"name"`
	Status   Status        `json:"status"`
	Time     time.Time     `json:"time"`
	Duration time.Duration `json:"duration,omitempty"`
	// Data is a piece of a step's output. A RUN's stdout and stderr are
	// one stream, in the order the command wrote them (as a terminal
	// shows them), so there is no telling them apart.
	Data  []byte `json:"data,omitempty"`
	Error string `json:"error,omitempty"`
}

// Reporter receives events; it is called from several goroutines, one at a
// time (the solver serialises the calls).
type Reporter func(Event)

type progress struct {
	mu     sync.Mutex
	report Reporter
}

func (p *progress) send(e Event) {
	if p.report == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.report(e)
}

// maxStepLog is how much of a step's output is shown and kept, BuildKit's
// default: a step that prints gigabytes must neither flood the terminal
// nor fill the memory of whatever keeps its log. It counts the log as
// shown: each line also costs lineCost, the prefix a display puts before
// it ("#12 34.567 "), so that a flood of short lines is bounded too.
const (
	maxStepLog = 2 << 20
	lineCost   = 12
)

// clippedNote ends a step's log that reached maxStepLog, in BuildKit's words.
const clippedNote = "\n[output clipped, log limit 2MiB reached]\n"

// logWriter turns a RUN's output into log events of its vertex, up to
// maxStepLog; the rest is read and dropped, so the command runs on. The
// runner calls Write from one goroutine at a time.
type logWriter struct {
	p       *progress
	vertex  int
	name    string
	used    int // of maxStepLog
	clipped bool
}

func (w *logWriter) Write(b []byte) (int, error) {
	if w.clipped {
		return len(b), nil
	}
	keep := w.fit(b)
	data := append([]byte(nil), b[:keep]...)
	if keep < len(b) {
		data = append(data, clippedNote...)
		w.clipped = true
	}
	w.p.send(Event{Vertex: w.vertex, Name: w.name, Status: StatusLog, Data: data})
	return len(b), nil
}

// fit returns how much of b fits in what is left of maxStepLog, and
// counts it as used.
func (w *logWriter) fit(b []byte) int {
	if cost := len(b) + lineCost*bytes.Count(b, []byte{'\n'}); w.used+cost <= maxStepLog {
		w.used += cost
		return len(b)
	}
	n := 0
	for n < len(b) {
		text, cost, nl := len(b)-n, len(b)-n, false // the rest, unterminated
		if i := bytes.IndexByte(b[n:], '\n'); i >= 0 {
			text, cost, nl = i, i+1+lineCost, true
		}
		if left := maxStepLog - w.used; cost > left {
			// As much of the line as fits, without its newline.
			w.used = maxStepLog
			return n + min(text, left)
		}
		w.used += cost
		n += text
		if nl {
			n++
		}
	}
	return n
}

var _ io.Writer = (*logWriter)(nil)
