package dockerfile

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/builder-dev/builder/solver/graph"
)

// lastRun converts df and returns its target's last RUN step.
func lastRun(t *testing.T, df string, buildArgs map[string]string) *graph.Step {
	t.Helper()
	opts := testOptions(&stubResolver{})
	opts.BuildArgs = buildArgs
	def, err := Convert(context.Background(), []byte(df), opts)
	if err != nil {
		t.Fatal(err)
	}
	steps := def.Stages[def.Target].Steps
	for i := len(steps) - 1; i >= 0; i-- {
		if _, ok := steps[i].Op.(*graph.Exec); ok {
			return steps[i]
		}
	}
	t.Fatal("no RUN step")
	return nil
}

// TestPlatformArgs checks the predefined platform args in every scope: a
// global ARG without a value keeps the predefined value (FROM lines and
// stages that redeclare it see it), as in BuildKit; a --build-arg
// overrides it everywhere.
func TestPlatformArgs(t *testing.T) {
	const run = "RUN echo $TARGETPLATFORM $TARGETARCH $BUILDPLATFORM\n"
	tests := []struct {
		name      string
		df        string
		buildArgs map[string]string
		env       []string // the RUN's env after PATH
		history   string   // the RUN's created_by before "/bin/sh"
	}{
		{
			name: "stage only",
			df:   "FROM busybox\nARG TARGETPLATFORM\nARG TARGETARCH\nARG BUILDPLATFORM\n" + run,
			env:  []string{"TARGETPLATFORM=linux/amd64", "TARGETARCH=amd64", "BUILDPLATFORM=linux/amd64"},
		},
		{
			name: "global and stage",
			df:   "ARG TARGETPLATFORM\nARG TARGETARCH\nARG BUILDPLATFORM\nFROM busybox\nARG TARGETPLATFORM\nARG TARGETARCH\nARG BUILDPLATFORM\n" + run,
			env:  []string{"TARGETPLATFORM=linux/amd64", "TARGETARCH=amd64", "BUILDPLATFORM=linux/amd64"},
		},
		{
			name: "global for FROM --platform",
			df:   "ARG BUILDPLATFORM\nFROM --platform=$BUILDPLATFORM busybox\nARG BUILDPLATFORM\nARG TARGETARCH\nRUN echo $BUILDPLATFORM $TARGETARCH\n",
			env:  []string{"BUILDPLATFORM=linux/amd64", "TARGETARCH=amd64"},
		},
		{
			name: "global only is not visible in the stage",
			df:   "ARG TARGETARCH\nFROM busybox\nRUN echo ${TARGETARCH-unset}\n",
		},
		{
			name: "global in FROM name",
			df:   "ARG TARGETOS\nARG TARGETARCH\nFROM ${TARGETOS:+busy}${TARGETARCH:+box}\nARG TARGETARCH\n" + run,
			env:  []string{"TARGETARCH=amd64"},
		},
		{
			name:      "build arg overrides",
			df:        "ARG TARGETARCH\nFROM busybox\nARG TARGETARCH\n" + run,
			buildArgs: map[string]string{"TARGETARCH": "arm64"},
			env:       []string{"TARGETARCH=arm64"},
		},
		{
			name: "global default replaces",
			df:   "ARG TARGETARCH=mine\nFROM busybox\nARG TARGETARCH\n" + run,
			env:  []string{"TARGETARCH=mine"},
		},
		{
			name: "global default then bare global",
			df:   "ARG V=one\nARG V\nFROM busybox\nARG V\nRUN echo $V\n",
			env:  []string{"V=one"},
		},
		{
			name: "bare global of an unknown name",
			df:   "ARG NOPE\nFROM busybox\nARG NOPE\nRUN echo ${NOPE-unset}\n",
		},
		{
			name: "stage default wins",
			df:   "ARG TARGETARCH\nFROM busybox\nARG TARGETARCH=x\n" + run,
			env:  []string{"TARGETARCH=x"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			step := lastRun(t, tc.df, tc.buildArgs)
			exec := step.Op.(*graph.Exec)
			want := append([]string{"PATH=" + defaultPath}, tc.env...)
			if !reflect.DeepEqual(exec.Env, want) {
				t.Errorf("RUN env %q, want %q", exec.Env, want)
			}
			// The history names every declared ARG with its value, as
			// BuildKit's "RUN |n K=V ..." does.
			for _, kv := range tc.env {
				if !strings.Contains(step.History.CreatedBy, " "+kv+" ") {
					t.Errorf("history %q lacks %q", step.History.CreatedBy, kv)
				}
			}
		})
	}
}

// TestPlatformArgsCacheKey checks that a global ARG without a value changes
// nothing about a stage's steps: the RUN is the same op with the same
// history, so the solver gives it the same cache key.
func TestPlatformArgsCacheKey(t *testing.T) {
	stage := "FROM busybox\nARG TARGETARCH\nARG BUILDPLATFORM\nRUN echo $TARGETARCH $BUILDPLATFORM\n"
	plain := lastRun(t, stage, nil)
	global := lastRun(t, "ARG TARGETARCH\nARG BUILDPLATFORM\n"+stage, nil)
	if !reflect.DeepEqual(plain.Op, global.Op) || plain.History != global.History {
		t.Errorf("global ARGs changed the RUN:\n%+v %q\n%+v %q", plain.Op, plain.History.CreatedBy, global.Op, global.History.CreatedBy)
	}
}
