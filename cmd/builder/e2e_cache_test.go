package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/builder-dev/builder/store"
	digest "github.com/opencontainers/go-digest"
)

func (h *harness) cacheLs() []cacheEntryJSON {
	h.t.Helper()
	var out []cacheEntryJSON
	if err := json.Unmarshal([]byte(h.mustRun("cache", "ls", "--format", "json")), &out); err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *harness) cacheDu() map[string]int64 {
	h.t.Helper()
	var out map[string]int64
	if err := json.Unmarshal([]byte(h.mustRun("cache", "du", "--format", "json")), &out); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// buildPlain builds and returns the progress output.
func (h *harness) buildPlain(dir, tag string) string {
	h.t.Helper()
	out, errOut, code := h.run("build", "--progress", "plain", "-t", tag, dir)
	if code != 0 {
		h.t.Fatalf("build: exit %d\n%s\n%s", code, out, errOut)
	}
	return errOut
}

func (h *harness) hasBlob(d digest.Digest) bool {
	_, err := os.Stat(filepath.Join(h.root, "content", "blobs", "sha256", d.Encoded()))
	return err == nil
}

func steps(entries []cacheEntryJSON) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Step)
	}
	slices.Sort(out)
	return out
}

const cacheDockerfile = `FROM base/busybox:1
RUN echo one > /one
ENV X=1
RUN echo %s > /%s
`

