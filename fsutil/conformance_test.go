package fsutil

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/builder-dev/builder/internal/testutil"
)

// The conformance cases' COPY lines, run on a busybox root file system, must
// give what Docker BuildKit gave: testdata/golden holds the lines of the
// cases' fs.txt and mtimes.txt for the paths those COPY lines write. RUN and
// WORKDIR steps between them are done here by hand.

// stage is a build stage's state while a case runs: its root and the
// --chown/--user in effect do not matter to COPY, only the roots.
type stage struct {
	t     *testing.T
	root  string
	ctx   string // the build context
	start time.Time
}

func newStage(t *testing.T, ctxNodes ...node) *stage {
	testutil.RequiresRoot(t)
	s := &stage{t: t, root: filepath.Join(t.TempDir(), "rootfs"), ctx: filepath.Join(t.TempDir(), "ctx"), start: time.Now().Add(-time.Second)}
	testutil.BusyboxRootfs(t, s.root)
	// Context files belong to whoever made them; BuildKit resets them to
	// 0:0, so make them someone else's to see that happen.
	for i := range ctxNodes {
		if ctxNodes[i].uid == 0 {
			ctxNodes[i].uid, ctxNodes[i].gid = 1234, 1234
		}
	}
	writeTree(t, s.ctx, ctxNodes...)
	return s
}

// copy runs one COPY/ADD from the context.
func (s *stage) copy(req CopyRequest) {
	s.t.Helper()
	req.SrcRoot, req.DstRoot = s.ctx, s.root
	if err := Copy(context.Background(), req); err != nil {
		s.t.Fatalf("COPY %v %s: %v", req.Sources, req.Dest, err)
	}
}

// copyFrom runs one COPY --from=other.
func (s *stage) copyFrom(other string, req CopyRequest) {
	s.t.Helper()
	req.SrcRoot, req.DstRoot, req.KeepOwners = other, s.root, true
	if err := Copy(context.Background(), req); err != nil {
		s.t.Fatalf("COPY --from %v %s: %v", req.Sources, req.Dest, err)
	}
}

// run does a RUN step's file changes.
func (s *stage) run(nodes ...node) {
	s.t.Helper()
	for i := range nodes {
		if nodes[i].mtime == 0 {
			nodes[i].mtime = time.Now().Unix()
		}
	}
	writeTree(s.t, s.root, nodes...)
}

func (s *stage) path(p string) string { return inRoot(s.t, s.root, p) }

