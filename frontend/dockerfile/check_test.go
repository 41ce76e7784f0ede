package dockerfile

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/builder-dev/builder/solver/graph"
)

// TestCheckDirective checks that "# check=" and BUILDKIT_DOCKERFILE_CHECK
// configure the lint rules as in BuildKit: skip=A,B and skip=all silence
// them, error=true turns a warning into a failure located at it.
func TestCheckDirective(t *testing.T) {
	// Three rules fire: StageNameCasing (body line 1), FromAsCasing (2) and
	// NoEmptyContinuation (5).
	const body = "FROM busybox AS Foo\nfrom busybox AS bar\nRUN echo \\\n\n  hi\n"
	const (
		casing  = "StageNameCasing: Stage name 'Foo' should be lowercase"
		fromAs  = "FromAsCasing: 'AS' and 'from' keywords' casing do not match"
		contLn  = "NoEmptyContinuation: Empty continuation line"
		noCheck = ""
	)
	tests := []struct {
		name      string
		directive string
		buildArg  *string
		warnings  []string // without the "Dockerfile:N: " prefix
		errLine   int      // 0: no error
		errText   string
	}{
		{name: "none", directive: noCheck, warnings: []string{contLn, casing, fromAs}},
		{name: "skip one", directive: "# check=skip=StageNameCasing\n", warnings: []string{contLn, fromAs}},
		{name: "skip two", directive: "# check=skip=StageNameCasing,NoEmptyContinuation\n", warnings: []string{fromAs}},
		{name: "skip spaced", directive: "#check=skip=StageNameCasing,FromAsCasing\n", warnings: []string{contLn}},
		{name: "skip all", directive: "# check=skip=all\n"},
		{name: "skip all with error", directive: "# check=skip=all;error=true\n"},
		{name: "error", directive: "# check=error=true\n", warnings: []string{contLn, casing, fromAs},
			errLine: 5, errText: "lint violation found for rules: NoEmptyContinuation, StageNameCasing, FromAsCasing"},
		{name: "skip and error", directive: "# check=skip=NoEmptyContinuation,FromAsCasing;error=true\n", warnings: []string{casing},
			errLine: 1, errText: "lint violation found for rules: StageNameCasing"},
		{name: "error false", directive: "# check=error=false\n", warnings: []string{contLn, casing, fromAs}},
		{name: "after escape", directive: "# escape=\\\n# check=skip=all\n"},
		{name: "build arg wins", directive: "# check=error=true\n", buildArg: ptr("skip=FromAsCasing,NoEmptyContinuation"), warnings: []string{casing}},
		{name: "build arg error", buildArg: ptr("error=true;skip=NoEmptyContinuation"), warnings: []string{casing, fromAs},
			errLine: 1, errText: "lint violation found for rules: StageNameCasing, FromAsCasing"},
		{name: "bad directive", directive: "# check=nope\n", errLine: 1, errText: `parse check directive: invalid check option "nope"`},
		{name: "bad error value", directive: "# check=error=maybe\n", errLine: 1, errText: "parse check directive"},
		{name: "bad build arg", buildArg: ptr("skip"), errText: "parse build arg BUILDKIT_DOCKERFILE_CHECK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			df := tc.directive + body
			offset := strings.Count(tc.directive, "\n")
			var warnings []string
			opts := testOptions(&stubResolver{})
			opts.Warnings = &warnings
			if tc.buildArg != nil {
				opts.BuildArgs = map[string]string{checkArg: *tc.buildArg}
			}
			_, err := Convert(context.Background(), []byte(df), opts)
			if tc.errText == "" && err != nil {
				t.Fatal(err)
			}
			if tc.errText != "" {
				var ge *graph.Error
				if !errors.As(err, &ge) {
					t.Fatalf("error %v (%T), want a *graph.Error", err, err)
				}
				want := tc.errLine
				if want > 0 && !strings.HasPrefix(tc.errText, "parse") {
					want += offset
				}
				if ge.Location.File != "Dockerfile" || ge.Location.Line != want || !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("error %q at %+v, want %q at line %d", err, ge.Location, tc.errText, want)
				}
				if strings.HasPrefix(tc.errText, "parse") {
					return
				}
			}
			var got []string
			for _, w := range warnings {
				_, msg, _ := strings.Cut(w, ": ")
				got = append(got, msg)
			}
			if !reflect.DeepEqual(got, tc.warnings) && (len(got) > 0 || len(tc.warnings) > 0) {
				t.Errorf("warnings %q, want %q", got, tc.warnings)
			}
		})
	}
}

func ptr(s string) *string { return &s }
