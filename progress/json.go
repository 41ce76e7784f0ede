package progress

import (
	"encoding/json"
	"io"
	"time"

	"github.com/builder-dev/builder/solver"
)

// jsonEvent is one line of --progress=json. Its fields have the names of
// solver.Event's JSON encoding, except that log data is a string, not
// base64, so `jq -j .data` shows the output. Times are RFC 3339 with
// nanoseconds, durations are nanoseconds. Besides the solver's statuses there are "warning" (Message)
// and, last, "image" (ID, Tags, Duration of the whole build).
type jsonEvent struct {
	Vertex int    `json:"vertex,omitempty"`
	Name   string `json:"name,omitempty"`
	Status string `json:"status"`
	// Time is when the event happened: a step's start for "start", its
	// end for "cached", "done" and "error".
	Time time.Time `json:"time"`
	// Started is the step's start, on its completion events, so that one
	// line gives the step's whole interval.
	Started  time.Time     `json:"started,omitzero"`
	Duration time.Duration `json:"duration,omitempty"`
	Data     string        `json:"data,omitempty"`
	Error    string        `json:"error,omitempty"`
	Message  string        `json:"message,omitempty"`
	ID       string        `json:"id,omitempty"`
	Tags     []string      `json:"tags,omitempty"`
}

type jsonDisplay struct {
	enc *json.Encoder
	t   *tracker
}

func newJSON(w io.Writer, now func() time.Time) *jsonDisplay {
	enc := json.NewEncoder(w)
	// Output is data for tools, not HTML: keep "<" and "&" as they are.
	enc.SetEscapeHTML(false)
	return &jsonDisplay{enc: enc, t: newTracker(now)}
}

func (d *jsonDisplay) event(e solver.Event) {
	at := e.Time
	if at.IsZero() {
		at = d.t.now()
	}
	// The tracker supplies Started; its line splitting is not used, as
	// tools get the chunks as they came.
	v, _ := d.t.update(solver.Event{Vertex: e.Vertex, Name: e.Name, Status: e.Status, Time: at, Duration: e.Duration, Error: e.Error})
	je := jsonEvent{
		Vertex:   e.Vertex,
		Name:     e.Name,
		Status:   string(e.Status),
		Time:     at,
		Duration: e.Duration,
		Data:     string(e.Data),
		Error:    e.Error,
	}
	switch e.Status {
	case solver.StatusCached, solver.StatusDone, solver.StatusError:
		je.Started = v.started
	}
	_ = d.enc.Encode(je) // errWriter keeps the error for Close
}

func (d *jsonDisplay) warn(msg string) {
	_ = d.enc.Encode(jsonEvent{Status: "warning", Time: d.t.now(), Message: msg})
}

func (d *jsonDisplay) done(id string, tags []string, elapsed time.Duration) {
	_ = d.enc.Encode(jsonEvent{Status: "image", Time: d.t.now(), ID: id, Tags: tags, Duration: elapsed})
}

func (d *jsonDisplay) close() {}