// check compares the stage with the golden files of name. strip names
// paths whose size and sha256 are not compared (a different busybox).
func (s *stage) check(name string, strip ...string) {
	s.t.Helper()
	fsWant, prefixes := readGolden(s.t, name+".fs.txt")
	got := listing(s.t, s.root, prefixes...)
	for _, p := range strip {
		re := regexp.MustCompile(`(?m)^(` + regexp.QuoteMeta(p) + `\t.*?)\tsize=\S+ sha256=\S+$`)
		got, fsWant = re.ReplaceAllString(got, "$1"), re.ReplaceAllString(fsWant, "$1")
	}
	if got != fsWant {
		s.t.Errorf("file system differs from BuildKit's\n got:\n%s\nwant:\n%s", got, fsWant)
	}
	mtWant, _ := readGolden(s.t, name+".mtimes.txt")
	for _, line := range strings.Split(strings.TrimSpace(mtWant), "\n") {
		p, want, _ := strings.Cut(line, "\t")
		if contains(strip, p) {
			continue
		}
		got := mtime(s.t, s.root, p)
		if want == "@build" {
			if got < s.start.Unix() {
				s.t.Errorf("mtime of %s = %d, want a time of the build", p, got)
			}
			continue
		}
		if w, _ := strconv.ParseInt(want, 10, 64); got != w {
			s.t.Errorf("mtime of %s = %d, want %d", p, got, w)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readGolden returns a testdata/golden file without its header line, and
// the prefixes that header names.
func readGolden(t *testing.T, name string) (string, []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := bytes.Cut(b, []byte("\n"))
	_, list, ok := strings.Cut(string(head), "the paths under: ")
	if !ok {
		t.Fatalf("%s: no prefixes in its header", name)
	}
	return string(body), strings.Fields(list)
}

// stageRoot writes another stage's root file system: busybox plus nodes.
func stageRoot(t *testing.T, nodes ...node) string {
	root := filepath.Join(t.TempDir(), "stage")
	testutil.BusyboxRootfs(t, root)
	now := time.Now().Unix()
	for i := range nodes {
		if nodes[i].mtime == 0 {
			nodes[i].mtime = now
		}
	}
	writeTree(t, root, nodes...)
	return root
}

func appendFile(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConformance013CopyChown(t *testing.T) {
	s := newStage(t, file("f.txt", "chown\n"), file("dir/d1", "d1\n"), file("dir/sub/d2", "d2\n"))
	appendFile(t, s.path("/etc/passwd"), "app:x:1000:1001::/home/app:/bin/sh\n")
	appendFile(t, s.path("/etc/group"), "grp:x:1001:\nother:x:3000:\n")
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/c/names.txt", Chown: "app:grp"})
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/c/ids.txt", Chown: "1000:3000"})
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/c/uid-only.txt", Chown: "1000"})
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/c/name-only.txt", Chown: "app"})
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/c/mixed.txt", Chown: "app:3000"})
	s.copy(CopyRequest{Sources: []string{"dir"}, Dest: "/c/dir", Chown: "55:66"})
	s.copy(CopyRequest{Sources: []string{"dir"}, Dest: "/c/newparent/sub/", Chown: "app"})
	s.run(dir("c/existing").withOwner(7, 7))
	s.copy(CopyRequest{Sources: []string{"dir"}, Dest: "/c/existing/", Chown: "8:8"})
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/c/added.txt", Chown: "77:88", Extract: failExtract(t)})
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/c/user-set-no-chown.txt"})
	s.check("013-copy-chown")
}

func TestConformance015CopyFileToDir(t *testing.T) {
	s := newStage(t, file("f.txt", "file to dir\n"))
	s.run(dir("existing-dir"))
	for _, dest := range []string{"/new-with-slash/", "/new-without-slash", "/existing-dir", "/relative-no-workdir.txt", "/nested/a/b/c/renamed.txt", "/etc/passwd"} {
		s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: dest})
	}
	workdir(t, s.root, "/wd")
	// The frontend turns ".", "./sub/" and "../upper.txt" under WORKDIR /wd
	// into these.
	for _, dest := range []string{"/wd/", "/wd/sub/", "/upper.txt"} {
		s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: dest})
	}
	s.copy(CopyRequest{Sources: []string{"../f.txt"}, Dest: "/outside-clamped.txt"})
	s.check("015-copy-file-to-dir")
}

func TestConformance017CopyDirContents(t *testing.T) {
	s := newStage(t, file("src/.dot", "dot\n"), file("src/a", "a\n"), file("src/sub/b", "b\n"), file("src/sub/deeper/c", "c\n"))
	s.copy(CopyRequest{Sources: []string{"src"}, Dest: "/dst1"})
	s.copy(CopyRequest{Sources: []string{"src/"}, Dest: "/dst2/"})
	s.copy(CopyRequest{Sources: []string{"src/sub"}, Dest: "/dst3/"})
	s.copy(CopyRequest{Sources: []string{"."}, Dest: "/all/"})
	s.run(file("existing/keep/old", "old\n"), file("existing/a", "old\n"))
	s.copy(CopyRequest{Sources: []string{"src"}, Dest: "/existing/"})
	s.copy(CopyRequest{Sources: []string{"src/sub/"}, Dest: "/existing/sub"})
	s.check("017-copy-dir-contents")
}

