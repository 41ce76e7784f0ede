package dockerfile

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/builder-dev/builder/solver/graph"
)

var update = flag.Bool("update", false, "rewrite testdata/*/result from the current output")

// TestGolden converts every testdata/<case>/Dockerfile (with the build
// flags in args) and compares a dump of the result with result.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/Dockerfile")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, df := range dirs {
		dir := filepath.Dir(df)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			src, err := os.ReadFile(df)
			if err != nil {
				t.Fatal(err)
			}
			var warnings []string
			opts := testOptions(&stubResolver{})
			opts.Warnings = &warnings
			readArgs(t, dir, &opts)
			var got string
			r, err := convert(context.Background(), src, opts)
			if err != nil {
				var ge *graph.Error
				if !errors.As(err, &ge) {
					t.Errorf("error is not a *graph.Error: %T %v", err, err)
				}
				got = "error: " + err.Error() + "\n"
			} else {
				got = dump(r, warnings)
			}
			golden := filepath.Join(dir, "result")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("result differs from %s (run go test -update and review the diff):\n%s", golden, got)
			}
		})
	}
}

// TestConformance checks the target's config and history against what
// Docker's BuildKit produced for the conformance cases copied into
// testdata (config.json, history.txt, history-full.txt from
// shared/conformance/golden).
func TestConformance(t *testing.T) {
	cfgs, err := filepath.Glob("testdata/*/config.json")
	if err != nil || len(cfgs) == 0 {
		t.Fatalf("no conformance cases: %v", err)
	}
	for _, cfg := range cfgs {
		dir := filepath.Dir(cfg)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			opts := testOptions(&stubResolver{})
			readArgs(t, dir, &opts)
			r, err := convert(context.Background(), src, opts)
			if err != nil {
				t.Fatal(err)
			}
			img := r.configs[r.def.Target]

			dt, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var want map[string]any
			if err := json.Unmarshal(dt, &want); err != nil {
				t.Fatal(err)
			}
			got := canonicalConfig(t, *img)
			if !reflect.DeepEqual(got, want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				t.Errorf("config differs from BuildKit's\ngot:  %s\nwant: %s", g, dt)
			}

			strict, full := historyLines(img.History)
			wantStrict, err := os.ReadFile(filepath.Join(dir, "history.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if strict != string(wantStrict) {
				t.Errorf("history differs from BuildKit's\ngot:\n%s\nwant:\n%s", strict, wantStrict)
			}
			// The created_by text is a soft difference in the suite; we
			// still match Docker 20.10's wording.
			wantFull, err := os.ReadFile(filepath.Join(dir, "history-full.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if full != string(wantFull) {
				t.Errorf("history text differs from BuildKit's\ngot:\n%s\nwant:\n%s", full, wantFull)
			}
			// What the solver rebuilds from graph must agree.
			st := r.def.Stages[r.def.Target]
			if n := len(st.Base.History) + len(st.Steps); n != len(img.History) {
				t.Errorf("base history + steps = %d entries, config has %d", n, len(img.History))
			}
		})
	}
}

