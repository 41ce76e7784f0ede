package solver

import (
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
	Stream   int           `json:"stream,omitempty"` // 1 stdout, 2 stderr for logs
	Data     []byte        `json:"data,omitempty"`
	Error    string        `json:"error,omitempty"`
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

// logWriter turns a RUN's output into log events of its vertex.
type logWriter struct {
	p      *progress
	vertex int
	name   string
	stream int
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.p.send(Event{Vertex: w.vertex, Name: w.name, Status: StatusLog, Stream: w.stream, Data: append([]byte(nil), b...)})
	return len(b), nil
}