func TestConformance019CopyEmptyDir(t *testing.T) {
	s := newStage(t, dir("empty"), dir("tree/empty-inner").withMode(0o700), file("tree/full/f", "f\n"))
	s.copy(CopyRequest{Sources: []string{"empty"}, Dest: "/empty-copied"})
	s.copy(CopyRequest{Sources: []string{"tree"}, Dest: "/tree"})
	s.copy(CopyRequest{Sources: []string{"."}, Dest: "/all"})
	s.run(file("pre/existing/x", "x\n"))
	s.copy(CopyRequest{Sources: []string{"empty"}, Dest: "/pre/existing/"})
	s.copy(CopyRequest{Sources: []string{"tree/empty-inner"}, Dest: "/pre/new-from-empty/"})
	s.check("019-copy-empty-dir")
}

func TestConformance021CopyDestSymlink(t *testing.T) {
	s := newStage(t, file("f.txt", "new\n"))
	s.run(dir("real/sub"), symlink("abslink", "/real"), symlink("rellink", "real"),
		file("real/file.txt", "old\n"), symlink("filelink", "/real/file.txt"))
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/abslink/"})
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/rellink/sub/"})
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/filelink"})
	workdir(t, s.root, "/abslink/wd")
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/abslink/wd/via-workdir.txt"})
	s.check("021-copy-dest-symlink")
}

func TestConformance023FileModes(t *testing.T) {
	var ctx []node
	for _, m := range []uint32{0o755, 0o700, 0o644, 0o600, 0o444, 0o000, 0o4755, 0o2755, 0o6711, 0o777, 0o640} {
		name := fmt.Sprintf("%04o", m)
		ctx = append(ctx, file("m"+name, name+"\n").withMode(m))
	}
	for _, m := range []uint32{0o755, 0o700, 0o1777, 0o2775, 0o555} {
		name := fmt.Sprintf("%04o", m)
		ctx = append(ctx, dir("d"+name).withMode(m), file("d"+name+"/f", "in\n"))
	}
	s := newStage(t, ctx...)
	s.copy(CopyRequest{Sources: []string{"."}, Dest: "/modes/"})
	// RUN chmod 4711 /modes/m0644 && chmod 1755 /modes/d0755 && chmod 0 /modes/m0600
	for p, m := range map[string]os.FileMode{"/modes/m0644": 0o711 | os.ModeSetuid, "/modes/d0755": 0o755 | os.ModeSticky, "/modes/m0600": 0} {
		if err := os.Chmod(s.path(p), m); err != nil {
			t.Fatal(err)
		}
	}
	s.check("023-file-modes")
}

// dockerignore025 is case 025's .dockerignore, byte for byte.
const dockerignore025 = `# comment line
*.log
!keep.log
secret/
**/*.tmp
build
!build/artifact.bin
docs/**/draft*
.git
/rooted.txt
  spaced-pattern.txt  
sub/../normalized.txt
`

