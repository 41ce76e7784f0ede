package depcheck

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/builder-dev/builder"

// layering says, for each package pattern, which of the module's packages
// it may import: packages import downward only. A pattern "x/..." is x and
// every package under it; the longest pattern that matches a package is its
// rule. Test files are not checked (a test may reach up for a round trip).
var layering = []struct {
	pkg     string
	imports []string
}{
	{"cmd/...", []string{"..."}}, // parses flags, wires and prints
	{"cmd/builder-init", []string{"runner/..."}},
	{"bench/...", []string{"..."}}, // gobench imports what it measures
	{"bench/benchtool", nil},       // a harness tool, not part of builder

	{"frontend/...", []string{"solver/graph", "internal/..."}},
	{"progress", []string{"solver", "solver/graph", "internal/..."}},

	{"solver/ops/...", []string{"solver", "solver/graph", "runner/...", "snapshot/...", "fsutil/...", "source/...", "store/...", "internal/..."}},
	{"solver", []string{"solver/graph", "store/...", "internal/..."}},
	{"solver/graph", nil},

	// The edges: images in, results out.
	{"source/...", []string{"snapshot/...", "store/...", "fsutil/...", "internal/..."}},
	{"exporter/...", []string{"snapshot/...", "store/...", "fsutil/...", "internal/..."}},

	// Beside the solver, never above it.
	{"container/...", []string{"runner/...", "snapshot/...", "store/...", "fsutil/...", "internal/..."}},
	{"gc/...", []string{"runner/...", "snapshot/...", "store/...", "fsutil/...", "internal/..."}},
	// The rmi policy: the store's images and the containers that use them.
	{"images/...", []string{"container", "store/...", "internal/..."}},

	{"snapshot", []string{"snapshot/archive", "internal/..."}},
	{"snapshot/archive", []string{"internal/..."}},
	{"fsutil", []string{"internal/..."}},
	// Its records are in the metadata database, taken as a meta.DB.
	{"fsutil/statcache", []string{"fsutil", "store/meta", "internal/..."}},
	{"runner", []string{"runner/seccomp", "internal/..."}},
	{"runner/seccomp", []string{"internal/..."}},
	{"store/...", []string{"store/...", "internal/..."}},
	{"store/meta", nil}, // bbolt only: a leaf that statcache and containers take

	// The standard library and third-party modules only; and
	// internal/unixutil, the one EINTR retry, which the leaves that make
	// raw system calls share.
	{"internal/...", []string{"internal/unixutil"}},
	{"internal/unixutil", nil},
	// Registry transport over go-containerregistry; source pulls and
	// exporter pushes with it.
	{"internal/registry", nil},
}

// matches reports whether the package p (relative to the module) is
// pattern or, for "x/...", under x; "..." matches every package.
func matches(pattern, p string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return p == base || strings.HasPrefix(p, base+"/")
	}
	return p == pattern
}

// rule is the longest layering pattern that matches p.
func rule(p string) (pattern string, imports []string, ok bool) {
	for _, r := range layering {
		if matches(r.pkg, p) && len(r.pkg) > len(pattern) {
			pattern, imports, ok = r.pkg, r.imports, true
		}
	}
	return pattern, imports, ok
}

// allowed reports whether a package with this rule may import imp.
func allowed(imports []string, imp string) bool {
	return slices.ContainsFunc(imports, func(pattern string) bool { return matches(pattern, imp) })
}

// goList returns each of the module's packages (relative paths) with the
// module's packages it imports, test files left out.
func goList(t *testing.T) map[string][]string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		p, ok := strings.CutPrefix(fields[0], module+"/")
		if !ok {
			continue // the module root, if it ever has a package
		}
		var own []string
		for _, imp := range fields[1:] {
			if rel, ok := strings.CutPrefix(imp, module+"/"); ok {
				own = append(own, rel)
			}
		}
		pkgs[p] = own
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list found no package:\n%s", out)
	}
	return pkgs
}

func TestImportDirection(t *testing.T) {
	pkgs := goList(t)
	names := make([]string, 0, len(pkgs))
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		pattern, imports, ok := rule(p)
		if !ok {
			t.Errorf("package %s has no row in the layering table of %s: say what it may import", p, "internal/depcheck/depcheck_test.go")
			continue
		}
		for _, imp := range pkgs[p] {
			if allowed(imports, imp) {
				continue
			}
			t.Errorf("%s imports %s: against the layering (%s may import only %s)", p, imp, pattern, describe(imports))
		}
	}
}

func describe(imports []string) string {
	if len(imports) == 0 {
		return "the standard library and third-party modules"
	}
	return strings.Join(imports, ", ") + " (and the standard library and third-party modules)"
}

// The rules themselves: longest match, subtrees, and leaves.
func TestRule(t *testing.T) {
	for _, tc := range []struct {
		pkg, imp string
		want     bool
	}{
		{"solver", "solver/graph", true},
		{"solver", "runner", false},
		{"solver/ops", "runner", true},
		{"solver/ops/exec", "source", true},
		{"solver/graph", "internal/user", false},
		{"source", "exporter", false},
		{"exporter", "source", false},
		{"exporter", "snapshot/archive", true},
		{"container", "solver", false},
		{"gc", "solver", false},
		{"store", "store/cache", true},
		{"store/cache", "snapshot", false},
		{"internal/mount", "store", false},
		{"cmd/builder", "solver", true},
		{"cmd/builder-init", "runner", true},
		{"cmd/builder-init", "store", false},
		{"bench/gobench", "store", true},
		{"bench/benchtool", "store", false},
		{"images", "container", true},
		{"images", "solver", false},
		{"fsutil/statcache", "fsutil", true},
		{"fsutil", "fsutil/statcache", false},
		{"fsutil/statcache", "store/meta", true},
		{"fsutil/statcache", "store", false},
		{"store/meta", "store", false},
	} {
		_, imports, ok := rule(tc.pkg)
		if got := ok && allowed(imports, tc.imp); got != tc.want {
			t.Errorf("%s -> %s allowed = %v, want %v", tc.pkg, tc.imp, got, tc.want)
		}
	}
}
