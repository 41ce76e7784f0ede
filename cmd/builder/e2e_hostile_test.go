package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Hostile contexts and archives must never read or write outside the
// context and the store.
func TestHostileInputsStayInside(t *testing.T) {
	h := newHarness(t)
	outside := t.TempDir() // stands for "the host": nothing may appear here
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	evil := tarFile(t, []tar.Header{
		{Name: "../../escape-dotdot", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "/escape-abs", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside},
		{Name: "link/through-link", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "hard", Typeflag: tar.TypeLink, Linkname: secret},
	}, map[string]string{"../../escape-dotdot": "x", "/escape-abs": "x", "link/through-link": "x"})

	parent := t.TempDir()
	ctxDir := filepath.Join(parent, "ctx")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "outside"), []byte("outside the context\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Dockerfile": `FROM base/busybox:1
COPY ../outside /copied-outside
COPY etclink/ /etc-copy/
ADD evil.tar /evil/
RUN ls -la /evil > /evil-list
`,
		"evil.tar": string(evil),
		"outside":  "the context's own file\n",
	}
	for p, body := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink to the host's /etc: its target resolves inside the context,
	// where etc/ holds only a harmless file.
	if err := os.Symlink("/etc", filepath.Join(ctxDir, "etclink")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ctxDir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "etc", "in-context"), []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	_, errOut, code := h.run("build", "-t", "hostile:1", ctxDir)
	if code == 0 {
		if out := h.runImage("hostile:1", "cat", "/copied-outside"); out != "the context's own file\n" {
			t.Errorf("COPY ../outside read %q, want the context's file", out)
		}
		if out := h.runImage("hostile:1", "ls", "/etc-copy"); strings.Contains(out, "passwd") || out != "in-context\n" {
			t.Errorf("COPY through a symlink to /etc read the host: %q", out)
		}
		if out := h.runImage("hostile:1", "sh", "-c", "cat /evil/hard 2>/dev/null; true"); strings.Contains(out, "host secret") {
			t.Error("a hardlink entry exposed a host file")
		}
	} else if strings.Contains(errOut, "panic") {
		t.Fatalf("build panicked:\n%s", errOut)
	}
	// Whatever the outcome, nothing was written outside.
	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("files appeared outside: %v", entries)
	}
	for _, p := range []string{filepath.Join(parent, "escape-dotdot"), filepath.Join(filepath.Dir(parent), "escape-dotdot"), "/escape-abs", "/escape-dotdot", filepath.Join(outside, "through-link")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was written outside the store", p)
			os.Remove(p)
		}
	}
}
