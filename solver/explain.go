package solver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/builder-dev/builder/store/cache"
)

// Explanation says why one step missed the cache.
type Explanation struct {
	Stage   string   `json:"stage"`
	Step    string   `json:"step"`
	Line    int      `json:"line,omitempty"`
	Reasons []string `json:"reasons"`
}

// explainMiss compares a missed step with the closest earlier record of the
// same step (same Dockerfile, stage and position) and keeps what differs.
// Only the first miss of a stage is explained: every later step misses
// because its parent did.
func (b *build) explainMiss(ctx context.Context, now cache.Step) {
	if !b.opt.Explain {
		return
	}
	e := Explanation{Stage: now.Stage, Step: now.Text, Line: now.Line}
	prev, err := b.s.previous(ctx, now)
	switch {
	case err != nil:
		e.Reasons = []string{fmt.Sprintf("no earlier record could be read: %v", err)}
	case prev == nil:
		e.Reasons = []string{"never built before (no earlier record of this step)"}
	default:
		e.Reasons = diffSteps(prev.Step, now)
	}
	b.mu.Lock()
	b.explain = append(b.explain, e)
	b.mu.Unlock()
}

// diffSteps lists the differences between an earlier and the current
// version of a step, in the terms of the Dockerfile.
func diffSteps(prev, now cache.Step) []string {
	var out []string
	if prev.Text != now.Text {
		out = append(out, fmt.Sprintf("instruction changed: %q -> %q", prev.Text, now.Text))
	}
	if prev.Parent != now.Parent {
		out = append(out, "an earlier step or the base image changed (the state this step starts from differs)")
	}
	out = append(out, diffOps(prev.Op, now.Op)...)
	if prev.Input != now.Input {
		if now.Kind == "copy" && (len(prev.Files) > 0 || len(now.Files) > 0) {
			out = append(out, diffFiles(prev.Files, now.Files)...)
		} else {
			out = append(out, fmt.Sprintf("input changed: %s -> %s", short(prev.Input.String()), short(now.Input.String())))
		}
	}
	if len(out) == 0 {
		out = append(out, "the recorded layer is gone (pruned) or --no-cache was used")
	}
	return out
}

// diffOps compares the expanded parameters field by field; environment
// lists are compared by variable, which is how ARG and ENV changes show.
func diffOps(prev, now json.RawMessage) []string {
	var a, b map[string]any
	if json.Unmarshal(prev, &a) != nil || json.Unmarshal(now, &b) != nil {
		return nil
	}
	var out []string
	keys := make([]string, 0, len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		pa, _ := json.Marshal(a[k])
		pb, _ := json.Marshal(b[k])
		if string(pa) == string(pb) {
			continue
		}
		if k == "Env" {
			out = append(out, diffEnv(toStrings(a[k]), toStrings(b[k]))...)
			continue
		}
		out = append(out, fmt.Sprintf("%s changed: %s -> %s", k, pa, pb))
	}
	return out
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func diffEnv(prev, now []string) []string {
	pm, nm := envMap(prev), envMap(now)
	var out []string
	for _, kv := range now {
		k, v, _ := strings.Cut(kv, "=")
		old, ok := pm[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("variable %s added (=%q)", k, v))
		case old != v:
			out = append(out, fmt.Sprintf("variable %s changed: %q -> %q", k, old, v))
		}
	}
	for _, kv := range prev {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := nm[k]; !ok {
			out = append(out, fmt.Sprintf("variable %s removed", k))
		}
	}
	return out
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// maxFileReasons bounds the list a huge change would print.
const maxFileReasons = 20

func diffFiles(prev, now []cache.File) []string {
	pm := make(map[string]string, len(prev))
	for _, f := range prev {
		pm[f.Path] = f.Digest.String()
	}
	var out []string
	seen := make(map[string]bool, len(now))
	for _, f := range now {
		seen[f.Path] = true
		old, ok := pm[f.Path]
		switch {
		case !ok:
			out = append(out, "file added: "+f.Path)
		case old != f.Digest.String():
			out = append(out, "file changed: "+f.Path)
		}
	}
	for _, f := range prev {
		if !seen[f.Path] {
			out = append(out, "file removed: "+f.Path)
		}
	}
	if len(out) > maxFileReasons {
		n := len(out) - maxFileReasons
		out = append(out[:maxFileReasons], fmt.Sprintf("... and %d more file changes", n))
	}
	if len(out) == 0 {
		out = append(out, "the copied files' selection changed")
	}
	return out
}

func short(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
