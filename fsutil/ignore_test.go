package fsutil

import (
	"strings"
	"testing"
)

func TestIgnoreMatcher(t *testing.T) {
	patterns, err := ReadIgnoreFile(strings.NewReader(dockerignore025))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewIgnoreMatcher(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rel   string
		isDir bool
		keep  bool
	}{
		{"a.log", false, false},
		{"keep.log", false, true},
		{"nested/n.log", false, true}, // *.log is for the root only
		{"secret", true, false},
		{"secret/key", false, false}, // below an excluded dir
		{"secret.txt", false, true},
		{"x.tmp", false, false}, // **/ matches no directory too
		{"sub/deep/z.tmp", false, false},
		{"build", true, false},
		{"build/artifact.bin", false, true},
		{"build/other.bin", false, false},
		{"docs/draft0.md", false, false},
		{"docs/b/c/draft2.md", false, false},
		{"docs/a/final.md", false, true},
		{".git", true, false},
		{".git/HEAD", false, false},
		{"rooted.txt", false, false}, // leading "/" stripped
		{"nested/rooted.txt", false, true},
		{"spaced-pattern.txt", false, false}, // spaces trimmed
		{"normalized.txt", false, false},     // sub/../ cleaned
		{".dockerignore", false, true},
	} {
		if got := m.Include(tc.rel, tc.isDir); got != tc.keep {
			t.Errorf("Include(%q) = %v, want %v", tc.rel, got, tc.keep)
		}
	}
	for rel, want := range map[string]bool{
		"build":  true,  // !build/artifact.bin reaches below it
		"secret": false, // no exception does
		".git":   false,
	} {
		if got := m.Descend(rel); got != want {
			t.Errorf("Descend(%q) = %v, want %v", rel, got, want)
		}
	}
}

func TestIgnoreDescendWildcards(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		dir      string
		want     bool
	}{
		// BuildKit (Docker 20.10) walks an excluded directory only for an
		// exception that names it as written: wildcards do not count.
		{[]string{"*", "!*/keep"}, "a", false},
		{[]string{"*", "!a/b/keep"}, "a", true},
		{[]string{"*", "!a/b/keep"}, "a/b", true},
		{[]string{"*", "!a/b/keep"}, "c", false},
		{[]string{"*", "!a/b/keep"}, "a/c", false},
		{[]string{"*", "!a/b/keep"}, "a/bb", false},
		{[]string{"*", "!**/keep"}, "x/y", false},
		{[]string{"*", "!src/**/*.go"}, "src", true},
		{[]string{"*", "!src/**/*.go"}, "src/sub", false},
		{[]string{"*", "!a"}, "a/b", false},
		{[]string{"a/b"}, "a/b", false},
	} {
		m, err := NewIgnoreMatcher(tc.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Descend(tc.dir); got != tc.want {
			t.Errorf("%v: Descend(%q) = %v, want %v", tc.patterns, tc.dir, got, tc.want)
		}
	}
	if _, err := NewIgnoreFilter([]string{"!"}); err == nil {
		t.Error(`NewIgnoreFilter("!"): want an error`)
	}
}

func TestCopyIgnored(t *testing.T) {
	ctx := []node{
		file("secret/key", "a\n"), symlink("tosecret", "secret/key"), file("pub", "a\n"), symlink("excludedlink", "pub"),
		file("build/other.bin", "a\n"), dir("empty-excluded"),
	}
	filter, err := NewIgnoreFilter([]string{"secret", "excludedlink", "build", "!build/artifact.bin", "empty-excluded"})
	if err != nil {
		t.Fatal(err)
	}
	runCopyCases(t, []copyCase{{
		name: "ignored source is missing", src: ctx,
		req: CopyRequest{Sources: []string{"secret/key"}, Dest: "/o", Filter: filter}, wantErr: "/secret/key",
	}, {
		name: "symlink to an ignored file dangles", src: ctx,
		req: CopyRequest{Sources: []string{"tosecret"}, Dest: "/o", Filter: filter}, wantErr: "/tosecret",
	}, {
		name: "ignored symlink is missing", src: ctx,
		req: CopyRequest{Sources: []string{"excludedlink"}, Dest: "/o", Filter: filter}, wantErr: "/excludedlink",
	}, {
		name: "excluded dir whose exception matches nothing is gone", src: ctx,
		req: CopyRequest{Sources: []string{"."}, Dest: "/o/", Filter: filter}, prefixes: []string{"/o"},
		want: "/o\td\t0755\t0:0\n/o/pub\tf\t0644\t0:0\t" + shaA + "\n/o/tosecret\tl\t-\t0:0\t-> secret/key\n",
	}, {
		name: "wildcards skip ignored paths", src: ctx,
		req:      CopyRequest{Sources: []string{"*/*"}, Dest: "/o/", Filter: filter},
		prefixes: []string{"/o"},
		want:     "",
	}})
}

// The context BuildKit sends for a .dockerignore with exceptions below
// excluded directories, as Docker 20.10 built it: an excluded directory an
// exception names is sent even when empty, and "**" in an exception does
// not reach into directories the pattern does not name.
func TestCopyIgnoredAsBuildKit(t *testing.T) {
	patterns := []string{"*", "!keep", "!src/**/*.go", "!**/important.md", "docs/**", "!special.tmp", "*.tmp",
		"!other.tmp", "**/cache", "!nothingdir/missing.txt", "!lib/cache/allowed.txt"}
	m, err := NewIgnoreMatcher(patterns)
	if err != nil {
		t.Fatal(err)
	}
	var ctx []node
	for _, f := range []string{"keep/k", "keep/sub/ks", "src/a.go", "src/sub/b.go", "src/c.txt", "important.md",
		"docs/important.md", "docs/deep/important.md", "docs/other.md", "special.tmp", "other.tmp",
		"lib/cache/allowed.txt", "lib/cache/denied.txt", "a/cache/z", "top.txt", "nothingdir/other.txt"} {
		ctx = append(ctx, file(f, "x\n"))
	}
	d := func(p string) string { return "/o/" + p + "\td\t0755\t0:0\n" }
	f := func(p string) string { return "/o/" + p + "\tf\t0644\t0:0\t" + shaX + "\n" }
	runCopyCases(t, []copyCase{{
		name: "dockerignore edge cases", src: ctx,
		req:      CopyRequest{Sources: []string{"."}, Dest: "/o/", Filter: m.Include, Descend: m.Descend},
		prefixes: []string{"/o"},
		want: "/o\td\t0755\t0:0\n" + f("important.md") + d("keep") + f("keep/k") + d("keep/sub") + f("keep/sub/ks") +
			d("lib") + d("lib/cache") + f("lib/cache/allowed.txt") + d("nothingdir") + f("other.tmp") +
			d("src") + f("src/a.go"),
	}})
}
