package solver

import (
	"bytes"
	"strings"
	"testing"
)

// A step's log stops at maxStepLog with one note saying so, however the
// output is cut into writes, while every write is taken whole (the command
// must not block or fail for printing).
func TestLogWriterClips(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []int
		clip   bool
	}{
		{name: "under", chunks: []int{1000, maxStepLog - 1000}},
		{name: "exactly then more", chunks: []int{maxStepLog, 1, 5000}, clip: true},
		{name: "one huge write", chunks: []int{3 * maxStepLog}, clip: true},
		{name: "many small", chunks: repeat(32<<10, 100), clip: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			events := 0
			w := &logWriter{p: &progress{report: func(e Event) {
				if e.Status != StatusLog || e.Vertex != 7 {
					t.Errorf("event %+v", e)
				}
				events++
				got.Write(e.Data)
			}}, vertex: 7}
			for _, n := range tc.chunks {
				if k, err := w.Write(bytes.Repeat([]byte("y\n"), n/2+1)[:n]); k != n || err != nil {
					t.Fatalf("Write of %d: %d, %v", n, k, err)
				}
			}
			out := got.String()
			if !tc.clip {
				if strings.Contains(out, "clipped") || got.Len() != sum(tc.chunks) {
					t.Errorf("kept %d bytes of %d", got.Len(), sum(tc.chunks))
				}
				return
			}
			if got.Len() != maxStepLog+len(clippedNote) || !strings.HasSuffix(out, "\n[output clipped, log limit 2MiB reached]\n") {
				t.Errorf("kept %d bytes, ending %q", got.Len(), out[max(len(out)-60, 0):])
			}
			if strings.Count(out, "clipped") != 1 {
				t.Errorf("%d notes", strings.Count(out, "clipped"))
			}
		})
	}
}

func repeat(n, times int) []int {
	s := make([]int, times)
	for i := range s {
		s[i] = n
	}
	return s
}

func sum(s []int) int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}