func TestConformance025Dockerignore(t *testing.T) {
	ctx := []node{file(".dockerignore", dockerignore025)}
	for _, f := range []string{"a.log", "keep.log", "keep2.log", "secret.txt", "rooted.txt", "spaced-pattern.txt", "normalized.txt", "x.tmp", ".env", ".hidden"} {
		ctx = append(ctx, file(f, f+"\n"))
	}
	ctx = append(ctx,
		file("secret/key", "key\n"), file("sub/y.tmp", "y\n"), file("sub/deep/z.tmp", "z\n"), file("sub/deep/keep.txt", "keep\n"),
		file("build/artifact.bin", "art\n"), file("build/other.bin", "other\n"),
		file("docs/draft0.md", "d\n"), file("docs/a/draft1.md", "d1\n"), file("docs/a/final.md", "fin\n"), file("docs/b/c/draft2.md", "d2\n"),
		file(".git/HEAD", "ref\n"), file("nested/rooted.txt", "r\n"), file("nested/n.log", "l\n"))
	s := newStage(t, ctx...)
	patterns, err := ReadIgnoreFile(strings.NewReader(dockerignore025))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewIgnoreMatcher(patterns)
	if err != nil {
		t.Fatal(err)
	}
	// Once with pruning of excluded trees, once walking them all: the same.
	for _, descend := range []func(string) bool{m.Descend, nil} {
		s.copy(CopyRequest{Sources: []string{"."}, Dest: "/ctx/", Filter: m.Include, Descend: descend})
		s.copy(CopyRequest{Sources: []string{"*.log"}, Dest: "/logs/", Filter: m.Include, Descend: descend})
		s.check("025-dockerignore")
		for _, p := range []string{"ctx", "logs"} {
			if err := os.RemoveAll(s.path(p)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// stage035 is case 035's build stage: /out made by RUN and chowned.
func stage035(t *testing.T) string {
	return stageRoot(t, dir("out").withOwner(123, 456), file("out/artifact", "built\n").withOwner(123, 456).withMode(0o640),
		dir("out/sub").withOwner(123, 456).withMode(0o700), file("out/sub/s", "s\n").withOwner(123, 456),
		symlink("out/link", "artifact").withOwner(123, 456))
}

func TestConformance035MultistageFromName(t *testing.T) {
	s := newStage(t)
	build := stage035(t)
	s.copyFrom(build, CopyRequest{Sources: []string{"/out"}, Dest: "/copied"})
	s.copyFrom(build, CopyRequest{Sources: []string{"/out/artifact"}, Dest: "/single/"})
	s.copyFrom(build, CopyRequest{Sources: []string{"/out"}, Dest: "/chowned", Chown: "1:1"})
	s.copyFrom(build, CopyRequest{Sources: []string{"/out/link"}, Dest: "/followed-link"})
	s.check("035-multistage-from-name")
}

func TestConformance037MultistageFromImage(t *testing.T) {
	s := newStage(t)
	img := filepath.Join(t.TempDir(), "image")
	testutil.BusyboxRootfs(t, img)
	// The anchor image's files carry this mtime.
	for _, p := range []string{"bin/busybox", "etc/passwd", "etc/group"} {
		tm := time.Unix(1795768330, 0)
		if err := os.Chtimes(filepath.Join(img, p), tm, tm); err != nil {
			t.Fatal(err)
		}
	}
	s.copyFrom(img, CopyRequest{Sources: []string{"/bin/busybox"}, Dest: "/opt/bb"})
	s.copyFrom(img, CopyRequest{Sources: []string{"/etc/passwd", "/etc/group"}, Dest: "/opt/etc/"})
	s.copyFrom(img, CopyRequest{Sources: []string{"/tmp"}, Dest: "/opt/tmp-copy"})
	s.check("037-multistage-from-image", "/opt/bb") // Debian's busybox is not the anchor's
}

func TestConformance043VolumeThenModify(t *testing.T) {
	s := newStage(t, file("f.txt", "copied\n"))
	s.run(file("data/after", "after\n"))
	s.copy(CopyRequest{Sources: []string{"f.txt"}, Dest: "/data/copied.txt"})
	s.check("043-volume-then-modify")
}

func TestConformance055CopyFromStageWildcards(t *testing.T) {
	s := newStage(t)
	build := stageRoot(t, file("out/a.txt", "1\n"), file("out/b.txt", "2\n"), file("out/c.log", "3\n"),
		dir("out/d1").withMode(0o751), file("out/d1/x", "x\n"), file("out/d2/y", "y\n"), dir("out"), dir("out/d2"))
	s.copyFrom(build, CopyRequest{Sources: []string{"/out/*.txt"}, Dest: "/txt/"})
	s.copyFrom(build, CopyRequest{Sources: []string{"/out/d*"}, Dest: "/dirs/"})
	s.copyFrom(build, CopyRequest{Sources: []string{"/out/"}, Dest: "/whole/"})
	s.check("055-copy-from-stage-wildcards")
}

// failExtract is an ADD extractor for sources that are not archives: it
// must not be called.
func failExtract(t *testing.T) func(context.Context, io.Reader, string) error {
	return func(context.Context, io.Reader, string) error {
		t.Errorf("Extract called for a file that is no archive")
		return nil
	}
}
