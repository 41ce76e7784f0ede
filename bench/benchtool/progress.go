package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of `builder build --progress json`.
type event struct {
	Vertex   int           `json:"vertex"`
	Name     string        `json:"name"`
	Status   string        `json:"status"` // start, cached, done, error, log
	Time     time.Time     `json:"time"`
	Duration time.Duration `json:"duration"`
}

// step is what one vertex did.
type step struct {
	name       string
	status     string // the last non-log status
	start, end time.Time
}

// stepStats sums up a build's progress.
type stepStats struct {
	Cached, Ran, Failed int
	// MaxConc is the largest number of RUN steps that ran at the same
	// time; Par is their summed run time over the time at least one ran
	// (1 = serial, 2 = two at a time throughout).
	MaxConc int
	Par     float64
	steps   []step
}

func progressMain(args []string) error {
	fs := flag.NewFlagSet("progress", flag.ExitOnError)
	showSteps := fs.Bool("steps", false, "list the steps, slowest first, instead of the one-line summary")
	top := fs.Int("top", 0, "with -steps: only the N slowest (0: all)")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: benchtool progress [-steps] LOG")
		os.Exit(2)
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := readProgress(f)
	if err != nil {
		return fmt.Errorf("read progress %s: %w", fs.Arg(0), err)
	}
	if *showSteps {
		ss := append([]step(nil), st.steps...)
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].end.Sub(ss[i].start) > ss[j].end.Sub(ss[j].start) })
		if *top > 0 && len(ss) > *top {
			ss = ss[:*top]
		}
		for _, s := range ss {
			name := strings.Join(strings.Fields(s.name), " ")
			if len(name) > 100 {
				name = name[:97] + "..."
			}
			fmt.Printf("%8.3f s  %-6s  %s\n", s.end.Sub(s.start).Seconds(), s.status, name)
		}
		return nil
	}
	// cached ran failed maxconc par: the columns run.sh puts in raw.tsv.
	fmt.Printf("%d\t%d\t%d\t%d\t%.2f\n", st.Cached, st.Ran, st.Failed, st.MaxConc, st.Par)
	return nil
}

// readProgress reads a log that holds --progress json lines among other
// output (run.sh logs stdout and stderr together); other lines are skipped.
func readProgress(r io.Reader) (stepStats, error) {
	byVertex := map[int]*step{}
	var order []int
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20) // log events carry output
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var ev event
		if json.Unmarshal(line, &ev) != nil || ev.Vertex == 0 {
			continue
		}
		s := byVertex[ev.Vertex]
		if s == nil {
			s = &step{name: ev.Name, start: ev.Time, end: ev.Time}
			byVertex[ev.Vertex] = s
			order = append(order, ev.Vertex)
		}
		switch ev.Status {
		case "log":
			continue
		case "start":
			s.start = ev.Time
		default:
			s.end = ev.Time
		}
		s.status = ev.Status
	}
	if err := sc.Err(); err != nil {
		return stepStats{}, err
	}
	var st stepStats
	for _, v := range order {
		s := byVertex[v]
		st.steps = append(st.steps, *s)
		switch s.status {
		case "cached":
			st.Cached++
		case "done":
			st.Ran++
		case "error":
			st.Failed++
		}
	}
	st.MaxConc, st.Par = overlap(st.steps)
	return st, nil
}

// overlap measures how the RUN steps that ran overlapped in time.
func overlap(steps []step) (maxConc int, par float64) {
	type edge struct {
		t time.Time
		d int
	}
	var edges []edge
	var busy time.Duration
	for _, s := range steps {
		if s.status != "done" || !strings.Contains(s.name, "] RUN ") {
			continue
		}
		edges = append(edges, edge{s.start, +1}, edge{s.end, -1})
		busy += s.end.Sub(s.start)
	}
	if len(edges) == 0 {
		return 0, 0
	}
	// Ends before starts at the same instant: touching is not overlapping.
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].t.Equal(edges[j].t) {
			return edges[i].d < edges[j].d
		}
		return edges[i].t.Before(edges[j].t)
	})
	var cur int
	var covered time.Duration
	for i, e := range edges {
		if cur > 0 && i > 0 {
			covered += e.t.Sub(edges[i-1].t)
		}
		cur += e.d
		maxConc = max(maxConc, cur)
	}
	if covered > 0 {
		par = busy.Seconds() / covered.Seconds()
	}
	return maxConc, par
}