// TestErrors checks that what a Dockerfile gets wrong fails with a
// *graph.Error at the right line.
func TestErrors(t *testing.T) {
	tests := []struct {
		name       string
		dockerfile string
		target     string
		line       int
		contains   string
	}{
		{"empty", "", "", 0, "cannot be empty"},
		{"only comments", "# nothing\n", "", 1, "file with no instructions"},
		{"no from", "RUN true\n", "", 1, "no build stage"},
		{"unknown instruction", "FROM busybox\nFOO bar\n", "", 2, "unknown instruction: FOO"},
		{"bad flag", "FROM busybox\nCOPY --nope a b\n", "", 2, "unknown flag: --nope"},
		{"shell not json", "FROM busybox\nSHELL sh -c\n", "", 2, "SHELL requires the arguments to be in JSON form"},
		{"from arity", "FROM busybox AS\n", "", 1, "FROM requires either one or three arguments"},
		{"blank base", "FROM ${NOPE}\n", "", 1, "base name (${NOPE}) should not be blank"},
		{"bad base expansion", "FROM busybox:${Y:?needY}\n", "", 1, "needY"},
		{"bad stage arg", "FROM busybox\nARG X=${Y:?needY}\n", "", 2, "needY"},
		{"unknown target", "FROM busybox AS real\n", "nosuchstage", 0, `target stage "nosuchstage" could not be found`},
		{"missing image", "FROM busybox\nRUN true\nFROM nosuch/image\n", "", 3, "resolve image nosuch/image"},
		{"stage index", "FROM busybox\nCOPY --from=3 /a /b\n", "", 2, "invalid stage index 3"},
		{"from expansion", "FROM busybox\nARG S=x\nCOPY --from=$S /a /b\n", "", 3, "variable expansion is not supported for --from"},
		{"copy from later stage", "FROM busybox AS a\nCOPY --from=b /x /y\nFROM busybox AS b\n", "a", 2, `cannot copy from stage "b"`},
		{"copy from itself", "FROM busybox AS a\nRUN true\nCOPY --from=a /x /y\n", "", 3, "circular dependency detected on stage: a: a -> a (Dockerfile:3)"},
		{"cycle in unused stages", "FROM busybox AS a\nCOPY --from=b /x /y\nFROM busybox AS b\nCOPY --from=a /x /y\nFROM busybox\n", "", 4, "circular dependency detected on stage: a: a -> b (Dockerfile:2), b -> a (Dockerfile:4)"},
		{"chmod", "FROM busybox\nCOPY --chmod=999 a b\n", "", 2, "invalid chmod parameter"},
		{"chmod symbolic", "FROM busybox\nCOPY --chmod=u+x a b\n", "", 2, "invalid chmod parameter"},
		{"link chown name", "FROM busybox\nCOPY --link --chown=app a b\n", "", 2, "can't be resolved when used with --link"},
		{"copy url", "FROM busybox\nCOPY https://example.com/x /x\n", "", 2, "source can't be a URL for COPY"},
		{"add url", "FROM busybox\nADD https://example.com/x /x\n", "", 2, "ADD from a URL"},
		{"add checksum", "FROM busybox\nADD --checksum=sha256:aa f /x\n", "", 2, "checksum requires HTTP(S) or Git sources"},
		{"copy parents", "FROM busybox\nCOPY --parents a/b /x/\n", "", 2, "COPY --parents is not supported"},
		{"copy exclude", "FROM busybox\nCOPY --exclude=*.md . /x/\n", "", 2, "COPY --exclude is not supported"},
		{"copy heredoc", "FROM busybox\nCOPY <<EOF /x\nhi\nEOF\n", "", 2, "here-document source is not supported"},
		{"run mount", "FROM busybox\nRUN --mount=type=cache,target=/c true\n", "", 2, "RUN --mount is not supported"},
		{"run bad network", "FROM busybox\nRUN --network=bridge true\n", "", 2, "invalid network mode"},
		{"run shebang heredoc", "FROM busybox\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n", "", 2, "#! interpreter line is not supported"},
		{"stopsignal", "FROM busybox\nSTOPSIGNAL SIGNOPE\n", "", 2, "invalid signal: SIGNOPE"},
		{"stopsignal zero", "FROM busybox\nSTOPSIGNAL 0\n", "", 2, "invalid signal"},
		{"expose proto", "FROM busybox\nEXPOSE 80/foo\n", "", 2, "invalid proto"},
		{"expose range", "FROM busybox\nEXPOSE 90-80\n", "", 2, "invalid port range"},
		{"expose number", "FROM busybox\nEXPOSE 70000\n", "", 2, "invalid port number"},
		{"healthcheck retries", "FROM busybox\nHEALTHCHECK --retries=-1 CMD true\n", "", 2, "--retries must be at least 1"},
		{"healthcheck zero retries", "FROM busybox\nHEALTHCHECK --retries=0 CMD true\n", "", 2, "--retries must be at least 1 (not 0)"},
		{"healthcheck zero interval", "FROM busybox\nHEALTHCHECK --interval=0s CMD true\n", "", 2, `interval "interval" cannot be less than 1ms`},
		{"healthcheck short timeout", "FROM busybox\nHEALTHCHECK --timeout=500us CMD true\n", "", 2, `interval "timeout" cannot be less than 1ms`},
		{"healthcheck unused stage", "FROM busybox AS unused\nHEALTHCHECK --start-period=0s CMD true\nFROM busybox\n", "", 2, `interval "start-period"`},
		{"healthcheck type", "FROM busybox\nHEALTHCHECK FOO true\n", "", 2, "Unknown type"},
		{"onbuild onbuild", "FROM busybox\nONBUILD ONBUILD RUN true\n", "", 2, "isn't allowed"},
		{"bad trigger", "FROM badtrigger/base\nRUN true\n", "", 1, "unknown instruction: NOSUCH"},
		{"platform", "FROM --platform=linux/s390x busybox\n", "", 1, "only the build platform linux/amd64 is supported"},
		{"bad platform", "FROM --platform=a/b/c/d busybox\n", "", 1, "failed to parse platform"},
		{"expansion error", "FROM busybox\nENV A=${B:?noB}\n", "", 2, "noB"},
		{"subst no colon", "FROM busybox\nENV A=${B-dflt}\n", "", 2, "missing ':' in substitution"},
		{"subst plus no colon", "FROM busybox\nLABEL a=\"${B+set}\"\n", "", 2, "missing ':' in substitution"},
		{"subst pattern", "FROM busybox\nENV A=x\nWORKDIR /${A#x}\n", "", 3, "missing ':' in substitution"},
		{"subst replace", "FROM busybox\nCOPY ${A/x/y} /\n", "", 2, "missing ':' in substitution"},
		{"subst nested", "FROM busybox\nUSER ${A:-${B-x}}\n", "", 2, "missing ':' in substitution"},
		{"subst assign", "FROM busybox\nENV A=${B:=x}\n", "", 2, "unsupported modifier (=) in substitution"},
		{"subst in FROM", "ARG T=1\nFROM busybox:${T%.*}\n", "", 2, "missing ':' in substitution"},
		{"subst in stage arg", "FROM busybox\nARG A=${B?x}\n", "", 2, "missing ':' in substitution"},
		{"subst in expose", "FROM busybox\nEXPOSE ${P-80}\n", "", 2, "missing ':' in substitution"},
		{"unterminated heredoc", "FROM busybox\nRUN <<EOF\necho\n", "", 2, "unterminated heredoc"},
		{"escape directive", "# escape=xx\nFROM busybox\n", "", 1, "invalid escape token"},
		{"escape directive after check", "# check=skip=all\n# escape=xx\nFROM busybox\n", "", 2, "invalid escape token"},
		{"escape directive twice", "# escape=`\n#escape=\\\nFROM busybox\n", "", 2, "only one escape parser directive"},
		{"escape indented", " \t\v# escape=xx\r\nFROM busybox\n", "", 1, "invalid escape token"},
		{"escape after blank", "\n# escape=xx\nFROM busybox\nFOO\n", "", 4, "unknown instruction: FOO"},
		{"long line", "FROM busybox\nRUN true\nRUN " + strings.Repeat("a", 65532) + "\n", "", 3, "more than the maximum of 65535"},
		{"long line at the end", "FROM busybox\n\n" + strings.Repeat("#", 65536), "", 3, "more than the maximum of 65535"},
		{"cycle through FROM", "FROM busybox AS a\nCOPY --from=c /x /y\nFROM a AS b\nFROM b AS c\n", "", 3, "circular dependency detected on stage: a: a -> c (Dockerfile:2), c -> b (Dockerfile:4), b -> a (Dockerfile:3)"},
		{"continuation line", "FROM busybox\nRUN echo a \\\n  b\nNOPE x\n", "", 4, "unknown instruction: NOPE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(&stubResolver{})
			opts.Target = tc.target
			_, err := Convert(context.Background(), []byte(tc.dockerfile), opts)
			if err == nil {
				t.Fatal("no error")
			}
			var ge *graph.Error
			if !errors.As(err, &ge) {
				t.Fatalf("error is %T, not *graph.Error: %v", err, err)
			}
			if ge.Location.File != "Dockerfile" || ge.Location.Line != tc.line {
				t.Errorf("location %+v, want Dockerfile line %d (%v)", ge.Location, tc.line, err)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not contain %q", err, tc.contains)
			}
		})
	}
}

