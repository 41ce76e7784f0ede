package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/builder-dev/builder/internal/testutil"
)

// runIn runs the builder in dir (relative paths resolve there, as when a
// user types them) with stdin. A generous timeout turns a hang into a
// failure (exit code -1) instead of a stuck test; it is not a timing
// assertion. It does not fail the test itself, so subtests can use it.
func (h *harness) runIn(dir string, stdin []byte, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, builderBin, append([]string{"--root", h.root}, args...)...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return stdout.String(), stderr.String() + "\n(the builder hung and was killed)", -1
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return stdout.String(), fmt.Sprintf("run builder: %v", err), -1
	}
	return stdout.String(), stderr.String(), code
}

// TestBuildPlatformArgs: global ARGs of the predefined platform args keep
// their values (BuildKit's semantics), in FROM --platform and in a stage
// that redeclares them, and change no cache key.
func TestBuildPlatformArgs(t *testing.T) {
	h := newHarness(t)
	stage := "ARG TARGETARCH\nARG TARGETPLATFORM\nARG BUILDPLATFORM\nRUN echo \"[$TARGETARCH][$TARGETPLATFORM][$BUILDPLATFORM]\" > /out\n"
	global := h.context("ARG BUILDPLATFORM\nARG TARGETPLATFORM\nARG TARGETARCH\nFROM --platform=$BUILDPLATFORM base/busybox:1\n"+stage, map[string]string{})
	h.build(global, "plat:global")
	want := fmt.Sprintf("[%s][linux/%[1]s][linux/%[1]s]\n", runtime.GOARCH)
	if got := h.runImage("plat:global", "cat", "/out"); got != want {
		t.Errorf("RUN saw %q, want %q", got, want)
	}
	// The same stage without the global ARGs: its RUN has the same key.
	plain := h.context("FROM base/busybox:1\n"+stage, map[string]string{})
	if progress := h.buildPlain(plain, "plat:plain"); !strings.Contains(progress, "CACHED") {
		t.Errorf("the RUN missed the cache of the same RUN under global ARGs:\n%s", progress)
	}
	// A --build-arg overrides the predefined value, as in BuildKit.
	h.build(global, "plat:arg", "--build-arg", "TARGETARCH=other")
	if got := h.runImage("plat:arg", "cat", "/out"); !strings.HasPrefix(got, "[other]") {
		t.Errorf("RUN with --build-arg TARGETARCH=other saw %q", got)
	}
}

// TestBuildCheckDirective: "# check=" and BUILDKIT_DOCKERFILE_CHECK skip
// rules or turn warnings into a failure naming the rule, file and line.
func TestBuildCheckDirective(t *testing.T) {
	h := newHarness(t)
	const body = "FROM base/busybox:1 AS Foo\nRUN true\n"
	const warning = "StageNameCasing: Stage name 'Foo' should be lowercase"
	tests := []struct {
		name, directive string
		args            []string
		warnLine        int // 0: no warning
		fail            bool
	}{
		{name: "none", warnLine: 1},
		{name: "skip", directive: "# check=skip=StageNameCasing\n"},
		{name: "skip list", directive: "# check=skip=FromAsCasing,StageNameCasing\n"},
		{name: "skip all", directive: "# check=skip=all\n"},
		{name: "other rule skipped", directive: "# check=skip=FromAsCasing\n", warnLine: 2},
		{name: "error", directive: "# check=error=true\n", warnLine: 2, fail: true},
		{name: "skip and error", directive: "# check=skip=StageNameCasing;error=true\n"},
		{name: "build arg", directive: "# check=error=true\n", args: []string{"--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all"}},
		{name: "build arg error", args: []string{"--build-arg", "BUILDKIT_DOCKERFILE_CHECK=error=true"}, warnLine: 1, fail: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := h.context(tc.directive+body, map[string]string{})
			before := testutil.Listing(t, h.root)
			args := append([]string{"build", "--progress", "plain", "-t", "check:1"}, tc.args...)
			_, errOut, code := h.runIn(dir, nil, append(args, ".")...)
			if tc.warnLine == 0 && strings.Contains(errOut, "StageNameCasing") {
				t.Errorf("warned although skipped:\n%s", errOut)
			}
			if tc.warnLine > 0 && !strings.Contains(errOut, fmt.Sprintf("WARNING: Dockerfile:%d: %s", tc.warnLine, warning)) {
				t.Errorf("no warning at line %d:\n%s", tc.warnLine, errOut)
			}
			if !tc.fail {
				if code != 0 {
					t.Fatalf("exit %d:\n%s", code, errOut)
				}
				return
			}
			want := fmt.Sprintf("error: Dockerfile:%d: lint violation found for rules: StageNameCasing", tc.warnLine)
			if code != 1 || !strings.Contains(errOut, want) {
				t.Errorf("exit %d, want 1 and %q:\n%s", code, want, errOut)
			}
			if after := testutil.Listing(t, h.root); after != before {
				t.Errorf("a failed check changed the store")
			}
		})
	}
}

