package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// badCall is one bad invocation and what it must give: exit code 2 when
// it is a usage error, else any non-zero code.
type badCall struct {
	args  []string
	usage bool
	// stderr, if set, must be in the error message.
	stderr string
}

// storeListing is everything a command could change in a root: each
// file's path, mode, size and (when small) content digest, meta.db aside
// (its pages change on any read-write open), and what lives in meta.db as
// the CLI shows it: containers and cache records.
func (h *harness) storeListing() string {
	h.t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(h.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(h.root, p)
		if rel == "meta.db" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			fmt.Fprintf(&b, "%s/ %v\n", rel, fi.Mode())
			return nil
		}
		sum := ""
		if fi.Mode().IsRegular() && fi.Size() < 1<<20 {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = digest.FromBytes(data).Encoded()[:12]
		}
		fmt.Fprintf(&b, "%s %v %d %s\n", rel, fi.Mode(), fi.Size(), sum)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, args := range [][]string{{"ps", "-a", "--no-trunc"}, {"cache", "ls", "--no-trunc"}} {
		out, errOut, code := h.runBounded(args...)
		if code != 0 {
			h.t.Fatalf("builder %v: exit %d\n%s", args, code, errOut)
		}
		// Only the IDs and keys, not how long ago.
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				b.WriteString(f[0] + "\n")
			}
		}
	}
	return b.String()
}

