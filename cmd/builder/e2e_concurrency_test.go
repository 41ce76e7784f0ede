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

// Eight builder processes build at once on one store: the same Dockerfile
// under one tag and under another, different Dockerfiles (RUN, COPY, a
// multi-stage COPY --from), while `cache prune --all` runs twice and an
// unrelated image is removed. Every build succeeds, every image has its
// content, and the store is consistent afterwards.
func TestEightConcurrentBuildsWithPrune(t *testing.T) {
	h := newHarness(t)
	h.build(h.context("FROM base/busybox:1\nRUN echo unrelated > /u\n", map[string]string{}), "unrelated:1")
	same := h.context("FROM base/busybox:1\nRUN echo same > /same && sleep 0.2\nCOPY f /f\nRUN cat /same /f > /out\n",
		map[string]string{"f": "same-file\n"})
	other := h.context("FROM base/busybox:1\nCOPY g /g\nRUN cat /g > /out && echo other >> /out\n",
		map[string]string{"g": "other-file\n"})
	stages := h.context("FROM base/busybox:1 AS gen\nRUN echo staged > /s\nFROM base/busybox:1\nCOPY --from=gen /s /s\nRUN cat /s > /out\n",
		map[string]string{})
	many := h.context("FROM base/busybox:1\nRUN echo 1 > /1\nRUN echo 2 > /2\nCOPY h /h\nRUN cat /1 /2 /h > /out\n",
		map[string]string{"h": "many\n"})
	type job struct{ dir, tag, want string }
	jobs := []job{
		{same, "same:1", "same\nsame-file\n"},
		{same, "same:1", "same\nsame-file\n"},
		{same, "same:1", "same\nsame-file\n"},
		{same, "same:2", "same\nsame-file\n"},
		{other, "other:1", "other-file\nother\n"},
		{other, "other:2", "other-file\nother\n"},
		{stages, "stages:1", "staged\n"},
		{many, "many:1", "1\n2\nmany\n"},
	}
	var wg sync.WaitGroup
	errs := make([]string, len(jobs)+3)
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, errOut, code := h.run("build", "-t", j.tag, j.dir)
			if code != 0 {
				errs[i] = fmt.Sprintf("build %s: exit %d\n%s\n%s", j.tag, code, out, errOut)
			}
		}()
	}
	for i, args := range [][]string{
		{"cache", "prune", "--all"},
		{"rmi", "unrelated:1"},
		{"cache", "prune", "--all"},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, errOut, code := h.run(args...)
			if code != 0 {
				errs[len(jobs)+i] = fmt.Sprintf("%s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, errOut)
			}
			t.Logf("%s:\n%s%s", strings.Join(args, " "), out, errOut)
		}()
	}
	wg.Wait()
	if msg := strings.Join(errs, ""); msg != "" {
		t.Fatal(msg)
	}
	checkStoreConsistent(t, h.root)
	seen := map[string]bool{}
	for _, j := range jobs {
		if seen[j.tag] {
			continue
		}
		seen[j.tag] = true
		if out := h.runImage(j.tag, "cat", "/out"); out != j.want {
			t.Errorf("%s: /out is %q, want %q", j.tag, out, j.want)
		}
	}
	if _, _, code := h.run("inspect", "unrelated:1"); code == 0 {
		t.Error("unrelated:1 is still there")
	}
	// Once more, all cached: the same images come back.
	for _, j := range jobs[:1] {
		h.build(j.dir, j.tag)
		if out := h.runImage(j.tag, "cat", "/out"); out != j.want {
			t.Errorf("%s rebuilt: /out is %q", j.tag, out)
		}
	}
	checkStoreConsistent(t, h.root)
}
