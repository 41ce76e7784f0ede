package progress

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/builder-dev/builder/solver"
)

// vertex is what the printers remember about one step.
type vertex struct {
	id      int
	name    string
	started time.Time
	ended   time.Time
	// status is StatusStart while the step runs, then cached, done or error.
	status solver.Status
	err    string
	// took is the step's duration once it completed.
	took time.Duration

	seenStart bool

	// partial holds output after the last newline, and partialAt when its
	// first byte arrived: a line's time is when it began.
	partial   []byte
	partialAt time.Time

	// subs are detail lines of a synthetic vertex ("writing image ...").
	subs []string
}

func (v *vertex) completed() bool { return v.status != solver.StatusStart }

func (v *vertex) canceled() bool {
	return v.status == solver.StatusError && strings.HasSuffix(v.err, context.Canceled.Error())
}

// duration is how long the step took, or has taken so far at now.
func (v *vertex) duration(now time.Time) time.Duration {
	if v.completed() {
		return v.took
	}
	if d := now.Sub(v.started); d > 0 {
		return d
	}
	return 0
}

// logLine is one complete line of a step's output, at its offset from the
// step's start (BuildKit's "#5 0.123 text").
type logLine struct {
	at   time.Duration
	text string
}

// tracker turns events into vertex state and output into whole lines.
type tracker struct {
	now   func() time.Time
	byID  map[int]*vertex
	order []*vertex
	maxID int
	// lastEnd is when the last step completed: where exporting began.
	lastEnd time.Time
}

func newTracker(now func() time.Time) *tracker {
	return &tracker{now: now, byID: map[int]*vertex{}}
}

func (t *tracker) get(id int, name string, at time.Time) *vertex {
	v := t.byID[id]
	if v == nil {
		v = &vertex{id: id, name: name, started: at, status: solver.StatusStart}
		t.byID[id] = v
		t.order = append(t.order, v)
		t.maxID = max(t.maxID, id)
	}
	if v.name == "" {
		v.name = name
	}
	return v
}

// update applies e and returns its vertex and the output lines it completed
// (a completion flushes the partial line).
func (t *tracker) update(e solver.Event) (*vertex, []logLine) {
	at := e.Time
	if at.IsZero() {
		at = t.now()
	}
	v := t.get(e.Vertex, e.Name, at)
	switch e.Status {
	case solver.StatusStart:
		v.started = at
		v.seenStart = true
		v.status = solver.StatusStart
		return v, nil
	case solver.StatusLog:
		return v, v.addOutput(e.Data, at)
	case solver.StatusCached, solver.StatusDone, solver.StatusError:
		lines := v.flush()
		v.status = e.Status
		v.err = e.Error
		v.ended = at
		// The solver's Duration is measured on the monotonic clock; trust
		// it over the difference of two wall times.
		v.took = e.Duration
		if v.took <= 0 {
			v.took = max(at.Sub(v.started), 0)
		}
		if !v.seenStart {
			v.started = at.Add(-v.took)
		}
		if at.After(t.lastEnd) {
			t.lastEnd = at
		}
		return v, lines
	}
	return v, nil
}

func (v *vertex) addOutput(b []byte, at time.Time) []logLine {
	var lines []logLine
	for len(b) > 0 {
		if len(v.partial) == 0 {
			v.partialAt = at
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			v.partial = append(v.partial, b...)
			break
		}
		v.partial = append(v.partial, b[:i]...)
		lines = append(lines, v.takeLine())
		b = b[i+1:]
	}
	return lines
}

// flush returns the unterminated last line, if any.
func (v *vertex) flush() []logLine {
	if len(v.partial) == 0 {
		return nil
	}
	return []logLine{v.takeLine()}
}

func (v *vertex) takeLine() logLine {
	at := v.partialAt.Sub(v.started)
	if at < 0 {
		at = 0
	}
	l := logLine{at: at, text: string(v.partial)}
	v.partial = v.partial[:0]
	return l
}
