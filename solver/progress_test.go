package solver

import (
	"bytes"
	"strings"
	"testing"
)

// A step's log stops at maxStepLog (each line also costing lineCost) with
// one note saying so, however the output is cut into writes, while every
// write is taken whole: the command must not block or fail for printing.
func TestLogWriterClips(t *testing.T) {
	x := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct {
		name   string
		writes []string
		// kept is what the log shows before the note ("" note: none).
		kept string
		note bool
	}{
		{name: "under", writes: []string{x(1000), "a\nb\n", x(5000)}, kept: x(1000) + "a\nb\n" + x(5000)},
		{name: "exactly then more", writes: []string{x(maxStepLog), "y"}, kept: x(maxStepLog), note: true},
		{name: "one huge write", writes: []string{x(3 * maxStepLog)}, kept: x(maxStepLog), note: true},
		{name: "a line across the limit", writes: []string{x(maxStepLog-20) + "\n", x(100) + "\n"}, kept: x(maxStepLog-20) + "\n" + x(20-1-lineCost), note: true},
		{
			name:   "short lines",
			writes: strings.SplitAfter(strings.Repeat("y\n", maxStepLog), "\n"),
			// Whole lines, then the "y" of the one that no longer fit
			// whole (2 MiB is no multiple of a line's cost).
			kept: strings.Repeat("y\n", maxStepLog/(2+lineCost)) + "y",
			note: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			w := &logWriter{p: &progress{report: func(e Event) {
				if e.Status != StatusLog || e.Vertex != 7 {
					t.Errorf("event %+v", e)
				}
				got.Write(e.Data)
			}}, vertex: 7}
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write of %d bytes: %d, %v", len(s), n, err)
				}
			}
			want := tc.kept
			if tc.note {
				want += "\n[output clipped, log limit 2MiB reached]\n"
			}
			if got.String() != want {
				g := got.String()
				t.Errorf("kept %d bytes ending %q, want %d ending %q", len(g), g[max(len(g)-60, 0):], len(want), want[max(len(want)-60, 0):])
			}
		})
	}
}