// TestLazyResolve checks that only the stages the target needs are
// resolved and converted: an unused stage may name a missing image or
// hold a broken instruction, as under BuildKit.
func TestLazyResolve(t *testing.T) {
	df := `FROM nosuch/image AS unused
RUN exit 3
FROM busybox AS broken
STOPSIGNAL NOPE
FROM busybox AS helper
RUN touch /x
FROM busybox
COPY --from=helper /x /x
`
	r := &stubResolver{}
	def, err := Convert(context.Background(), []byte(df), testOptions(r))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"busybox", "busybox"}; !reflect.DeepEqual(r.asked, want) {
		t.Errorf("resolved %v, want %v", r.asked, want)
	}
	if def.Target != 3 || len(def.Stages) != 4 {
		t.Fatalf("target %d of %d stages", def.Target, len(def.Stages))
	}
	for i, wantSteps := range []int{0, 0, 1, 1} {
		if got := len(def.Stages[i].Steps); got != wantSteps {
			t.Errorf("stage %d has %d steps, want %d", i, got, wantSteps)
		}
	}
	if def.Stages[0].From.Image != "nosuch/image" || def.Stages[0].From.Stage != -1 {
		t.Errorf("unused stage From = %+v", def.Stages[0].From)
	}
}

// TestWarnings checks unused build args and parser warnings.
func TestWarnings(t *testing.T) {
	df := "FROM busybox\nARG USED\nRUN echo \\\n\n  hi\n"
	var warnings []string
	opts := testOptions(&stubResolver{})
	opts.Warnings = &warnings
	opts.BuildArgs = map[string]string{"USED": "1", "UNUSED": "2", "http_proxy": "p", "TARGETARCH": "amd64"}
	if _, err := Convert(context.Background(), []byte(df), opts); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Dockerfile:5: NoEmptyContinuation: Empty continuation line",
		"one or more build args were not consumed: UNUSED",
	}
	if !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings %q, want %q", warnings, want)
	}
}

