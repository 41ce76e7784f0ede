package progress

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/builder-dev/builder/solver"
)

const (
	// logTail is how many recent output lines of a running step the live
	// view shows under it.
	logTail = 6
	// maxErrorLog bounds the output kept per running step for the error
	// report: a step that prints gigabytes must not take the memory too.
	maxErrorLog = 10000
)

// ANSI sequences of the live view.
const (
	cursorUp  = "\x1b[%dA" // move up n lines, same column
	eraseLine = "\x1b[K"   // erase to the end of the line
	eraseDown = "\x1b[J"   // erase from the cursor to the end of the screen
	blue      = "\x1b[34m"
	red       = "\x1b[31m"
	yellow    = "\x1b[33m"
	faint     = "\x1b[2m"
	reset     = "\x1b[0m"
)

// ttyDisplay is the live view: a frame redrawn in place by moving the
// cursor up over the previous one, in BuildKit's look. Every line is cut to
// the terminal's width, or a wrapped line would throw the count of lines to
// move up over off.
type ttyDisplay struct {
	w     io.Writer
	t     *tracker
	size  func() (cols, rows int)
	color bool
	begin time.Time
	// elapsed is the build's duration as the caller measured it (Done);
	// the final header shows it.
	elapsed time.Duration

	logs     map[int]*logBuf
	warnings []string
	// lines is the height of the last frame drawn, which the next one
	// overwrites; 0 once the final frame is out.
	lines  int
	closed bool
}

// logBuf is a step's output: all of it (bounded) while it runs, kept after
// an error for the report under the final frame.
type logBuf struct {
	lines   []logLine
	dropped int
}

func (l *logBuf) add(lines []logLine) {
	l.lines = append(l.lines, lines...)
	if over := len(l.lines) - maxErrorLog; over > 0 {
		l.dropped += over
		l.lines = append(l.lines[:0:0], l.lines[over:]...)
	}
}

func newTTY(w io.Writer, now func() time.Time, size func() (int, int), color bool) *ttyDisplay {
	return &ttyDisplay{w: w, t: newTracker(now), size: size, color: color, begin: now(), logs: map[int]*logBuf{}}
}

func (d *ttyDisplay) event(e solver.Event) {
	v, lines := d.t.update(e)
	d.addLogs(v.id, lines)
	if v.completed() && v.status != solver.StatusError {
		delete(d.logs, v.id)
	}
}

func (d *ttyDisplay) addLogs(id int, lines []logLine) {
	if len(lines) == 0 {
		return
	}
	l := d.logs[id]
	if l == nil {
		l = &logBuf{}
		d.logs[id] = l
	}
	l.add(lines)
}

func (d *ttyDisplay) warn(msg string) {
	if d.closed {
		fmt.Fprintf(d.w, "WARNING: %s\n", msg)
		return
	}
	d.warnings = append(d.warnings, msg)
}

func (d *ttyDisplay) done(id string, tags []string, elapsed time.Duration) {
	v := exportVertex(d.t, id, tags, d.t.now())
	if !d.closed {
		d.elapsed = elapsed
		return
	}
	cols, _ := d.dims()
	b := d.block(v, d.t.now(), cols, true)
	io.WriteString(d.w, strings.Join(b.all(logTail), "\n")+"\n")
}

func (d *ttyDisplay) close() {
	for _, v := range d.t.order {
		d.addLogs(v.id, v.flush())
	}
	d.draw(true)
	d.lines = 0
	d.closed = true
	var b strings.Builder
	for _, v := range d.t.order {
		if v.status != solver.StatusError || v.canceled() {
			continue
		}
		b.WriteString("------\n")
		fmt.Fprintf(&b, " > %s:\n", sanitize(v.name))
		if l := d.logs[v.id]; l != nil {
			if l.dropped > 0 {
				fmt.Fprintf(&b, "[%d earlier lines not kept]\n", l.dropped)
			}
			for _, line := range l.lines {
				fmt.Fprintf(&b, "%.3f %s\n", line.at.Seconds(), sanitize(line.text))
			}
		}
		b.WriteString("------\n")
	}
	for _, w := range d.warnings {
		fmt.Fprintf(&b, "WARNING: %s\n", w)
	}
	io.WriteString(d.w, b.String())
}

func (d *ttyDisplay) dims() (cols, rows int) {
	cols, rows = d.size()
	if cols <= 0 {
		cols = 80
	}
	if rows <= 0 {
		rows = 24
	}
	return cols, rows
}

