package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runPeak runs the builder from dir and returns stdout, stderr, the exit
// code and its peak RSS in KiB, read from its own mm's high-water mark
// while it runs: wait4's ru_maxrss would carry the test binary's, which
// the child inherits through the fork and exec that start it.
func (h *harness) runPeak(dir string, args ...string) (string, string, int, int64) {
	h.t.Helper()
	cmd := exec.Command(builderBin, append([]string{"--root", h.root}, args...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("run builder %v in %s: %v", args, dir, err)
	}
	done := make(chan struct{})
	var peak int64
	go func() {
		defer close(done)
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			data, err := os.ReadFile(status)
			if err != nil {
				return // gone
			}
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					if kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
						peak = max(peak, kib)
					}
				}
			}
			if strings.Contains(string(data), "State:\tZ") {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	err := cmd.Wait()
	<-done
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatalf("run builder %v in %s: %v", args, dir, err)
	}
	return stdout.String(), stderr.String(), code, peak
}

func (h *harness) mustRunIn(dir string, args ...string) string {
	h.t.Helper()
	out, errOut, code := h.runIn(dir, nil, args...)
	if code != 0 {
		h.t.Fatalf("builder %s (in %s): exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), dir, code, out, errOut)
	}
	return out
}

// contextTree makes top/app (a Dockerfile copying f.txt, and an empty
// sub/), and top/link, a symlink to app.
func contextTree(t *testing.T) (top, app string) {
	t.Helper()
	top = t.TempDir()
	app = filepath.Join(top, "app")
	for p, body := range map[string]string{
		"Dockerfile": "FROM base/busybox:1\nCOPY f.txt /f.txt\n",
		"f.txt":      "hi\n",
		"sub/.keep":  "",
	} {
		full := filepath.Join(app, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("app", filepath.Join(top, "link")); err != nil {
		t.Fatal(err)
	}
	return top, app
}

// Every way users name a context builds it, every time: the stat-cache's
// background load once ran under a context that ended before the cache was
// flushed ("context canceled" in 3 to 6 builds of 10 from ".").
func TestBuildContextForms(t *testing.T) {
	h := newHarness(t)
	top, app := contextTree(t)
	elsewhere := t.TempDir()
	forms := []struct{ dir, arg string }{
		{app, "."},
		{app, "./"},
		{filepath.Join(app, "sub"), ".."},
		{top, "app/"},
		{top, "app"},
		{elsewhere, app},
		{top, "link"},
		{top, "link/"},
		{elsewhere, filepath.Join(top, "link")},
	}
	var first string
	for _, f := range forms {
		for range 2 {
			id := strings.TrimSpace(h.mustRunIn(f.dir, "build", "-q", "-t", "forms", f.arg))
			if first == "" {
				first = id
			}
			if id != first {
				t.Errorf("build %q in %s made %s, the first form made %s", f.arg, f.dir, id, first)
			}
		}
	}
	if got := h.runImage("forms", "cat", "/f.txt"); got != "hi\n" {
		t.Errorf("/f.txt is %q", got)
	}
	for i := range 10 {
		if out, errOut, code := h.runIn(app, nil, "build", "-q", "-t", "race", "."); code != 0 {
			t.Errorf("build %d from .: exit %d\n%s%s", i, code, out, errOut)
		}
	}
	if _, errOut, code := h.runIn(top, nil, "build", "-t", "x", "app/Dockerfile"); code != 2 || !strings.Contains(errOut, `context "app/Dockerfile" is not a directory`) {
		t.Errorf("a file as context: exit %d, %s", code, errOut)
	}
	if _, errOut, code := h.runIn(top, nil, "build", "-t", "x", "nothing"); code != 2 || !strings.Contains(errOut, `context "nothing" is not a directory`) {
		t.Errorf("a missing context: exit %d, %s", code, errOut)
	}
}

// A no-op rebuild from "." takes the context's files from the stat-cache
// and reads none of them; so do builds through an absolute path and a
// symlink to the directory, which are the same context. The observable is
// the kernel's: inotify reports every open of the file.
func TestStatCacheHitsFromDot(t *testing.T) {
	h := newHarness(t)
	top, app := contextTree(t)
	file := filepath.Join(app, "f.txt")
	// A file changed less than the stat-cache's racy window (2 s) before it
	// is read is not remembered; let it age past that.
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Unix(st.Ctim.Unix()).Add(2100 * time.Millisecond)))
	h.mustRunIn(app, "build", "-q", "-t", "hits", ".")

	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, file, unix.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	opens := func() int {
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return n / unix.SizeofInotifyEvent // no names for a watched file
	}
	for _, f := range []struct{ dir, arg string }{{app, "."}, {app, "./"}, {top, "link"}, {t.TempDir(), app}} {
		h.mustRunIn(f.dir, "build", "-q", "-t", "hits", f.arg)
		if n := opens(); n != 0 {
			t.Errorf("rebuild from %q in %s opened f.txt %d times: the stat-cache missed", f.arg, f.dir, n)
		}
	}
	// The watch does see opens: a changed file is read again.
	if err := os.WriteFile(file, []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opens() // the test's own write
	h.mustRunIn(app, "build", "-q", "-t", "hits", ".")
	if opens() == 0 {
		t.Error("a changed f.txt was not read")
	}
}

// stepLines returns, for the plain progress in out, the vertex whose
// header matches name and its output lines' text, in order.
func stepLines(t *testing.T, out, name string) (int, []string) {
	t.Helper()
	head := regexp.MustCompile(`(?m)^#(\d+) ` + regexp.QuoteMeta(name) + `$`).FindStringSubmatch(out)
	if head == nil {
		t.Fatalf("no step %q in:\n%s", name, out)
	}
	v, _ := strconv.Atoi(head[1])
	var lines []string
	for _, m := range regexp.MustCompile(`(?m)^#`+head[1]+` \d+\.\d{3} (.*)$`).FindAllStringSubmatch(out, -1) {
		lines = append(lines, m[1])
	}
	return v, lines
}

// A step's time is its work: a one-file COPY --from a stage that sleeps
// 2 s takes well under a second, however long it waited for that stage.
func TestStepTimeExcludesWaiting(t *testing.T) {
	h := newHarness(t)
	dir := h.context(`FROM base/busybox:1 AS slow
RUN sleep 2 && echo x > /x
FROM base/busybox:1
COPY --from=slow /x /x
`, map[string]string{})
	out := h.buildPlain(dir, "wait")
	v, _ := stepLines(t, out, "[stage-1 1/1] COPY --from=slow /x /x")
	done := regexp.MustCompile(fmt.Sprintf(`(?m)^#%d DONE (\d+\.\d)s$`, v)).FindStringSubmatch(out)
	if done == nil {
		t.Fatalf("no DONE for #%d in:\n%s", v, out)
	}
	if secs, _ := strconv.ParseFloat(done[1], 64); secs >= 1.5 {
		t.Errorf("the COPY took %ss, counting its wait for the 2 s stage:\n%s", done[1], out)
	}
}

// interval is a RUN's [start, end] by the kernel's uptime clock, which all
// containers share.
type interval struct {
	name       string
	start, end float64
}

// parallelStages builds n independent stages that each record the interval
// of their `sleep 2`, and a last stage that gathers the records, and
// returns the intervals, sorted by start.
func parallelStages(t *testing.T, h *harness, n int, extra ...string) []interval {
	t.Helper()
	var df strings.Builder
	for i := range n {
		// Each stage's RUN differs (its name), or the solver would run
		// the very same step once for all.
		fmt.Fprintf(&df, "FROM base/busybox:1 AS s%d\nRUN mkdir /t && cut -d' ' -f1 /proc/uptime > /t/start && sleep 2 && cut -d' ' -f1 /proc/uptime > /t/end && echo s%d > /t/name\n", i, i)
	}
	df.WriteString("FROM base/busybox:1\n")
	for i := range n {
		fmt.Fprintf(&df, "COPY --from=s%d /t /s%d\n", i, i)
	}
	dir := h.context(df.String(), map[string]string{})
	dest := t.TempDir()
	h.mustRun(append(append([]string{"build", "-t", "par", "-o", "type=local,dest=" + dest}, extra...), dir)...)
	var got []interval
	for i := range n {
		read := func(f string) float64 {
			b, err := os.ReadFile(filepath.Join(dest, fmt.Sprintf("s%d", i), f))
			if err != nil {
				t.Fatal(err)
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		got = append(got, interval{name: fmt.Sprintf("s%d", i), start: read("start"), end: read("end")})
	}
	sort.Slice(got, func(a, b int) bool { return got[a].start < got[b].start })
	return got
}

// Independent stages run at once however many CPUs there are (a RUN that
// sleeps uses none), as in BuildKit: every stage's sleep overlaps every
// other's. --max-parallelism 1 runs one step at a time.
func TestParallelStagesUnboundedByCPUs(t *testing.T) {
	h := newHarness(t)
	got := parallelStages(t, h, 3)
	last := got[len(got)-1]
	for _, iv := range got {
		if iv.end <= last.start {
			t.Errorf("%s [%.2f, %.2f] ended before %s [%.2f, %.2f] started: the stages were queued", iv.name, iv.start, iv.end, last.name, last.start, last.end)
		}
	}
	got = parallelStages(t, h, 3, "--no-cache", "--max-parallelism", "1")
	for i := 1; i < len(got); i++ {
		if got[i].start < got[i-1].end {
			t.Errorf("with --max-parallelism 1, %s [%.2f, %.2f] overlaps %s [%.2f, %.2f]", got[i].name, got[i].start, got[i].end, got[i-1].name, got[i-1].start, got[i-1].end)
		}
	}
	dir := h.context("FROM base/busybox:1\n", map[string]string{})
	if _, errOut, code := h.run("build", "--max-parallelism", "-1", dir); code != 2 || !strings.Contains(errOut, "--max-parallelism") {
		t.Errorf("--max-parallelism -1: exit %d, %s", code, errOut)
	}
}

// A RUN's stdout and stderr lines keep the order they were written in: in
// the plain progress, and in the log of the failed step under the final
// frame of the terminal view.
func TestRunOutputOrder(t *testing.T) {
	h := newHarness(t)
	const script = "echo out1; echo err1 >&2; echo out2; echo err2 >&2"
	want := "out1 err1 out2 err2"
	dir := h.context("FROM base/busybox:1\nRUN "+script+"\n", map[string]string{})
	_, lines := stepLines(t, h.buildPlain(dir, "order"), "[stage-0 1/1] RUN "+script)
	if got := strings.Join(lines, " "); got != want {
		t.Errorf("plain progress shows %q, want %q", got, want)
	}

	dir = h.context("FROM base/busybox:1\nRUN "+script+"; exit 3\n", map[string]string{})
	_, errOut, code := h.run("build", "--progress", "plain", "-t", "order", dir)
	if code != 1 {
		t.Fatalf("failing RUN: exit %d\n%s", code, errOut)
	}
	_, lines = stepLines(t, errOut, "[stage-0 1/1] RUN "+script+"; exit 3")
	if got := strings.Join(lines, " "); got != want {
		t.Errorf("plain progress of the failed step shows %q, want %q", got, want)
	}
	_, errOut, code = h.run("build", "--progress", "tty", "-t", "order", dir)
	if code != 1 {
		t.Fatalf("failing RUN: exit %d\n%s", code, errOut)
	}
	_, report, ok := strings.Cut(errOut, " > [stage-0 1/1] RUN "+script+"; exit 3:\n")
	if !ok {
		t.Fatalf("no log of the failed step in:\n%s", errOut)
	}
	report, _, _ = strings.Cut(report, "------")
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(report), "\n") {
		if _, text, ok := strings.Cut(l, " "); ok {
			got = append(got, text)
		}
	}
	if strings.Join(got, " ") != want {
		t.Errorf("failed step's log shows %q, want %q:\n%s", strings.Join(got, " "), want, errOut)
	}
}

// A RUN that prints 100 MB shows and keeps 2 MiB of it, says it clipped
// the rest, and succeeds; one 100 MB line (no newline to cut it at) does
// not make the builder hold it either.
func TestRunOutputClipped(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ name, run string }{
		{"lines", "yes | head -c 100000000"},
		{"one line", "head -c 100000000 /dev/zero | tr '\\0' y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := h.context("FROM base/busybox:1\nRUN "+tc.run+"\nRUN echo after\n", map[string]string{})
			out, errOut, code, peak := h.runPeak(dir, "build", "--progress", "plain", "-t", "bomb", ".")
			if code != 0 {
				t.Fatalf("build: exit %d\n%s", code, out)
			}
			if len(errOut) >= 3<<20 {
				t.Errorf("the progress output is %d bytes", len(errOut))
			}
			if !strings.Contains(errOut, "[output clipped, log limit 2MiB reached]") {
				t.Error("the progress output does not say it was clipped")
			}
			if _, after := stepLines(t, errOut, "[stage-0 2/2] RUN echo after"); strings.Join(after, "") != "after" {
				t.Errorf("the next step's output: %q", after)
			}
			// The builder holds 100 MB of output nowhere: its peak
			// stays far below that.
			t.Logf("the builder's peak RSS: %d KiB", peak)
			if peak == 0 || peak > 80<<10 {
				t.Errorf("the builder's peak RSS was %d MiB", peak>>10)
			}
		})
	}
}