// TestEnvOrder checks the two orders BuildKit keeps: the image Env keeps a
// replaced key in place, a RUN's environment moves it to the end.
func TestEnvOrder(t *testing.T) {
	df := "FROM busybox\nENV A=1 B=2\nARG C=3\nENV A=4\nRUN true\n"
	r, err := convert(context.Background(), []byte(df), testOptions(&stubResolver{}))
	if err != nil {
		t.Fatal(err)
	}
	img := r.configs[0]
	if want := []string{"PATH=" + defaultPath, "A=4", "B=2"}; !reflect.DeepEqual(img.Config.Env, want) {
		t.Errorf("config Env %q, want %q", img.Config.Env, want)
	}
	exec := r.def.Stages[0].Steps[3].Op.(*graph.Exec)
	if want := []string{"PATH=" + defaultPath, "B=2", "C=3", "A=4"}; !reflect.DeepEqual(exec.Env, want) {
		t.Errorf("RUN Env %q, want %q", exec.Env, want)
	}
}

// TestCopyDest checks destination paths against the working directory.
func TestCopyDest(t *testing.T) {
	for _, tc := range []struct{ wd, dest, want string }{
		{"/", "a.txt", "/a.txt"},
		{"/wd", ".", "/wd/"},
		{"/wd", "", "/wd/"},
		{"/wd", "./", "/wd/"},
		{"/wd", "./sub/", "/wd/sub/"},
		{"/wd", "sub/.", "/wd/sub/"},
		{"/wd", "../up.txt", "/up.txt"},
		{"/wd", "../../../x", "/x"},
		{"/wd", "/abs", "/abs"},
		{"/wd", "/abs/", "/abs/"},
		{"/wd", "/abs/.", "/abs/"},
		{"/", ".", "/"},
	} {
		if got := copyDest(tc.wd, tc.dest); got != tc.want {
			t.Errorf("copyDest(%q, %q) = %q, want %q", tc.wd, tc.dest, got, tc.want)
		}
	}
}

func TestValidSignal(t *testing.T) {
	for s, want := range map[string]bool{
		"9": true, "SIGKILL": true, "kill": true, "TERM": true, "sigusr1": true,
		"RTMIN": true, "SIGRTMIN+3": true, "RTMAX-2": true, "RTMIN+16": false,
		"0": false, "-1": true, "+5": true, "99": true, "": false, "SIGNOPE": false, "RTMAX+1": false,
		"SIGCLD": true, "poll": true, "IOT": true, "STKFLT": true, "SIGSIGKILL": false,
		"RTMIN+15": true, "RTMAX-14": true, "RTMAX-15": false, "RTMIN+01": false, "RTMIN+": false,
	} {
		if got := validSignal(s); got != want {
			t.Errorf("validSignal(%q) = %v, want %v", s, got, want)
		}
	}
}
