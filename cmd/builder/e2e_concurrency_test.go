package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Two builder processes on one store at once, with the same and with
// different Dockerfiles, both succeed and produce correct images.
func TestConcurrentBuildsOnOneRoot(t *testing.T) {
	h := newHarness(t)
	same := h.context("FROM base/busybox:1\nRUN sleep 1 && echo same > /same\nCOPY f /f\n", map[string]string{"f": "f\n"})
	other := h.context("FROM base/busybox:1\nRUN sleep 1 && echo other > /other\n", map[string]string{})
	type job struct{ dir, tag, want, file string }
	jobs := []job{
		{same, "conc:a", "same\n", "/same"},
		{same, "conc:b", "same\n", "/same"},
		{other, "conc:c", "other\n", "/other"},
	}
	var wg sync.WaitGroup
	errs := make([]string, len(jobs))
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, errOut, code := h.run("build", "-t", j.tag, j.dir)
			if code != 0 {
				errs[i] = fmt.Sprintf("%s: exit %d\n%s\n%s", j.tag, code, out, errOut)
			}
		}()
	}
	wg.Wait()
	if msg := strings.Join(errs, ""); msg != "" {
		t.Fatal(msg)
	}
	for _, j := range jobs {
		if out := h.runImage(j.tag, "cat", j.file); out != j.want {
			t.Errorf("%s: %q", j.tag, out)
		}
	}
	if !strings.Contains(h.mustRun("images"), "conc") {
		t.Error("images lost")
	}
}