// draw replaces the last frame with the current one. All of it goes out in
// one write, so the terminal never shows half a frame.
func (d *ttyDisplay) draw(final bool) {
	cols, rows := d.dims()
	frame := d.frame(d.t.now(), cols, rows, final)
	var b strings.Builder
	if d.lines > 0 {
		fmt.Fprintf(&b, cursorUp, d.lines)
	}
	for _, l := range frame {
		b.WriteString("\r")
		b.WriteString(l)
		b.WriteString(eraseLine + "\n")
	}
	b.WriteString(eraseDown)
	io.WriteString(d.w, b.String())
	d.lines = len(frame)
}

// block is the lines of one step in a frame.
type block struct {
	v    *vertex
	head string
	subs []string
	logs []string // oldest first
}

func (b block) all(logs int) []string {
	out := append([]string{b.head}, b.subs...)
	return append(out, b.logs[max(len(b.logs)-logs, 0):]...)
}

// frame returns the lines of a frame. A live frame fits in rows-1 lines
// (one is left for the cursor): when it would not, finished steps go first,
// then output lines, then the oldest running steps. The final frame lists
// every step and no output, and may scroll.
func (d *ttyDisplay) frame(now time.Time, cols, rows int, final bool) []string {
	elapsed := now.Sub(d.begin)
	if final && d.elapsed > 0 {
		elapsed = d.elapsed
	}
	completed := 0
	for _, v := range d.t.order {
		if v.completed() {
			completed++
		}
	}
	head := fmt.Sprintf("[+] Building %.1fs (%d/%d)", max(elapsed, 0).Seconds(), completed, len(d.t.order))
	color := ""
	if final {
		head += " FINISHED"
		color = blue
	}
	head = d.paint(color, truncate(head, cols-1))

	blocks := make([]block, 0, len(d.t.order))
	for _, v := range d.t.order {
		blocks = append(blocks, d.block(v, now, cols, final))
	}
	tail := logTail
	if !final {
		budget := max(rows-2, 1) // less the header and the cursor's line
		count := func() int {
			n := 0
			for _, b := range blocks {
				n += len(b.all(tail))
			}
			return n
		}
		for i := 0; i < len(blocks) && count() > budget; {
			if blocks[i].v.completed() {
				blocks = append(blocks[:i], blocks[i+1:]...)
				continue
			}
			i++
		}
		for tail > 0 && count() > budget {
			tail--
		}
		var lines []string
		for _, b := range blocks {
			lines = append(lines, b.all(tail)...)
		}
		if len(lines) > budget {
			lines = lines[len(lines)-budget:]
		}
		return append([]string{head}, lines...)
	}
	lines := []string{head}
	for _, b := range blocks {
		lines = append(lines, b.all(tail)...)
	}
	return lines
}

// block renders v: its line with state and time, the detail lines of a
// synthetic step, and while it runs the tail of its output, dimmed.
func (d *ttyDisplay) block(v *vertex, now time.Time, cols int, final bool) block {
	label, color := sanitize(v.name), ""
	switch {
	case v.canceled():
		label, color = "CANCELED "+label, yellow
	case v.status == solver.StatusError:
		label, color = "ERROR "+label, red
	case v.status == solver.StatusCached:
		label, color = "CACHED "+label, blue
	case v.completed():
		color = blue
	}
	timer := fmt.Sprintf("%.1fs", v.duration(now).Seconds())
	b := block{v: v, head: d.paint(color, fit(" => "+label, timer, cols))}
	for _, s := range v.subs {
		b.subs = append(b.subs, d.paint(color, truncate(" => => "+sanitize(s), cols-1)))
	}
	if final || v.completed() {
		return b
	}
	var recent []logLine
	if l := d.logs[v.id]; l != nil {
		recent = l.lines[max(len(l.lines)-logTail, 0):]
	}
	for _, l := range recent {
		b.logs = append(b.logs, d.paint(faint, truncate(" => => # "+sanitize(l.text), cols-1)))
	}
	// The line being written (a progress bar, a prompt) is the freshest.
	if len(v.partial) > 0 {
		b.logs = append(b.logs, d.paint(faint, truncate(" => => # "+sanitize(string(v.partial)), cols-1)))
	}
	return b
}

// fit lays out left and right on one line of the terminal, cutting left so
// that right stays aligned to the edge. The last column is never written:
// some terminals wrap as soon as it is.
func fit(left, right string, cols int) string {
	width := cols - 1
	room := width - textWidth(right) - 1
	if room < 8 {
		return truncate(left, width)
	}
	left = truncate(left, room)
	return left + strings.Repeat(" ", width-textWidth(left)-textWidth(right)) + right
}

func (d *ttyDisplay) paint(color, s string) string {
	if !d.color || color == "" {
		return s
	}
	return color + s + reset
}
