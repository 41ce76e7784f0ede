package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-dev/builder/internal/testutil"
)

// builderBin is the binary under test, built once by TestMain with
// builder-init next to it, as `make build` installs them, so the tests drive
// the real executables.
var builderBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "builder-e2e-")
	if err != nil {
		panic(err)
	}
	builderBin = filepath.Join(dir, "builder")
	build := exec.Command("go", "build", "-o", dir+"/", ".", "../builder-init")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// harness is one store root with a busybox base image named base/busybox:1.
type harness struct {
	t    *testing.T
	root string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	testutil.RequiresRoot(t)
	h := &harness{t: t, root: t.TempDir()}
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	h.mustRun("import", "--change", `CMD ["sh"]`, rootfs, "base/busybox:1")
	return h
}

// run runs the builder with the harness's root and returns stdout, stderr
// and the exit code.
func (h *harness) run(args ...string) (string, string, int) {
	h.t.Helper()
	cmd := exec.Command(builderBin, append([]string{"--root", h.root}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatalf("run builder %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func (h *harness) mustRun(args ...string) string {
	h.t.Helper()
	out, errOut, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("builder %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// context writes files (path -> content) into a new context dir with the
// Dockerfile.
func (h *harness) context(dockerfile string, files map[string]string) string {
	h.t.Helper()
	dir := h.t.TempDir()
	files["Dockerfile"] = dockerfile
	for p, body := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	return dir
}

func (h *harness) build(dir, tag string, extra ...string) string {
	h.t.Helper()
	return h.mustRun(append(append([]string{"build", "-t", tag}, extra...), dir)...)
}

func (h *harness) runImage(tag string, args ...string) string {
	h.t.Helper()
	return h.mustRun(append([]string{"run", "--rm", tag}, args...)...)
}