// runBounded is run with a deadline: a bad invocation must fail, not hang.
func (h *harness) runBounded(args ...string) (string, string, int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, builderBin, append([]string{"--root", h.root}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		h.t.Errorf("builder %q hung", args)
		return stdout.String(), stderr.String(), -1
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	if err != nil {
		h.t.Fatalf("run builder %q: %v", args, err)
	}
	return stdout.String(), stderr.String(), 0
}

// checkBad runs each call and checks its exit code and message, and that
// the store is as it was.
func (h *harness) checkBad(calls []badCall) {
	h.t.Helper()
	before := h.storeListing()
	for _, c := range calls {
		_, errOut, code := h.runBounded(c.args...)
		switch {
		case code == 0:
			h.t.Errorf("builder %q succeeded", c.args)
		case c.usage && code != 2:
			h.t.Errorf("builder %q: exit %d, want 2 (usage)\n%s", c.args, code, errOut)
		case strings.TrimSpace(errOut) == "":
			h.t.Errorf("builder %q: exit %d and nothing on stderr", c.args, code)
		case strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine"):
			h.t.Errorf("builder %q panicked:\n%s", c.args, errOut)
		case c.stderr != "" && !strings.Contains(errOut, c.stderr):
			h.t.Errorf("builder %q: stderr lacks %q:\n%s", c.args, c.stderr, errOut)
		}
		if after := h.storeListing(); after != before {
			h.t.Errorf("builder %q changed the store:\n%s", c.args, listingDiff(before, after))
			before = after
		}
	}
}

func listingDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBadCLI drives bad invocations of every command: wrong argument
// counts, unknown flags, bad values, empty strings, paths with spaces,
// missing files, directories where files belong. Each fails with a
// message, exit 2 for usage errors, no panic, and leaves the store as it
// was.
func TestBadCLI(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	dir := h.context("FROM base/busybox:1\nRUN echo one > /one\n", map[string]string{})
	h.build(dir, "app:1")
	// A stopped container for the container commands, which also unpacks
	// the image: from here on nothing a bad call does may add a layer.
	h.mustRun("run", "--name", "keep1", "base/busybox:1", "true")

	spaced := filepath.Join(t.TempDir(), "with space")
	if err := os.MkdirAll(spaced, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(spaced, "no such file")
	notTar := filepath.Join(spaced, "not a tar.txt")
	badEnv := filepath.Join(spaced, "bad env")
	for p, body := range map[string]string{notTar: "hello\n", badEnv: "=x\n"} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	digestRef := "app@sha256:" + strings.Repeat("0", 64)
	img := "base/busybox:1"

	calls := []badCall{
		// The root command.
		{args: []string{"bogus"}, usage: true, stderr: "unknown command"},
		{args: []string{"--bogus"}, usage: true},
		{args: []string{""}, usage: true},
		{args: []string{"--root", notTar, "images"}},
		{args: []string{"--root"}, usage: true},
		// images, inspect, history.
		{args: []string{"images", "extra"}, usage: true},
		{args: []string{"pull", "Foo/Bar"}, usage: true, stderr: "invalid reference"},
		{args: []string{"push", "a b"}, usage: true, stderr: "invalid reference"},
		{args: []string{"pull"}, usage: true},
		{args: []string{"push", "nothing/here:1"}, stderr: "push nothing/here:1: no such image in the store"},
		{args: []string{"images", "--bogus"}, usage: true},
		{args: []string{"images", "-q", "extra"}, usage: true},
		{args: []string{"inspect", "--bogus", "app:1"}, usage: true},
		{args: []string{"inspect"}, usage: true},
		{args: []string{"inspect", "nosuch"}},
		{args: []string{"inspect", ""}},
		{args: []string{"inspect", "app:1", "nosuch"}},
		{args: []string{"history"}, usage: true},
		{args: []string{"history", "app:1", "extra"}, usage: true},
		{args: []string{"history", "nosuch"}},
		{args: []string{"history", "with space"}},
		// tag: the target is checked before anything else.
		{args: []string{"tag"}, usage: true},
		{args: []string{"tag", "app:1"}, usage: true},
		{args: []string{"tag", "app:1", "x:1", "y:1"}, usage: true},
		{args: []string{"tag", "app:1", "Bad:Ref"}, usage: true},
		{args: []string{"tag", "app:1", ""}, usage: true},
		{args: []string{"tag", "app:1", "with space:1"}, usage: true},
		{args: []string{"tag", "app:1", "a:b:c"}, usage: true},
		{args: []string{"tag", "app:1", digestRef}, usage: true, stderr: "digest"},
		{args: []string{"tag", "nosuch", "Bad Ref"}, usage: true},
		{args: []string{"tag", "nosuch", "x:1"}, stderr: "no such image"},
		{args: []string{"tag", "", "x:1"}},
		// rmi.
		{args: []string{"rmi"}, usage: true},
		{args: []string{"rmi", "--bogus", "app:1"}, usage: true},
		{args: []string{"rmi", "nosuch"}, stderr: "no such image"},
		{args: []string{"rmi", ""}},
		{args: []string{"rmi", "with space"}},
		// load, save, import.
		{args: []string{"load", "extra"}, usage: true},
		{args: []string{"load", "-i"}, usage: true},
		{args: []string{"load"}},
		{args: []string{"load", "-i", missing}},
		{args: []string{"load", "-i", spaced}},
		{args: []string{"load", "-i", notTar}},
		{args: []string{"save"}, usage: true},
		{args: []string{"save", "--format", "zip", "app:1"}, usage: true},
		{args: []string{"save", "-o", filepath.Join(spaced, "x.tar"), "nosuch"}},
		{args: []string{"save", "-o", filepath.Join(missing, "x.tar"), "app:1"}},
		{args: []string{"save", "-o", spaced, "app:1"}},
		{args: []string{"import"}, usage: true},
		{args: []string{"import", spaced, "x:1", "extra"}, usage: true},
		{args: []string{"import", "--change", "RUN true", spaced, "x:1"}, usage: true},
		{args: []string{"import", missing, "x:1"}},
		{args: []string{"import", spaced, "Bad Ref"}},
		{args: []string{"import", "", "x:1"}},
		// run: every bad flag fails before a container exists.
		{args: []string{"run"}, usage: true},
		{args: []string{"run", "--bogus", img}, usage: true},
		// No -p: a container has the host's network or none, nothing to publish.
		{args: []string{"run", "-p", "80:80", img, "true"}, usage: true},
		{args: []string{"run", "-e", "", img, "true"}, usage: true, stderr: "invalid environment variable"},
		{args: []string{"run", "-e", "=x", img, "true"}, usage: true, stderr: "invalid environment variable"},
		{args: []string{"run", "--env-file", missing, img, "true"}, usage: true},
		{args: []string{"run", "--env-file", spaced, img, "true"}, usage: true},
		{args: []string{"run", "--env-file", badEnv, img, "true"}, usage: true},
		{args: []string{"run", "-v", "", img, "true"}, usage: true},
		{args: []string{"run", "-v", ":", img, "true"}, usage: true},
		{args: []string{"run", "-v", "rel:/x", img, "true"}, usage: true},
		{args: []string{"run", "-v", "/tmp:rel", img, "true"}, usage: true},
		{args: []string{"run", "-v", "/tmp:/", img, "true"}, usage: true},
		{args: []string{"run", "-v", "/tmp:/x:bogus", img, "true"}, usage: true},
		{args: []string{"run", "-v", missing + ":/x", img, "true"}, usage: true, stderr: "bind source path"},
		{args: []string{"run", "--tmpfs", "", img, "true"}, usage: true},
		{args: []string{"run", "--tmpfs", "rel", img, "true"}, usage: true},
		{args: []string{"run", "--memory", "abc", img, "true"}, usage: true},
		{args: []string{"run", "--memory", "1k", img, "true"}, usage: true},
		{args: []string{"run", "--memory", "", img, "true"}},
		{args: []string{"run", "--cpus", "-1", img, "true"}, usage: true},
		{args: []string{"run", "--cpus", "abc", img, "true"}, usage: true},
		{args: []string{"run", "--cpus", "100000", img, "true"}, usage: true},
		{args: []string{"run", "--cpus", "0.001", img, "true"}, usage: true},
		{args: []string{"run", "--pids-limit", "-5", img, "true"}, usage: true},
		{args: []string{"run", "--pids-limit", "x", img, "true"}, usage: true},
		{args: []string{"run", "--name", "bad name!", img, "true"}, usage: true, stderr: "invalid container name"},
		{args: []string{"run", "--name", "x", img, "true"}, usage: true},
		{args: []string{"run", "--name", "/keep1", img, "true"}, usage: true},
		{args: []string{"run", "--name", "keep1", img, "true"}, stderr: "already in use"},
		{args: []string{"run", "--hostname", strings.Repeat("h", 65), img, "true"}, usage: true},
		{args: []string{"run", "--network", "bogus", img, "true"}, usage: true},
		{args: []string{"run", "-w", "relative", img, "true"}, usage: true},
		{args: []string{"run", "nosuch"}, stderr: "unable to find image"},
		{args: []string{"run", ""}},
		{args: []string{"run", "with space"}},
		{args: []string{"run", "--entrypoint", "", "--rm", img}},
		{args: []string{"run", "-it", img, "true"}, stderr: "not a TTY"},
		// Known only once it starts: the container is removed again.
		{args: []string{"run", "-u", "nosuch", img, "true"}, stderr: "nosuch"},
		{args: []string{"run", "-d", "-u", "nosuch", img, "true"}, stderr: "nosuch"},
		{args: []string{"run", "--rm", "-u", "nosuch", img, "true"}, stderr: "nosuch"},
		{args: []string{"run", "-v", notTar + ":/bin", img, "true"}},
		// ps and the container commands.
		{args: []string{"ps", "extra"}, usage: true},
		{args: []string{"ps", "--format", "yaml"}, usage: true},
		{args: []string{"start"}, usage: true},
		{args: []string{"start", "-a", "keep1", "nosuch"}, usage: true},
		{args: []string{"start", "nosuch"}, stderr: "no such container"},
		{args: []string{"start", ""}},
		{args: []string{"start", "-i", "nosuch"}},
		{args: []string{"stop"}, usage: true},
		{args: []string{"stop", "-t", "abc", "keep1"}, usage: true},
		{args: []string{"stop", "nosuch"}, stderr: "no such container"},
		{args: []string{"stop", "-t", "-5", "nosuch"}},
		{args: []string{"rm"}, usage: true},
		{args: []string{"rm", "nosuch"}, stderr: "no such container"},
		{args: []string{"rm", "with space"}},
		{args: []string{"logs"}, usage: true},
		{args: []string{"logs", "keep1", "extra"}, usage: true},
		{args: []string{"logs", "nosuch"}},
		{args: []string{"logs", "-f", "nosuch"}},
		{args: []string{"diff"}, usage: true},
		{args: []string{"diff", "nosuch"}},
		{args: []string{"commit"}, usage: true},
		{args: []string{"commit", "keep1", "x:1", "extra"}, usage: true},
		{args: []string{"commit", "nosuch"}},
		{args: []string{"commit", "keep1", "Bad:Ref"}, usage: true},
		{args: []string{"commit", "-c", "BOGUS x", "keep1"}},
		// cache.
		{args: []string{"cache"}, usage: true},
		{args: []string{"cache", "bogus"}, usage: true},
		{args: []string{"cache", "ls", "extra"}, usage: true},
		{args: []string{"cache", "du", "--format", "yaml"}, usage: true},
		{args: []string{"cache", "ls", "--format", ""}, usage: true},
		{args: []string{"cache", "prune", "--keep-storage", "-1"}, usage: true},
		{args: []string{"cache", "prune", "--keep-storage", ""}, usage: true},
		{args: []string{"cache", "prune", "--filter", "until="}, usage: true},
		{args: []string{"cache", "prune", "--format", "yaml"}, usage: true},
		// build (not its -t and -f, whose checks are made elsewhere).
		{args: []string{"build"}, usage: true},
		{args: []string{"build", dir, "extra"}, usage: true},
		{args: []string{"build", "--bogus", dir}, usage: true},
		{args: []string{"build", missing}},
		{args: []string{"build", "--progress", "bogus", dir}, usage: true},
		{args: []string{"build", "--target", "nosuch", dir}, stderr: "nosuch"},
		{args: []string{"build", "--network", "bogus", dir}, usage: true},
		{args: []string{"build", "--build-arg", "", dir}, usage: true},
		{args: []string{"build", "-o", "type=bogus,dest=x", dir}, usage: true},
	}
	h.checkBad(calls)
	// The container made before is still there, and still starts.
	if out := h.mustRun("start", "-a", "keep1"); out != "" {
		t.Errorf("start keep1: %q", out)
	}
}

// TestRunBadInputLeavesNothing: on a store where nothing was ever run, a
// run with bad input fails before anything is made: no container, no
// unpacked layer, no writable layer, no run directory.
func TestRunBadInputLeavesNothing(t *testing.T) {
	h := newHarness(t)
	h.cleanupContainers()
	img := "base/busybox:1"
	missing := filepath.Join(t.TempDir(), "none")
	var calls []badCall
	for _, flags := range [][]string{
		{"-e", ""}, {"-e", "=x"}, {"-v", missing + ":/x"}, {"-v", "/tmp"}, {"--memory", "abc"},
		{"--cpus", "-1"}, {"--pids-limit", "-5"}, {"--name", "bad name!"}, {"--workdir", "relative"},
		{"--hostname", strings.Repeat("h", 65)}, {"--tmpfs", "rel"}, {"--env-file", missing},
	} {
		calls = append(calls, badCall{args: append(append([]string{"run"}, flags...), img, "true"), usage: true})
	}
	calls = append(calls, badCall{args: []string{"run", "nosuch", "true"}})
	h.checkBad(calls)
	if out := h.mustRun("ps", "-a", "-q"); out != "" {
		t.Errorf("ps -a: %q", out)
	}
	for _, d := range []string{"containers", "snapshots/sha256", "snapshots/active"} {
		if entries, err := os.ReadDir(filepath.Join(h.root, d)); len(entries) != 0 {
			t.Errorf("%s holds %d entries (%v)", d, len(entries), err)
		}
	}
}
