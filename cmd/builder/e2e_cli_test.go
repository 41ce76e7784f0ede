package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestAgoAt(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		before time.Duration
		want   string
	}{
		{500 * time.Millisecond, "Less than a second ago"},
		{1 * time.Second, "1 second ago"},
		{30 * time.Second, "30 seconds ago"},
		{61 * time.Second, "About a minute ago"},
		{2 * time.Minute, "2 minutes ago"},
		{61 * time.Minute, "About an hour ago"},
		{3 * time.Hour, "3 hours ago"},
		{50 * time.Hour, "2 days ago"},
	} {
		if got := agoAt(now.Add(-tc.before), now); got != tc.want {
			t.Errorf("agoAt(%v before) = %q, want %q", tc.before, got, tc.want)
		}
	}
	if got := agoAt(time.Time{}, now); got != "N/A" {
		t.Errorf("agoAt(zero) = %q", got)
	}
}

// TestCreatedColumns checks that images, history and ps say how long ago
// in docker's words: an image made a moment ago is seconds old, not
// "Less than a minute ago".
func TestCreatedColumns(t *testing.T) {
	h := newHarness(t)
	fresh := regexp.MustCompile(`(Less than a second|\d+ seconds?) ago`)
	for _, args := range [][]string{{"images"}, {"history", "base/busybox:1"}} {
		out := h.mustRun(args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 2 {
			t.Fatalf("%v:\n%s", args, out)
		}
		for _, l := range lines[1:] {
			if !fresh.MatchString(l) {
				t.Errorf("%v: row %q does not say seconds ago", args, l)
			}
		}
	}
}

func TestInspectShowsAuthor(t *testing.T) {
	h := newHarness(t)
	dir := h.context("FROM base/busybox:1\nMAINTAINER Jane Doe <jane@example.com>\n", map[string]string{})
	h.build(dir, "authored")
	var out []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(h.mustRun("inspect", "authored")), &out); err != nil || len(out) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	var author string
	if err := json.Unmarshal(out[0]["Author"], &author); err != nil || author != "Jane Doe <jane@example.com>" {
		t.Errorf("Author %s (%v), want Jane Doe <jane@example.com>", out[0]["Author"], err)
	}
	// Without MAINTAINER, docker shows the field empty.
	if err := json.Unmarshal([]byte(h.mustRun("inspect", "base/busybox:1")), &out); err != nil {
		t.Fatal(err)
	}
	if got := string(out[0]["Author"]); got != `""` {
		t.Errorf("base Author %s, want \"\"", got)
	}
}
