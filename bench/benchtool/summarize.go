package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// rep is one timed command: a row of run.sh's raw.tsv, whose columns are
// scenario mode rep wall_s rc rss_kb cached ran failed maxconc par cache
// load1 out_bytes (cache is ok, bad or -: whether the cache hits were those
// the mode expects).
type rep struct {
	scenario, mode string
	wall           float64 // seconds
	rc             int
	rssKB          float64
	cached, ran    float64
	maxConc        float64
	par            float64
	cacheOK        bool
}

// target is one line of targets.tsv.
type target struct {
	scenario, mode string
	metric         string // time (median s <=), rss (median MiB <=), overlap (median max concurrent RUNs >=)
	limit          float64
}

func summarizeMain(args []string) error {
	fs := flag.NewFlagSet("summarize", flag.ExitOnError)
	tfile := fs.String("targets", "", "targets.tsv")
	_ = fs.Parse(args)
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: benchtool summarize [-targets FILE] RAW.tsv...")
		os.Exit(2)
	}
	var targets []target
	if *tfile != "" {
		var err error
		if targets, err = readTargets(*tfile); err != nil {
			return err
		}
	}
	var reps []rep
	for _, p := range fs.Args() {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		rs, err := readRaw(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		reps = append(reps, rs...)
	}
	missed := summarize(os.Stdout, reps, targets)
	if missed > 0 {
		// The table says which; the exit status lets a caller insist.
		os.Exit(3)
	}
	return nil
}

func readTargets(p string) ([]target, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ts []target
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fl := strings.Fields(line)
		if len(fl) < 4 {
			return nil, fmt.Errorf("%s: bad line %q", p, line)
		}
		lim, err := strconv.ParseFloat(fl[3], 64)
		if err != nil || (fl[2] != "time" && fl[2] != "rss" && fl[2] != "overlap") {
			return nil, fmt.Errorf("%s: bad line %q", p, line)
		}
		ts = append(ts, target{fl[0], fl[1], fl[2], lim})
	}
	return ts, sc.Err()
}

func readRaw(r io.Reader) ([]rep, error) {
	var reps []rep
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 12 || f[0] == "scenario" {
			continue
		}
		num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v }
		rc, _ := strconv.Atoi(f[4])
		reps = append(reps, rep{
			scenario: f[0], mode: f[1], wall: num(3), rc: rc, rssKB: num(5),
			cached: num(6), ran: num(7), maxConc: num(9), par: num(10), cacheOK: f[11] != "bad",
		})
	}
	return reps, sc.Err()
}

// summarize prints the markdown table and returns how many targets were
// missed.
func summarize(w io.Writer, reps []rep, targets []target) int {
	type key struct{ scenario, mode string }
	var keys []key
	groups := map[key][]rep{}
	for _, r := range reps {
		k := key{r.scenario, r.mode}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	fmt.Fprintln(w, "| scenario | mode | n | median s | min s | max s | peak RSS MiB | cached/ran steps | RUN overlap | target | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	var met, missed int
	var misses []string
	for _, k := range keys {
		all := groups[k]
		var wall, rss, cached, ran, conc, par []float64
		cacheOK := true
		for _, r := range all {
			if r.rc != 0 {
				continue
			}
			wall = append(wall, r.wall)
			rss = append(rss, r.rssKB/1024)
			cached = append(cached, r.cached)
			ran = append(ran, r.ran)
			conc = append(conc, r.maxConc)
			par = append(par, r.par)
			cacheOK = cacheOK && r.cacheOK
		}
		n := strconv.Itoa(len(wall))
		if len(wall) != len(all) {
			n = fmt.Sprintf("%d/%d ok", len(wall), len(all))
		}
		steps := "-"
		if len(wall) > 0 {
			steps = fmt.Sprintf("%s/%s", fmtNum(median(cached)), fmtNum(median(ran)))
			if !cacheOK {
				steps += " (unexpected!)"
			}
		}
		ov := "-"
		switch {
		case len(conc) == 0 || median(conc) == 0: // no RUN ran
		case median(conc) == 1:
			ov = "none"
		default:
			ov = fmt.Sprintf("%s at once (x%.2f)", fmtNum(median(conc)), median(par))
		}
		var tdesc, fails []string
		for _, t := range targets {
			if t.scenario != k.scenario || t.mode != k.mode {
				continue
			}
			var ok bool
			switch t.metric {
			case "time":
				tdesc = append(tdesc, fmt.Sprintf("<= %s s", fmtNum(t.limit)))
				ok = len(wall) > 0 && median(wall) <= t.limit
			case "rss":
				tdesc = append(tdesc, fmt.Sprintf("RSS <= %s MiB", fmtNum(t.limit)))
				ok = len(rss) > 0 && median(rss) <= t.limit
			case "overlap":
				tdesc = append(tdesc, fmt.Sprintf("overlap >= %s", fmtNum(t.limit)))
				ok = len(conc) > 0 && median(conc) >= t.limit
			}
			// A target met by a build that was not what we meant to time
			// (failed reps, a cold run that hit the cache) is not met.
			ok = ok && len(wall) == len(all) && cacheOK
			if ok {
				met++
			} else {
				missed++
				fails = append(fails, t.metric)
				misses = append(misses, fmt.Sprintf("%s %s %s", k.scenario, k.mode, t.metric))
			}
		}
		result, tcol := "-", "-"
		if len(tdesc) > 0 {
			tcol = strings.Join(tdesc, ", ")
			result = "PASS"
			if len(fails) > 0 {
				result = "**FAIL** (" + strings.Join(fails, ", ") + ")"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			k.scenario, k.mode, n, fmtSec(wall, median), fmtSec(wall, minOf), fmtSec(wall, maxOf),
			fmtRSS(rss), steps, ov, tcol, result)
	}
	if met+missed > 0 {
		fmt.Fprintf(w, "\ntargets met: %d of %d", met, met+missed)
		if missed > 0 {
			fmt.Fprintf(w, "; missed: %s", strings.Join(misses, "; "))
		}
		fmt.Fprintln(w)
	}
	return missed
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// fmtSec keeps milliseconds: the no-op targets are tens of them.
func fmtSec(xs []float64, f func([]float64) float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return strconv.FormatFloat(f(xs), 'f', 3, 64)
}

func fmtRSS(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return strconv.FormatFloat(median(xs), 'f', 0, 64)
}

func fmtNum(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
