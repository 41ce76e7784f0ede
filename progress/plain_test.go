package progress

import (
	"bytes"
	"testing"
	"time"

	"github.com/builder-dev/builder/solver"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// at is t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// fixedClock returns a clock that reads *now.
func fixedClock(now *time.Time) func() time.Time { return func() time.Time { return *now } }

func start(v int, name string, t int) solver.Event {
	return solver.Event{Vertex: v, Name: name, Status: solver.StatusStart, Time: at(t)}
}

func logEv(v int, data string, t int) solver.Event {
	return solver.Event{Vertex: v, Status: solver.StatusLog, Data: []byte(data), Time: at(t)}
}

func end(v int, status solver.Status, t, took int) solver.Event {
	return solver.Event{Vertex: v, Status: status, Time: at(t), Duration: ms(took)}
}

func TestPlain(t *testing.T) {
	tests := []struct {
		name   string
		events []solver.Event
		warn   []string
		done   bool
		want   string
	}{
		{
			name: "serial build with partial lines and export",
			warn: []string{"empty continuation line"},
			events: []solver.Event{
				start(1, "[stage-0 1/3] COPY a /a", 0),
				end(1, solver.StatusCached, 10, 10),
				start(2, "[stage-0 2/3] RUN echo hi", 100),
				logEv(2, "hi\n", 223),
				logEv(2, "part", 300),
				logEv(2, "ial line\nnext", 400),
				logEv(2, " one", 450),
				end(2, solver.StatusDone, 600, 500),
				start(3, "[stage-0 3/3] RUN true", 600),
				end(3, solver.StatusDone, 1850, 1250),
			},
			done: true,
			want: `WARNING: empty continuation line
#1 [stage-0 1/3] COPY a /a
#1 CACHED

#2 [stage-0 2/3] RUN echo hi
#2 0.123 hi
#2 0.200 partial line
#2 0.300 next one
#2 DONE 0.5s

#3 [stage-0 3/3] RUN true
#3 DONE 1.2s

#4 exporting to image
#4 writing image sha256:abc done
#4 naming to example.com/app:1 done
#4 naming to app:latest done
#4 DONE 0.1s
`,
		},
		{
			name: "parallel steps interleave with their numbers",
			events: []solver.Event{
				start(1, "[a 1/1] RUN work a", 0),
				start(2, "[b 1/1] RUN work b", 5),
				logEv(1, "a1\na2\n", 10),
				logEv(2, "b1\n", 20),
				logEv(2, "b2-part", 25), // no whole line: no switch
				logEv(1, "a3\n", 30),
				end(2, solver.StatusDone, 40, 35),
				logEv(1, "a4", 50),
				end(1, solver.StatusDone, 60, 60),
			},
			want: `#1 [a 1/1] RUN work a
#1 ...

#2 [b 1/1] RUN work b
#2 ...

#1 [a 1/1] RUN work a
#1 0.010 a1
#1 0.010 a2
#1 ...

#2 [b 1/1] RUN work b
#2 0.015 b1
#2 ...

#1 [a 1/1] RUN work a
#1 0.030 a3
#1 ...

#2 [b 1/1] RUN work b
#2 0.020 b2-part
#2 DONE 0.0s

#1 [a 1/1] RUN work a
#1 0.050 a4
#1 DONE 0.1s
`,
		},
		{
			name: "error and cancel",
			events: []solver.Event{
				start(1, "[a 1/1] RUN false", 0),
				start(2, "[b 1/1] RUN sleep 9", 0),
				logEv(1, "oops\n", 100),
				{Vertex: 1, Status: solver.StatusError, Time: at(200), Duration: ms(200), Error: "process exited with code 1"},
				{Vertex: 2, Status: solver.StatusError, Time: at(210), Duration: ms(210), Error: "run: context canceled"},
			},
			want: `#1 [a 1/1] RUN false
#1 ...

#2 [b 1/1] RUN sleep 9
#2 ...

#1 [a 1/1] RUN false
#1 0.100 oops
#1 ERROR: process exited with code 1

#2 [b 1/1] RUN sleep 9
#2 CANCELED
`,
		},
		{
			name: "close flushes the partial line of an unfinished step",
			events: []solver.Event{
				start(1, "[a 1/1] RUN x", 0),
				logEv(1, "no newline", 1500),
			},
			want: `#1 [a 1/1] RUN x
#1 1.500 no newline
`,
		},
		{
			name: "crlf and empty lines are kept as they are",
			events: []solver.Event{
				start(1, "[a 1/1] RUN x", 0),
				logEv(1, "dos\r\n\n", 1),
				end(1, solver.StatusDone, 2, 2),
			},
			want: "#1 [a 1/1] RUN x\n#1 0.001 dos\r\n#1 0.001 \n#1 DONE 0.0s\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			now := at(1950)
			d := newPlain(&buf, fixedClock(&now))
			p := &Printer{w: &errWriter{w: &buf}, out: d}
			for _, w := range tc.warn {
				p.Warn(w)
			}
			for _, e := range tc.events {
				p.Event(e)
			}
			if tc.done {
				p.Done("sha256:abc", []string{"example.com/app:1", "app:latest"}, ms(1950))
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// A vertex known only from its completion (no start event seen) still
// prints a header and its duration.
func TestPlainCompletionOnly(t *testing.T) {
	var buf bytes.Buffer
	now := t0
	d := newPlain(&buf, fixedClock(&now))
	d.event(solver.Event{Vertex: 7, Name: "[x 1/1] COPY . .", Status: solver.StatusDone, Time: at(300), Duration: ms(300)})
	want := "#7 [x 1/1] COPY . .\n#7 DONE 0.3s\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}
