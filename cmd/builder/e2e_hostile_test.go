package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-dev/builder/internal/testutil"
)

// hostileWorld is a temporary directory standing for "the host": nothing
// may be read from or written into it by a build.
type hostileWorld struct {
	dir    string
	secret string
}

func newHostileWorld(t *testing.T) hostileWorld {
	t.Helper()
	w := hostileWorld{dir: t.TempDir()}
	w.secret = filepath.Join(w.dir, "secret")
	if err := os.WriteFile(w.secret, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// untouched fails t when anything but the secret appeared in the world.
func (w hostileWorld) untouched(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("files appeared outside the store and the context: %v", entries)
	}
	if b, err := os.ReadFile(w.secret); err != nil || string(b) != "host secret\n" {
		t.Errorf("host file changed: %q %v", b, err)
	}
}

// COPY sources that leave the context resolve inside it, as in Docker.
func TestHostileCopySourcesStayInContext(t *testing.T) {
	h := newHarness(t)
	parent := t.TempDir()
	ctxDir := filepath.Join(parent, "ctx")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(ctxDir, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(parent, "outside"), []byte("outside the context\n"), 0o644))
	must(os.WriteFile(filepath.Join(ctxDir, "outside"), []byte("the context's own file\n"), 0o644))
	must(os.WriteFile(filepath.Join(ctxDir, "etc", "in-context"), []byte("ok\n"), 0o644))
	// A symlink to the host's /etc: it resolves inside the context.
	must(os.Symlink("/etc", filepath.Join(ctxDir, "etclink")))
	must(os.Symlink("../outside", filepath.Join(ctxDir, "uplink")))
	must(os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(`FROM base/busybox:1
COPY ../outside /copied-outside
COPY etclink/ /etc-copy/
COPY uplink /uplink-copy
`), 0o644))
	h.build(ctxDir, "hostile:copy")
	if out := h.runImage("hostile:copy", "cat", "/copied-outside", "/uplink-copy"); out != "the context's own file\nthe context's own file\n" {
		t.Errorf("COPY of paths leaving the context read %q, want the context's own file twice", out)
	}
	if out := h.runImage("hostile:copy", "ls", "/etc-copy"); out != "in-context\n" {
		t.Errorf("COPY through a symlink to /etc read the host: %q", out)
	}
}

// Hostile ADD archives never write outside the image's root.
func TestHostileArchivesStayInRoot(t *testing.T) {
	h := newHarness(t)
	world := newHostileWorld(t)
	cases := map[string][]testutil.TarEntry{
		"dotdot":   {{Name: "../../../../../../" + world.dir[1:] + "/dotdot", Body: "x"}},
		"absolute": {{Name: world.dir + "/absolute", Body: "x"}},
		"symlink then write through": {
			{Name: "link", Type: tar.TypeSymlink, Linkname: world.dir},
			{Name: "link/through", Body: "x"},
		},
		"relative symlink then write through": {
			{Name: "up", Type: tar.TypeSymlink, Linkname: "../../../../../../../../" + world.dir[1:]},
			{Name: "up/through-rel", Body: "x"},
		},
		"hardlink to host file": {{Name: "hard", Type: tar.TypeLink, Linkname: world.secret}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			ctxDir := t.TempDir()
			if err := os.WriteFile(filepath.Join(ctxDir, "evil.tar"), testutil.Tar(t, entries...), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM base/busybox:1\nADD evil.tar /evil/\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := h.run("build", "-t", "hostile:add", ctxDir)
			if strings.Contains(errOut, "panic") {
				t.Fatalf("build panicked:\n%s", errOut)
			}
			if code == 0 {
				// Accepted: then the entries landed inside the image.
				out := h.mustRun("run", "--rm", "hostile:add", "sh", "-c", "cat /evil/hard 2>/dev/null; find / -xdev -name through -o -xdev -name through-rel -o -xdev -name absolute -o -xdev -name dotdot | grep -v ^/proc")
				if strings.Contains(out, "host secret") {
					t.Error("a hardlink entry exposed a host file")
				}
				t.Logf("accepted, inside the image: %q", out)
			} else {
				t.Logf("refused: %s", lastLine(errOut))
			}
			world.untouched(t)
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
