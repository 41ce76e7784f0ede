package progress

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/builder-dev/builder/solver"
)

// screen is a minimal terminal: enough of VT100 to replay what the live view
// writes (CR, LF, cursor up, erase line, erase down; colors ignored) and see
// what a user would be left looking at.
type screen struct {
	lines    [][]rune
	row, col int
	maxUp    int // the furthest the cursor was asked to move up at once
}

var csi = regexp.MustCompile(`^\x1b\[([0-9;]*)([A-Za-z])`)

func (s *screen) Write(b []byte) (int, error) {
	in := string(b)
	for len(in) > 0 {
		if m := csi.FindStringSubmatch(in); m != nil {
			n, _ := strconv.Atoi(m[1])
			switch m[2] {
			case "A":
				s.maxUp = max(s.maxUp, n)
				s.row = max(s.row-n, 0)
			case "K":
				s.line()
				if s.col < len(s.lines[s.row]) {
					s.lines[s.row] = s.lines[s.row][:s.col]
				}
			case "J":
				s.line()
				if s.col < len(s.lines[s.row]) {
					s.lines[s.row] = s.lines[s.row][:s.col]
				}
				s.lines = s.lines[:s.row+1]
			}
			in = in[len(m[0]):]
			continue
		}
		r, n := utf8.DecodeRuneInString(in)
		in = in[n:]
		switch r {
		case '\r':
			s.col = 0
		case '\n':
			s.row++
			s.col = 0
			s.line()
		default:
			s.line()
			l := s.lines[s.row]
			for len(l) <= s.col {
				l = append(l, ' ')
			}
			l[s.col] = r
			s.lines[s.row] = l
			s.col++
		}
	}
	return len(b), nil
}

func (s *screen) line() {
	for len(s.lines) <= s.row {
		s.lines = append(s.lines, nil)
	}
}