func TestCacheLsDuPrune(t *testing.T) {
	h := newHarness(t)
	dir := h.context(strings.ReplaceAll(cacheDockerfile, "%s", "two"), map[string]string{})
	h.buildPlain(dir, "app:1")

	entries := h.cacheLs()
	if got := steps(entries); !slices.Equal(got, []string{"RUN echo one > /one", "RUN echo two > /two"}) {
		t.Fatalf("cache ls steps %v", got)
	}
	for _, e := range entries {
		if !slices.Equal(e.Images, []string{"app:1"}) || e.Size <= 0 || e.Stage == "" || e.Created.IsZero() || e.LastUsed.IsZero() {
			t.Errorf("entry %+v", e)
		}
	}
	table := h.mustRun("cache", "ls")
	for _, want := range []string{"KEY", "LAST USED", "RUN echo one > /one", "app:1", entries[0].Key.Encoded()[:12]} {
		if !strings.Contains(table, want) {
			t.Errorf("cache ls lacks %q:\n%s", want, table)
		}
	}

	du := h.cacheDu()
	if du["records"] != 2 || du["total"] <= 0 || du["total"] != du["shared"]+du["reclaimable"] {
		t.Errorf("cache du %v", du)
	}
	// Both layers are app's: nothing reclaimable but the unpacked layers
	// only the build needed.
	if du["shared"] <= 0 {
		t.Errorf("cache du %v: nothing shared with app", du)
	}
	if out := h.mustRun("cache", "du"); !strings.Contains(out, "Reclaimable:") {
		t.Errorf("cache du:\n%s", out)
	}

	// A changed last step leaves the old one's record to no image.
	var two cacheEntryJSON
	for _, e := range entries {
		if e.Step == "RUN echo two > /two" {
			two = e
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(strings.ReplaceAll(cacheDockerfile, "%s", "three")), 0o644); err != nil {
		t.Fatal(err)
	}
	oldID := h.inspect("app:1").ID
	h.buildPlain(dir, "app:1")
	// The old image stays listed untagged, and keeps its layers, until
	// it is removed.
	h.mustRun("cache", "prune")
	if got := steps(h.cacheLs()); len(got) != 3 {
		t.Errorf("prune removed a record an untagged image uses: %v", got)
	}
	h.mustRun("rmi", oldID)
	out := h.mustRun("cache", "prune")
	if !strings.Contains(out, "Total reclaimed space: ") || !strings.Contains(out, two.Key.Encoded()[:12]) {
		t.Errorf("cache prune:\n%s", out)
	}
	if got := steps(h.cacheLs()); !slices.Equal(got, []string{"RUN echo one > /one", "RUN echo three > /three"}) {
		t.Errorf("after prune: %v", got)
	}
	if h.hasBlob(two.Layer) {
		t.Error("the pruned record's layer blob is still there")
	}

	// prune --all empties the cache; the image still runs and a rebuild
	// runs every step again.
	out = h.mustRun("cache", "prune", "--all")
	if !strings.Contains(out, "Total reclaimed space: ") {
		t.Errorf("cache prune --all:\n%s", out)
	}
	if got := h.cacheLs(); len(got) != 0 {
		t.Errorf("after prune --all: %v", steps(got))
	}
	if got := h.runImage("app:1", "cat", "/one", "/three"); got != "one\nthree\n" {
		t.Errorf("app after prune --all: %q", got)
	}
	progress := h.buildPlain(dir, "app:1")
	if strings.Contains(progress, "CACHED") {
		t.Errorf("rebuild after prune --all used the cache:\n%s", progress)
	}
	if got := steps(h.cacheLs()); len(got) != 2 {
		t.Errorf("records after rebuild: %v", got)
	}
	if got := h.runImage("app:1", "cat", "/one", "/three"); got != "one\nthree\n" {
		t.Errorf("rebuilt app: %q", got)
	}
	// And the next build is cached again.
	if progress := h.buildPlain(dir, "app:1"); strings.Count(progress, "CACHED") != 2 {
		t.Errorf("second rebuild:\n%s", progress)
	}
}

// pruneJSON runs cache prune --format json with args.
func (h *harness) pruneJSON(args ...string) pruneReportJSON {
	h.t.Helper()
	var out pruneReportJSON
	if err := json.Unmarshal([]byte(h.mustRun(append([]string{"cache", "prune", "--format", "json"}, args...)...)), &out); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// freeable is what a prune can free as cache du counts it.
func freeable(du map[string]int64) int64 { return du["reclaimable"] + du["unreferenced"] }

// TestCachePruneKeepStorageFreesUnusedFirst is bug 8: a prune to a small
// size removes the records no image uses, least recently used first, keeps
// those whose layers the tagged image uses, and reports as freed exactly
// what cache du stops counting.
func TestCachePruneKeepStorageFreesUnusedFirst(t *testing.T) {
	h := newHarness(t)
	app := h.context("FROM base/busybox:1\nRUN head -c 100000 /dev/urandom > /a\nRUN head -c 100000 /dev/urandom > /b\nRUN echo c > /c\n", map[string]string{})
	h.buildPlain(app, "app:1")
	// An untagged build with layers of its own (400 kB of noise each,
	// 800 kB with the unpacked copy), then its image removed: its
	// records are in no image.
	other := h.context("FROM base/busybox:1\nRUN head -c 400000 /dev/urandom > /u1\nRUN head -c 400000 /dev/urandom > /u2\n", map[string]string{})
	id := strings.TrimSpace(h.mustRun("build", "-q", other))
	h.mustRun("rmi", id)

	byStep := map[string]cacheEntryJSON{}
	for _, e := range h.cacheLs() {
		byStep[e.Step] = e
	}
	u1, u2 := byStep["RUN head -c 400000 /dev/urandom > /u1"], byStep["RUN head -c 400000 /dev/urandom > /u2"]
	if len(byStep) != 5 || len(u1.Images) != 0 || len(u2.Images) != 0 {
		t.Fatalf("cache before prune: %+v", byStep)
	}
	before := h.cacheDu()
	if freeable(before) < 1500000 {
		t.Fatalf("cache du %v: less to free than the unused layers take", before)
	}

	// Over 1 MB: u2 (newer, on top of u1) goes, which leaves less than
	// 1 MB; app's records would free nothing and stay.
	rep := h.pruneJSON("--keep-storage", "1MB")
	mid := h.cacheDu()
	if !slices.Equal(rep.Records, []digest.Digest{u2.Key}) {
		t.Errorf("prune --keep-storage 1MB removed %v, want u2 %s", rep.Records, u2.Key)
	}
	if rep.Reclaimed <= 0 || rep.Reclaimed != freeable(before)-freeable(mid) || mid["shared"] != before["shared"] {
		t.Errorf("reclaimed %d; du before %v, after %v", rep.Reclaimed, before, mid)
	}
	if freeable(mid) > 1<<20 {
		t.Errorf("du after prune --keep-storage 1MB: %v", mid)
	}
	// Smaller: u1 goes too, and only u1.
	rep = h.pruneJSON("--keep-storage", "1kB")
	after := h.cacheDu()
	if !slices.Equal(rep.Records, []digest.Digest{u1.Key}) || rep.Reclaimed != freeable(mid)-freeable(after) || rep.Reclaimed <= 0 {
		t.Errorf("prune --keep-storage 1kB: %+v; du before %v, after %v", rep, mid, after)
	}
	if after["records"] != 3 || after["shared"] != before["shared"] {
		t.Errorf("du after: %v", after)
	}
	if h.hasBlob(u1.Layer) || h.hasBlob(u2.Layer) {
		t.Error("a pruned record's layer blob is still there")
	}
	// What is left is app's: the table says nothing was removed or freed.
	out := h.mustRun("cache", "prune", "--keep-storage", "1kB")
	if !strings.Contains(out, "Records removed: 0\n") || !strings.Contains(out, "Total reclaimed space: 0B\n") {
		t.Errorf("prune of app's records only:\n%s", out)
	}
	if progress := h.buildPlain(app, "app:1"); strings.Count(progress, "CACHED") != 3 {
		t.Errorf("rebuild of app after prune:\n%s", progress)
	}
}

// TestCachePruneKeepStorageAllUsed is the 0-freed case of bug 8: every
// record's layer is the image's, so prune --keep-storage removes nothing,
// says so, and the next build is fully cached.
func TestCachePruneKeepStorageAllUsed(t *testing.T) {
	h := newHarness(t)
	dir := h.context("FROM base/busybox:1\nRUN echo a > /a\nRUN echo b > /b\nENV X=1\nRUN echo c > /c\n", map[string]string{})
	h.buildPlain(dir, "app:1")
	before := h.cacheLs()
	du := h.cacheDu()
	for _, args := range [][]string{{"--keep-storage", "1MB"}, {"--keep-storage", "1"}, {"--keep-storage", "1MB", "--all"}} {
		out := h.mustRun(append([]string{"cache", "prune"}, args...)...)
		if !strings.Contains(out, "Records removed: 0\n") || !strings.Contains(out, "Total reclaimed space: 0B\n") || strings.Contains(out, "Deleted") {
			t.Errorf("cache prune %v:\n%s", args, out)
		}
	}
	if got := h.cacheLs(); len(got) != len(before) || len(got) != 3 {
		t.Errorf("records %v, want %v", steps(got), steps(before))
	}
	if got := h.cacheDu(); got["total"] != du["total"] || got["shared"] != du["shared"] {
		t.Errorf("du after %v, before %v", got, du)
	}
	if progress := h.buildPlain(dir, "app:1"); strings.Count(progress, "CACHED") != 3 {
		t.Errorf("rebuild after prune:\n%s", progress)
	}
}

func TestCachePruneWaitsForBuild(t *testing.T) {
	h := newHarness(t)
	dir := h.context("FROM base/busybox:1\nRUN echo a > /a\n", map[string]string{})
	h.buildPlain(dir, "a")
	h.mustRun("rmi", "a")

	st, err := store.Open(context.Background(), h.root)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := st.LockBuild(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	cmd := exec.Command(builderBin, "--root", h.root, "cache", "prune")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil || line != "waiting for running builds to finish\n" {
		t.Fatalf("prune stderr %q, %v", line, err)
	}
	// While it waits, nothing is gone.
	if got := h.cacheLs(); len(got) != 1 {
		t.Errorf("records while prune waits: %v", steps(got))
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("prune: %v\n%s", err, stdout.String())
	}
	if got := h.cacheLs(); len(got) != 0 || !strings.Contains(stdout.String(), "Total reclaimed space: ") {
		t.Errorf("after prune: %v\n%s", steps(got), stdout.String())
	}
}

func TestCacheUsageErrors(t *testing.T) {
	h := newHarness(t)
	for _, args := range [][]string{
		{"cache"},
		{"cache", "bogus"},
		{"cache", "ls", "--format", "yaml"},
		{"cache", "prune", "--keep-storage", "lots"},
		{"cache", "prune", "--filter", "label=x"},
		{"cache", "prune", "--filter", "until=soon"},
	} {
		if _, errOut, code := h.run(args...); code != 2 {
			t.Errorf("builder %v: exit %d, want 2\n%s", args, code, errOut)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1024": 1024, "100kB": 100 << 10, "100k": 100 << 10, "512MB": 512 << 20, "512m": 512 << 20,
		"1GB": 1 << 30, "1g": 1 << 30, "1.5GB": 3 << 29, "2gib": 2 << 30, " 7 ": 7,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1", "1XB", "GB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

func TestParseUntil(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"until=24h":                  24 * time.Hour,
		"until=90m":                  90 * time.Minute,
		"until=2025-06-01T10:00:00Z": 2 * time.Hour,
		"until=1748775600":           time.Hour, // 2025-06-01T11:00:00Z
	} {
		if got, err := parseUntil(in, now); err != nil || got != want {
			t.Errorf("parseUntil(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"until", "label=a", "until=-1h", "until=0s", "until=2030-01-01T00:00:00Z", "until=soon"} {
		if _, err := parseUntil(in, now); err == nil {
			t.Errorf("parseUntil(%q) succeeded", in)
		}
	}
}