// TestBuildErrorsNameTheLine: what is wrong in a Dockerfile is reported as
// <file>:<line>: <message>, the file named as the user gave it.
func TestBuildErrorsNameTheLine(t *testing.T) {
	h := newHarness(t)
	var doubling strings.Builder
	doubling.WriteString("FROM base/busybox:1\nENV A=" + strings.Repeat("a", 64) + "\n")
	for range 40 {
		doubling.WriteString("ENV A=$A$A\n")
	}
	doubling.WriteString("RUN true\n")
	tests := []struct {
		name, df string
		want     string // after "<file>:"
	}{
		{"long line", "FROM base/busybox:1\nRUN echo " + strings.Repeat("x", 70000) + "\n", "2: line is 70009 bytes long, more than the maximum of 65535"},
		{"cycle", "FROM base/busybox:1 AS a\nCOPY --from=b /x /y\nFROM base/busybox:1 AS b\nCOPY --from=a /x /y\n", "4: circular dependency detected on stage: a: a -> b (%[1]s:2), b -> a (%[1]s:4)"},
		{"escape", "# escape=xx\nFROM base/busybox:1\n", "1: invalid escape token \"xx\""},
		{"unknown instruction", "FROM base/busybox:1\nRUN true\nFROBNICATE now\n", "3: unknown instruction: FROBNICATE"},
		{"bad flag", "FROM base/busybox:1\nCOPY --nope a b\n", "2: unknown flag: --nope"},
		{"expansion", doubling.String(), "17: over the size limit: variables in \"$A$A\" expand to more than 1 MiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := h.context("", map[string]string{"sub/Dockerfile.dev": tc.df, "with space/Dockerfile": tc.df})
			for _, file := range []string{"sub/Dockerfile.dev", "with space/Dockerfile", filepath.Join(dir, "sub/Dockerfile.dev")} {
				before := testutil.Listing(t, h.root)
				_, errOut, code := h.runIn(dir, nil, "build", "-f", file, "-t", "bad:1", ".")
				want := "error: " + file + ":" + strings.ReplaceAll(tc.want, "%[1]s", file)
				if code != 1 || !strings.Contains(errOut, want) {
					t.Errorf("-f %q: exit %d, want 1 and %q:\n%.2000s", file, code, want, errOut)
				}
				if after := testutil.Listing(t, h.root); after != before {
					t.Errorf("-f %q: the failed build changed the store", file)
				}
			}
		})
	}
}