func (s *screen) String() string {
	var out []string
	for _, l := range s.lines {
		out = append(out, string(l))
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n")
}

var sgr = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func stripColor(s string) string { return sgr.ReplaceAllString(s, "") }

func newTestTTY(now *time.Time, cols, rows int) (*ttyDisplay, *screen) {
	scr := &screen{}
	return newTTY(scr, fixedClock(now), func() (int, int) { return cols, rows }, true), scr
}

func TestTTYFrames(t *testing.T) {
	now := t0
	d, scr := newTestTTY(&now, 60, 24)
	d.event(start(1, "[base 1/2] COPY etc /etc", 0))
	d.event(end(1, solver.StatusCached, 5, 5))
	d.event(start(2, "[build 1/2] RUN make all", 10))
	d.event(start(3, "[lint 1/1] RUN a very long command line that cannot possibly fit in sixty columns", 20))
	for i := 1; i <= 9; i++ {
		d.event(logEv(2, fmt.Sprintf("compile %d\n", i), 100+i))
	}
	d.event(logEv(2, "\x1b[1mlinking\x1b[0m 10%\rlinking 20%", 300))
	now = at(1234)
	d.draw(false)

	got := scr.String()
	want := strings.Join([]string{
		"[+] Building 1.2s (1/3)",
		" => CACHED [base 1/2] COPY etc /etc                    0.0s",
		" => [build 1/2] RUN make all                           1.2s",
		" => => # compile 5",
		" => => # compile 6",
		" => => # compile 7",
		" => => # compile 8",
		" => => # compile 9",
		" => => # linking 20%",
		" => [lint 1/1] RUN a very long command line that ca... 1.2s",
	}, "\n")
	if got != want {
		t.Fatalf("frame:\n%s\nwant:\n%s", got, want)
	}

	// The next frame overwrites this one in place.
	d.event(logEv(2, "\n", 400))
	d.event(end(2, solver.StatusDone, 1500, 1490))
	{
		e := end(3, solver.StatusError, 1600, 1580)
		e.Error = "exit status 2"
		d.event(logEv(3, "bad input\n\tat line 3\n", 1590))
		d.event(e)
	}
	now = at(2000)
	d.draw(false)
	d.warn("FROM without a tag")
	d.done("sha256:0123", []string{"app:1"}, ms(2100))
	d.close()

	got = scr.String()
	want = strings.Join([]string{
		"[+] Building 2.1s (4/4) FINISHED",
		" => CACHED [base 1/2] COPY etc /etc                    0.0s",
		" => [build 1/2] RUN make all                           1.5s",
		" => ERROR [lint 1/1] RUN a very long command line t... 1.6s",
		" => exporting to image                                 0.4s",
		" => => writing image sha256:0123 done",
		" => => naming to app:1 done",
		"------",
		" > [lint 1/1] RUN a very long command line that cannot possibly fit in sixty columns:",
		"1.570 bad input",
		"1.570         at line 3",
		"------",
		"WARNING: FROM without a tag",
	}, "\n")
	if got != want {
		t.Fatalf("final:\n%s\nwant:\n%s", got, want)
	}

	// After Close, Done and Warn print below instead of into a frame.
	d.done("sha256:4567", nil, 0)
	d.warn("late")
	if !strings.HasSuffix(scr.String(), " => => writing image sha256:4567 done\nWARNING: late") {
		t.Errorf("after close:\n%s", scr.String())
	}
}

// The live frame fits the terminal: finished steps make room first, then
// output lines, and no line is wider than the terminal.
func TestTTYFitsTerminal(t *testing.T) {
	now := t0
	for _, size := range [][2]int{{80, 24}, {40, 8}, {12, 4}, {1, 1}, {0, 0}} {
		cols, rows := size[0], size[1]
		t.Run(fmt.Sprintf("%dx%d", cols, rows), func(t *testing.T) {
			d, _ := newTestTTY(&now, cols, rows)
			for v := 1; v <= 30; v++ {
				d.event(start(v, fmt.Sprintf("[s%d 1/1] RUN step %d 漢字漢字漢字漢字漢字漢字", v, v), v))
				if v%3 == 0 {
					d.event(end(v, solver.StatusDone, v+1, 1))
				}
				d.event(logEv(v, strings.Repeat("x", 200)+"\n", v))
			}
			ecols, erows := d.dims()
			frame := d.frame(at(100), ecols, erows, false)
			if len(frame) > erows-1 && len(frame) > 2 {
				t.Errorf("%d lines on a %d-row terminal", len(frame), erows)
			}
			for _, l := range frame {
				if w := textWidth(stripColor(l)); w > max(ecols-1, 0) {
					t.Errorf("line %q is %d wide on a %d-column terminal", stripColor(l), w, ecols)
				}
			}
			if rows >= 24 {
				for _, l := range frame[1:] {
					if strings.Contains(l, "=> [s3 ") {
						t.Errorf("finished step kept while running ones need the room: %q", l)
					}
				}
				shown := strings.Join(frame, "\n")
				for v := 1; v <= 30; v++ {
					if v%3 != 0 && !strings.Contains(shown, fmt.Sprintf("=> [s%d ", v)) {
						t.Errorf("running step %d not shown", v)
					}
				}
			}
			final := d.frame(at(100), ecols, erows, true)
			if len(final) != 31 {
				t.Errorf("final frame has %d lines, want header and 30 steps", len(final))
			}
		})
	}
}

// A frame never moves the cursor up further than the last frame's height,
// whatever the order of events: the emulated screen ends holding exactly the
// final frame.
func TestTTYRedrawReplaces(t *testing.T) {
	now := t0
	d, scr := newTestTTY(&now, 50, 10)
	for i := 1; i <= 20; i++ {
		d.event(start(i, fmt.Sprintf("[s 1/%d] RUN %d", i, i), i*10))
		d.event(logEv(i, strings.Repeat("out\n", i%4), i*10+1))
		d.draw(false)
		if i%2 == 0 {
			d.event(end(i-1, solver.StatusDone, i*10+2, 5))
			d.draw(false)
		}
		if scr.maxUp > 9 {
			t.Fatalf("moved up %d lines on a 10-row terminal", scr.maxUp)
		}
	}
	d.close()
	lines := strings.Split(scr.String(), "\n")
	if len(lines) != 21 || !strings.HasPrefix(lines[0], "[+] Building") || !strings.Contains(lines[0], "(10/20) FINISHED") {
		t.Errorf("screen after close:\n%s", scr.String())
	}
}

func TestSanitize(t *testing.T) {
	tests := map[string]string{
		"plain":                       "plain",
		"a\tb":                        "a       b",
		"10%\r20%\r":                  "20%",
		"\x1b[31mred\x1b[0m":          "red",
		"\x1b]0;title\x07text":        "text",
		"bell\x07 nul\x00 del\x7f":    "bell nul del",
		"bad \xff utf8":               "bad ? utf8",
		"\x1b[":                       "",
		"tab\tstop\tat8":              "tab     stop    at8",
		"wide 漢字\tx":                  "wide 漢字       x",
		"osc \x1b]8;;http://x\x1b\\l": "osc l",
	}
	for in, want := range tests {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  string
	}{
		{"hello", 5, "hello"},
		{"hello world", 8, "hello..."},
		{"hello", 3, "hel"},
		{"hello", 0, ""},
		{"hello", -3, ""},
		{"漢字漢字", 7, "漢字..."},
		{"漢字漢字", 6, "漢..."},
	}
	for _, tc := range tests {
		if got := truncate(tc.in, tc.width); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}

// When running steps' output does not fit, each keeps its newest lines.
func TestTTYShrinksOutput(t *testing.T) {
	now := t0
	d, _ := newTestTTY(&now, 80, 12) // room for 10 lines under the header
	for v := 1; v <= 3; v++ {
		d.event(start(v, fmt.Sprintf("[s%d 1/1] RUN x", v), 0))
		for i := 1; i <= 10; i++ {
			d.event(logEv(v, fmt.Sprintf("s%d line %d\n", v, i), i))
		}
	}
	got := strings.Join(d.frame(at(1000), 80, 12, false), "\n")
	got = stripColor(got)
	want := strings.Join([]string{
		"[+] Building 1.0s (0/3)",
		fmt.Sprintf("%-75s%s", " => [s1 1/1] RUN x", "1.0s"), // 79 columns
		" => => # s1 line 9",
		" => => # s1 line 10",
		fmt.Sprintf("%-75s%s", " => [s2 1/1] RUN x", "1.0s"), // 79 columns
		" => => # s2 line 9",
		" => => # s2 line 10",
		fmt.Sprintf("%-75s%s", " => [s3 1/1] RUN x", "1.0s"), // 79 columns
		" => => # s3 line 9",
		" => => # s3 line 10",
	}, "\n")
	if got != want {
		t.Errorf("frame:\n%s\nwant:\n%s", got, want)
	}
}
