package dockerfile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/builder-dev/builder/solver/graph"
)

// FuzzParse parses and converts a Dockerfile (every word expanded, every
// stage the target needs dispatched) with build args given as KEY=VALUE
// lines. No input may panic or grow without bound; every failure is a
// *graph.Error naming the Dockerfile, and every step is located inside it.
//
// The seed corpus is testdata/fuzz/FuzzParse plus every golden case's
// Dockerfile with its build args.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/Dockerfile")
	for _, s := range seeds {
		dt, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		// The case's --build-arg lines, as KEY=VALUE lines.
		var args []string
		if a, err := os.ReadFile(filepath.Join(filepath.Dir(s), "args")); err == nil {
			for _, l := range strings.Split(string(a), "\n") {
				if kv, ok := strings.CutPrefix(strings.TrimSpace(l), "--build-arg "); ok {
					args = append(args, kv)
				}
			}
		}
		f.Add(dt, strings.Join(args, "\n"))
	}
	f.Fuzz(func(t *testing.T, dt []byte, buildArgs string) {
		opts := testOptions(&stubResolver{})
		opts.BuildArgs = map[string]string{}
		for _, kv := range strings.Split(buildArgs, "\n") {
			if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
				opts.BuildArgs[k] = v
			}
		}
		var warnings []string
		opts.Warnings = &warnings
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		def, err := Convert(context.Background(), dt, opts)
		runtime.ReadMemStats(&after)
		// The limits allow 128 MiB of expanded text; ten times that
		// means an expansion escaped them.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 10*maxTotal {
			t.Fatalf("conversion allocated %d MiB", alloc>>20)
		}
		if err != nil {
			var ge *graph.Error
			if !errors.As(err, &ge) {
				t.Fatalf("error is %T, not *graph.Error: %v", err, err)
			}
			if ge.Location.File != "Dockerfile" {
				t.Fatalf("error names %q: %v", ge.Location.File, err)
			}
			return
		}
		if def.Target < 0 || def.Target >= len(def.Stages) {
			t.Fatalf("target %d of %d stages", def.Target, len(def.Stages))
		}
		lines := bytes.Count(dt, []byte("\n")) + 1
		for _, st := range def.Stages {
			for _, step := range st.Steps {
				if l := step.Location; l.File != "Dockerfile" || l.Line < 1 || l.Line > lines || l.End < l.Line {
					t.Fatalf("step %q located at %+v in a %d line file", step.Text, l, lines)
				}
			}
		}
	})
}