// TestBuildDockerfileSource: -f reads a regular file or stdin, bounded;
// anything else fails at once, naming the file.
func TestBuildDockerfileSource(t *testing.T) {
	h := newHarness(t)
	dir := h.context("FROM base/busybox:1\nRUN echo from-file > /src\n", map[string]string{
		"sub/Dockerfile.dev":    "FROM base/busybox:1\nRUN echo from-sub > /src\n",
		"with space/Dockerfile": "FROM base/busybox:1\nRUN echo from-space > /src\n",
	})
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("# filler\n"), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/Dockerfile.dev", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}

	ok := []struct {
		name, file string
		stdin      string
		want       string
	}{
		{"default", "", "", "from-file"},
		{"relative", "sub/Dockerfile.dev", "", "from-sub"},
		{"dot relative", "./sub/../sub/Dockerfile.dev", "", "from-sub"},
		{"space", "with space/Dockerfile", "", "from-space"},
		{"symlink", "link", "", "from-sub"},
		{"stdin", "-", "FROM base/busybox:1\nRUN echo from-stdin > /src\n", "from-stdin"},
	}
	for _, tc := range ok {
		args := []string{"build", "-q", "-t", "src:1"}
		if tc.file != "" {
			args = append(args, "-f", tc.file)
		}
		if _, errOut, code := h.runIn(dir, []byte(tc.stdin), append(args, ".")...); code != 0 {
			t.Errorf("%s: exit %d:\n%s", tc.name, code, errOut)
			continue
		}
		if got := h.runImage("src:1", "cat", "/src"); got != tc.want+"\n" {
			t.Errorf("%s: built %q, want %q", tc.name, got, tc.want)
		}
	}

	bad := []struct {
		name, file string
		stdin      []byte
		want       string
	}{
		{"dev zero", "/dev/zero", nil, "read Dockerfile /dev/zero: not a regular file (a character device)"},
		{"dev null", "/dev/null", nil, "read Dockerfile /dev/null: not a regular file (a character device)"},
		{"fifo", "fifo", nil, "read Dockerfile fifo: not a regular file (a named pipe)"},
		{"directory", "adir", nil, "read Dockerfile adir: is a directory"},
		{"missing", "nope/Dockerfile", nil, "nope/Dockerfile: no such file or directory"},
		{"too big", "big", nil, "read Dockerfile big: 9437184 bytes is over the limit of 4194304"},
		{"stdin too big", "-", bytes.Repeat([]byte("# filler\n"), 1<<20), "read Dockerfile <stdin>: over the limit of 4194304 bytes"},
		{"stdin empty", "-", nil, "error: <stdin>: the Dockerfile cannot be empty"},
		{"stdin error line", "-", []byte("FROM base/busybox:1\nNOPE x\n"), "error: <stdin>:2: unknown instruction: NOPE"},
	}
	for _, tc := range bad {
		before := testutil.Listing(t, h.root)
		_, errOut, code := h.runIn(dir, tc.stdin, "build", "-f", tc.file, "-t", "src:bad", ".")
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, want 1 and %q:\n%s", tc.name, code, tc.want, errOut)
		}
		if after := testutil.Listing(t, h.root); after != before {
			t.Errorf("%s: the failed build changed the store", tc.name)
		}
	}
}

// TestBuildInvalidTag: an invalid -t fails as a usage error before any
// build, leaving the store as it was.
func TestBuildInvalidTag(t *testing.T) {
	h := newHarness(t)
	dir := h.context("FROM base/busybox:1\nRUN echo built > /x\n", map[string]string{})
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tag := range []string{"UPPER", "a:b:c", "", "a b", "x:", "-x", "name@" + dg} {
		before := testutil.Listing(t, h.root)
		_, errOut, code := h.runIn(dir, nil, "build", "--progress", "plain", "-t", "good:1", "-t", tag, ".")
		if code != 2 || !strings.Contains(errOut, "invalid -t") {
			t.Errorf("-t %q: exit %d, want 2 and an invalid -t error:\n%s", tag, code, errOut)
		}
		if strings.Contains(errOut, "RUN echo") {
			t.Errorf("-t %q: the build started:\n%s", tag, errOut)
		}
		if after := testutil.Listing(t, h.root); after != before {
			t.Errorf("-t %q: the store changed:\n%s\n---\n%s", tag, before, after)
		}
	}
}
