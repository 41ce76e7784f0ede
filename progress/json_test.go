package progress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/builder-dev/builder/solver"
)

func TestJSON(t *testing.T) {
	var buf, stdout bytes.Buffer
	p, err := New(&buf, &stdout, "json")
	if err != nil {
		t.Fatal(err)
	}
	ns := func(ms, n int) time.Time { return at(ms).Add(time.Duration(n)) }
	p.Warn("unused build arg FOO")
	// Two stages run side by side: a starts, b starts, a ends, b ends.
	p.Event(solver.Event{Vertex: 1, Name: "[a 1/1] RUN x", Status: solver.StatusStart, Time: ns(0, 17)})
	p.Event(solver.Event{Vertex: 2, Name: "[b 1/1] RUN y", Status: solver.StatusStart, Time: ns(10, 3)})
	p.Event(solver.Event{Vertex: 1, Name: "[a 1/1] RUN x", Status: solver.StatusLog, Data: []byte("<warn> & \"q\"\npart"), Time: ns(20, 0)})
	p.Event(solver.Event{Vertex: 1, Name: "[a 1/1] RUN x", Status: solver.StatusDone, Duration: ms(30), Time: ns(30, 17)})
	p.Event(solver.Event{Vertex: 2, Name: "[b 1/1] RUN y", Status: solver.StatusError, Duration: ms(40), Time: ns(50, 3), Error: "exit 1"})
	p.Done("sha256:abc", []string{"app"}, ms(55))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if stdout.Len() != 0 {
		t.Errorf("json wrote to stdout: %q", stdout.String())
	}

	// Decode generically, as a tool would.
	type line struct {
		Vertex   int       `json:"vertex"`
		Name     string    `json:"name"`
		Status   string    `json:"status"`
		Time     time.Time `json:"time"`
		Started  time.Time `json:"started"`
		Duration int64     `json:"duration"`
		Data     string    `json:"data"`
		Error    string    `json:"error"`
		Message  string    `json:"message"`
		ID       string    `json:"id"`
		Tags     []string  `json:"tags"`
	}
	var got []line
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if strings.Contains(sc.Text(), `\u003c`) {
			t.Errorf("HTML escaping in %s", sc.Text())
		}
		got = append(got, l)
	}
	if len(got) != 7 {
		t.Fatalf("got %d lines, want 7: %+v", len(got), got)
	}
	if got[0].Status != "warning" || got[0].Message != "unused build arg FOO" {
		t.Errorf("warning line: %+v", got[0])
	}
	if g := got[3]; g.Status != "log" || g.Data != "<warn> & \"q\"\npart" || g.Vertex != 1 {
		t.Errorf("log line: %+v", g)
	}
	if g := got[6]; g.Status != "image" || g.ID != "sha256:abc" || len(g.Tags) != 1 || g.Duration != int64(ms(55)) {
		t.Errorf("image line: %+v", g)
	}

	// The timestamps keep their nanoseconds, and each step's interval
	// [started, time] comes back whole: enough to prove stages overlapped.
	type span struct{ from, to time.Time }
	spans := map[int]*span{}
	for _, l := range got {
		switch l.Status {
		case "start":
			spans[l.Vertex] = &span{from: l.Time}
		case "done", "error", "cached":
			s := spans[l.Vertex]
			if !l.Started.Equal(s.from) {
				t.Errorf("vertex %d: started %v, start event said %v", l.Vertex, l.Started, s.from)
			}
			s.to = l.Time
		}
	}
	if !spans[1].from.Equal(ns(0, 17)) || !spans[2].to.Equal(ns(50, 3)) {
		t.Errorf("nanoseconds lost: %+v %+v", spans[1], spans[2])
	}
	a, b := spans[1], spans[2]
	if !(a.from.Before(b.to) && b.from.Before(a.to)) {
		t.Errorf("intervals %v and %v do not overlap", a, b)
	}
}

// An event without a time gets the printer's clock, and a completion
// without a start event derives its start from the duration.
func TestJSONDefaults(t *testing.T) {
	var buf bytes.Buffer
	now := at(500)
	d := newJSON(&buf, fixedClock(&now))
	d.event(solver.Event{Vertex: 3, Status: solver.StatusCached, Duration: ms(200)})
	var l jsonEvent
	if err := json.Unmarshal(buf.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	if !l.Time.Equal(at(500)) || !l.Started.Equal(at(300)) {
		t.Errorf("time %v started %v, want %v and %v", l.Time, l.Started, at(500), at(300))
	}
	if strings.Contains(buf.String(), `"data"`) || strings.Contains(buf.String(), `"started":"0001`) {
		t.Errorf("empty fields written: %s", buf.String())
	}
}
