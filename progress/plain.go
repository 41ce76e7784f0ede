package progress

import (
	"fmt"
	"io"
	"time"

	"github.com/builder-dev/builder/solver"
)

// plainDisplay writes BuildKit's plain format: a block per step headed
// "#N name", its output as "#N 1.234 line" (seconds since the step began),
// and "#N CACHED", "#N DONE 0.3s" or "#N ERROR: msg". When another step's
// output comes between, the open block is left with "#N ..." and reopened
// later under its header again, so every line can be attributed.
type plainDisplay struct {
	w       io.Writer
	t       *tracker
	cur     *vertex // the step whose block is open
	printed bool    // a block was printed: separate the next with a blank line
}

func newPlain(w io.Writer, now func() time.Time) *plainDisplay {
	return &plainDisplay{w: w, t: newTracker(now)}
}

func (d *plainDisplay) open(v *vertex) {
	if d.cur == v {
		return
	}
	if d.cur != nil && !d.cur.completed() {
		fmt.Fprintf(d.w, "#%d ...\n", d.cur.id)
	}
	if d.printed {
		fmt.Fprintln(d.w)
	}
	fmt.Fprintf(d.w, "#%d %s\n", v.id, v.name)
	d.cur, d.printed = v, true
}

func (d *plainDisplay) event(e solver.Event) {
	v, lines := d.t.update(e)
	switch e.Status {
	case solver.StatusStart:
		d.open(v)
	case solver.StatusLog:
		if len(lines) > 0 {
			d.open(v)
			d.lines(v, lines)
		}
	case solver.StatusCached, solver.StatusDone, solver.StatusError:
		d.open(v)
		d.lines(v, lines)
		switch {
		case v.canceled():
			fmt.Fprintf(d.w, "#%d CANCELED\n", v.id)
		case v.status == solver.StatusError:
			fmt.Fprintf(d.w, "#%d ERROR: %s\n", v.id, v.err)
		case v.status == solver.StatusCached:
			fmt.Fprintf(d.w, "#%d CACHED\n", v.id)
		default:
			fmt.Fprintf(d.w, "#%d DONE %.1fs\n", v.id, v.took.Seconds())
		}
		d.cur = nil
	}
}

func (d *plainDisplay) lines(v *vertex, lines []logLine) {
	for _, l := range lines {
		fmt.Fprintf(d.w, "#%d %.3f %s\n", v.id, l.at.Seconds(), l.text)
	}
}

func (d *plainDisplay) warn(msg string) {
	if d.cur != nil && !d.cur.completed() {
		fmt.Fprintf(d.w, "#%d ...\n", d.cur.id)
		d.cur = nil
	}
	if d.printed {
		fmt.Fprintln(d.w)
		d.printed = false
	}
	fmt.Fprintf(d.w, "WARNING: %s\n", msg)
}

func (d *plainDisplay) done(id string, tags []string, _ time.Duration) {
	now := d.t.now()
	v := exportVertex(d.t, id, tags, now)
	d.open(v)
	for _, s := range v.subs {
		fmt.Fprintf(d.w, "#%d %s\n", v.id, s)
	}
	fmt.Fprintf(d.w, "#%d DONE %.1fs\n", v.id, v.took.Seconds())
	d.cur = nil
}

// close prints the partial last lines of steps that never completed (a
// build cut short), so no output is lost.
func (d *plainDisplay) close() {
	for _, v := range d.t.order {
		if lines := v.flush(); len(lines) > 0 {
			d.open(v)
			d.lines(v, lines)
		}
	}
}

// exportVertex adds the synthetic "exporting to image" step that closes a
// build, timed from the last step's end (the solver is done then, and the
// image is being written).
func exportVertex(t *tracker, id string, tags []string, now time.Time) *vertex {
	start := t.lastEnd
	if start.IsZero() || start.After(now) {
		start = now
	}
	v := t.get(t.maxID+1, "exporting to image", start)
	v.seenStart = true
	v.status, v.ended, v.took = solver.StatusDone, now, now.Sub(start)
	v.subs = append(v.subs, fmt.Sprintf("writing image %s done", id))
	for _, tag := range tags {
		v.subs = append(v.subs, fmt.Sprintf("naming to %s done", tag))
	}
	return v
}
