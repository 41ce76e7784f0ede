package archive

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzApply from fuzzSeeds")

// Fuzz modes: the second argument of FuzzApply picks the options.
const (
	fuzzRoot    uint8 = iota // onto a full root: whiteouts delete
	fuzzOverlay              // a layer dir in overlay form
	fuzzADD                  // ADD of a user's tar: no whiteouts
	fuzzModes                // how many there are

	fuzzChown uint8 = 4 // a bit on top of a mode: Chown to 1000:1000
)

// fuzzOptions turns FuzzApply's mode byte into options.
func fuzzOptions(mode uint8) ApplyOptions {
	var o ApplyOptions
	switch mode % fuzzModes {
	case fuzzOverlay:
		o.Overlay = true
	case fuzzADD:
		o.NoWhiteouts = true
	}
	if mode&fuzzChown != 0 {
		o.Chown = &Owner{UID: 1000, GID: 1000}
	}
	return o
}

// fuzzSeed is one hostile tar of the seed corpus, by named fields.
type fuzzSeed struct {
	Name    string
	Mode    uint8
	Entries []tarEntry
	Raw     []byte // instead of Entries: bytes no tar writer makes
}

// fuzzSeeds are the shapes of attack FuzzApply starts from. The root each
// is applied to already holds, besides anything the tar makes, a directory
// d with a file d/f, and symlinks that lead out of it if followed as the
// host would: abs ("/sentinel", the sentinel directory beside the root as
// the chrooted Apply sees it), rel ("../sentinel") and etc ("/etc", the
// sentinel etc beside the root).
func fuzzSeeds() []fuzzSeed {
	long := strings.Repeat("long-name/", 40) + "file"
	return []fuzzSeed{
		{Name: "plain", Entries: []tarEntry{{Name: "dir/", Type: '5'}, {Name: "dir/file", Body: "x"}, {Name: "dir/link", Type: '2', Linkname: "file"}, {Name: "dir/hard", Type: '1', Linkname: "dir/file"}}},
		{Name: "dotdot", Entries: []tarEntry{{Name: "../sentinel/evil", Body: "x"}}},
		{Name: "dotdot-middle", Entries: []tarEntry{{Name: "a/../../sentinel/evil", Body: "x"}}},
		{Name: "absolute-etc-passwd", Entries: []tarEntry{{Name: "/etc/passwd", Body: "x"}}},
		{Name: "tar-symlink-to-etc-then-write", Entries: []tarEntry{{Name: "s", Type: '2', Linkname: "/etc"}, {Name: "s/passwd", Body: "x"}}},
		{Name: "tar-symlink-climbing-then-write", Entries: []tarEntry{{Name: "s", Type: '2', Linkname: "../../../../.."}, {Name: "s/sentinel/evil", Body: "x"}}},
		{Name: "symlink-dir-then-file-through-it", Entries: []tarEntry{{Name: "d2/", Type: '5'}, {Name: "d2/up", Type: '2', Linkname: ".."}, {Name: "d2/up/up/up/sentinel/evil", Body: "x"}}},
		{Name: "symlink-chain", Entries: []tarEntry{{Name: "a", Type: '2', Linkname: "b"}, {Name: "b", Type: '2', Linkname: "/"}, {Name: "a/etc/passwd", Body: "x"}}},
		{Name: "on-disk-abs-symlink-write", Entries: []tarEntry{{Name: "abs/file", Body: "x"}, {Name: "abs/new/", Type: '5'}}},
		{Name: "on-disk-rel-symlink-write", Entries: []tarEntry{{Name: "rel/file", Body: "x"}}},
		{Name: "on-disk-etc-symlink-write", Entries: []tarEntry{{Name: "etc/passwd", Body: "x"}, {Name: "etc/evil", Body: "x"}}},
		{Name: "replace-on-disk-symlink-with-dir", Entries: []tarEntry{{Name: "abs/", Type: '5'}, {Name: "abs/file", Body: "x"}}},
		{Name: "hardlink-to-etc-passwd", Entries: []tarEntry{{Name: "p", Type: '1', Linkname: "/etc/passwd"}}},
		{Name: "hardlink-dotdot", Entries: []tarEntry{{Name: "p", Type: '1', Linkname: "../sentinel/file"}}},
		{Name: "hardlink-through-tar-symlink", Entries: []tarEntry{{Name: "s", Type: '2', Linkname: "/etc"}, {Name: "p", Type: '1', Linkname: "s/passwd"}}},
		{Name: "hardlink-through-on-disk-symlink", Entries: []tarEntry{{Name: "p", Type: '1', Linkname: "abs/file"}, {Name: "q", Type: '1', Linkname: "etc/passwd"}}},
		{Name: "hardlink-then-write-through-it", Entries: []tarEntry{{Name: "p", Type: '1', Linkname: "rel/file"}, {Name: "p", Body: "x"}}},
		{Name: "whiteout", Entries: []tarEntry{{Name: ".wh.d"}}},
		{Name: "whiteout-overlay", Mode: fuzzOverlay, Entries: []tarEntry{{Name: "x/.wh.y"}, {Name: ".wh.d"}}},
		{Name: "opaque", Entries: []tarEntry{{Name: "d/", Type: '5'}, {Name: "d/.wh..wh..opq"}, {Name: "d/g", Body: "x"}}},
		{Name: "opaque-overlay", Mode: fuzzOverlay, Entries: []tarEntry{{Name: "d/.wh..wh..opq"}}},
		{Name: "whiteout-of-parent", Entries: []tarEntry{{Name: "d/.wh.."}, {Name: ".wh.."}, {Name: ".wh.."}}},
		{Name: "whiteout-with-dotdot", Entries: []tarEntry{{Name: "../.wh.sentinel"}, {Name: "d/../../.wh.sentinel"}}},
		{Name: "whiteout-through-on-disk-symlinks", Entries: []tarEntry{{Name: "abs/.wh.file"}, {Name: "rel/.wh.file"}, {Name: "etc/.wh.passwd"}}},
		{Name: "opaque-through-on-disk-symlinks", Entries: []tarEntry{{Name: "abs/.wh..wh..opq"}, {Name: "etc/.wh..wh..opq"}}},
		{Name: "whiteout-through-tar-symlink", Entries: []tarEntry{{Name: "s", Type: '2', Linkname: "/etc"}, {Name: "s/.wh.passwd"}}},
		{Name: "whiteout-overlay-through-symlink", Mode: fuzzOverlay, Entries: []tarEntry{{Name: "abs/.wh.file"}, {Name: "etc/.wh..wh..opq"}}},
		{Name: "whiteout-as-file-in-add", Mode: fuzzADD, Entries: []tarEntry{{Name: ".wh.d"}, {Name: "etc/.wh.passwd"}}},
		{Name: "devices", Entries: []tarEntry{{Name: "null", Type: '3', Devmajor: 1, Devminor: 3}, {Name: "sda", Type: '4', Devmajor: 8}, {Name: "fifo", Type: '6'}, {Name: "abs/mem", Type: '3', Devmajor: 1, Devminor: 1}}},
		{Name: "devices-overlay", Mode: fuzzOverlay, Entries: []tarEntry{{Name: "wh", Type: '3'}, {Name: "sda", Type: '4', Devmajor: 8}}},
		{Name: "duplicates", Entries: []tarEntry{{Name: "x", Body: "1"}, {Name: "x", Body: "2"}, {Name: "x/", Type: '5'}, {Name: "x/y", Body: "3"}, {Name: "x", Type: '2', Linkname: "/etc"}, {Name: "x/passwd", Body: "4"}}},
		{Name: "dir-replaces-symlink", Entries: []tarEntry{{Name: "etc/", Type: '5'}, {Name: "etc/passwd", Body: "x"}}},
		{Name: "root-entries", Entries: []tarEntry{{Name: "./", Type: '5', Mode: 0o777}, {Name: "/", Type: '5'}, {Name: ".", Type: '2', Linkname: "/etc"}}},
		{Name: "long-names-pax", Entries: []tarEntry{{Name: long, Body: "x"}, {Name: "l", Type: '2', Linkname: long}, {Name: "h", Type: '1', Linkname: long}}},
		{Name: "xattrs", Entries: []tarEntry{{Name: "f", Body: "x", Xattrs: map[string]string{
			"trusted.overlay.redirect": "/etc", "trusted.overlay.opaque": "y", "user.x": "y", "security.capability": capNetBindService,
		}}}},
		{Name: "setuid-chown", Mode: fuzzRoot | fuzzChown, Entries: []tarEntry{{Name: "su", Body: "x", Mode: 0o4755}, {Name: "d/", Type: '5', Mode: 0o1777}}},
		{Name: "huge-size-short-stream", Raw: shortTar("huge", 2<<40)},
		{Name: "sparse-pax-huge", Raw: sparsePAXTar("sparse", 2<<40)},
		{Name: "sparse-gnu-huge", Raw: sparseGNUTar("sparse", 2<<40)},
		{Name: "sparse-gnu-small", Mode: fuzzADD, Raw: sparseGNUTar("abs/sparse", 4096)},
	}
}

// corpusFile renders a seed in the go test fuzz v1 format.
func corpusFile(t testing.TB, s fuzzSeed) []byte {
	data := s.Raw
	if data == nil {
		data = makeTar(t, s.Entries...)
	}
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\nuint8(%d)\n", data, s.Mode)
}

// TestFuzzApplySeeds checks that testdata/fuzz/FuzzApply holds fuzzSeeds
// as they are written here; -update-seeds rewrites it.
func TestFuzzApplySeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzApply")
	for _, s := range fuzzSeeds() {
		p := filepath.Join(dir, s.Name)
		want := corpusFile(t, s)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("seed %s: %v (run go test -run TestFuzzApplySeeds -update-seeds)", s.Name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("seed %s differs from fuzzSeeds (run go test -run TestFuzzApplySeeds -update-seeds)", s.Name)
		}
	}
}

// fuzzEnv is where FuzzApply applies: a small tmpfs (so a tar claiming
// terabytes costs at most its size) that each Apply sees as "/", through a
// chroot of the one thread Apply runs on. So "/etc/passwd" is the tmpfs's sentinel copy,
// never the host's: an escape, if Apply had one, would damage nothing and
// be seen. Beside the roots are the sentinel directory and that etc, whose
// state must never change, and a bind mount of /proc, which Apply uses.
type fuzzEnv struct {
	base string
	want string      // the sentinel's and etc's state
	reqs chan func() // to the chrooted thread
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	base := mountTmpfs(f, 64<<20)
	e := &fuzzEnv{base: base}
	for _, d := range []string{"sentinel", "sentinel/sub", "etc", "proc"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for _, p := range []string{"sentinel/file", "sentinel/sub/file", "etc/passwd", "etc/group"} {
		if err := os.WriteFile(filepath.Join(base, p), []byte("sentinel\n"), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(base, "sentinel/etc")); err != nil {
		f.Fatal(err)
	}
	proc := filepath.Join(base, "proc")
	if err := unix.Mount("/proc", proc, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		f.Fatalf("bind /proc: %v", err)
	}
	// Before the tmpfs's own unmount: cleanups run last first.
	f.Cleanup(func() { unix.Unmount(proc, unix.MNT_DETACH) })
	e.want = e.state(f)
	e.chrooted(f)
	return e
}

// state renders everything about the sentinel and etc trees that a write,
// a chmod, a chown, a new hardlink or an xattr would change (ctime and
// nlink included).
func (e *fuzzEnv) state(t testing.TB) string {
	var b strings.Builder
	for _, top := range []string{"sentinel", "etc"} {
		err := filepath.WalkDir(filepath.Join(e.base, top), func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s %o %d:%d nlink=%d size=%d mtime=%d.%d ctime=%d.%d", p, st.Mode, st.Uid, st.Gid, st.Nlink, st.Size,
				st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
			if st.Mode&unix.S_IFMT == unix.S_IFREG {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				fmt.Fprintf(&b, " sha256=%x", sha256.Sum256(data))
			}
			b.WriteByte('\n')
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// prepare makes a fresh root beside the sentinel, with the on-disk traps
// fuzzSeeds describes, and returns its path as the host and as the
// chrooted Apply see it.
func (e *fuzzEnv) prepare(t *testing.T) (host, inside string) {
	host, err := os.MkdirTemp(e.base, "root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })
	if err := os.Mkdir(filepath.Join(host, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "d/f"), []byte("root\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"abs": "/sentinel", "rel": "../sentinel", "etc": "/etc"} {
		if err := os.Symlink(target, filepath.Join(host, name)); err != nil {
			t.Fatal(err)
		}
	}
	return host, "/" + filepath.Base(host)
}

// chrooted starts the thread every Apply of the env runs on: locked by a
// goroutine that never lets go of it, its root directory is the tmpfs.
// One thread for the whole run, rather than one per input: a locked
// thread's exit on every input stalls the instrumented fuzzing workers.
func (e *fuzzEnv) chrooted(f *testing.F) {
	e.reqs = make(chan func())
	ready := make(chan error)
	go func() {
		runtime.LockOSThread()
		// CLONE_FS: a root directory of this thread's own; the other
		// threads (and the test's checks) keep the host's.
		err := unix.Unshare(unix.CLONE_FS)
		if err == nil {
			err = unix.Chroot(e.base)
		}
		if err == nil {
			err = unix.Chdir("/")
		}
		ready <- err
		if err != nil {
			return
		}
		for fn := range e.reqs {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		f.Fatalf("chroot to %s: %v", e.base, err)
	}
	f.Cleanup(func() { close(e.reqs) })
}

// apply runs Apply on the chrooted thread.
func (e *fuzzEnv) apply(t *testing.T, root string, data []byte, opts ApplyOptions) {
	done := make(chan struct{})
	e.reqs <- func() {
		defer close(done)
		// An error is fine (most inputs are not tars): what matters
		// is what happened outside the root.
		Apply(t.Context(), root, bytes.NewReader(data), opts)
	}
	<-done
}

// check fails t if anything outside root changed: the sentinel and etc
// trees, or the set of names beside root.
func (e *fuzzEnv) check(t *testing.T, root string) {
	if got := e.state(t); got != e.want {
		t.Fatalf("something outside the root changed:\nbefore:\n%s\nafter:\n%s", e.want, got)
	}
	names, err := os.ReadDir(e.base)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	sort.Strings(got)
	want := []string{filepath.Base(root), "etc", "proc", "sentinel"}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("beside the root: %v, want %v", got, want)
	}
}

// FuzzApply applies arbitrary bytes as a layer tar, in every mode, and
// checks that nothing outside the root is ever created, changed or
// removed, and that Apply does not panic. Seeds: testdata/fuzz/FuzzApply, written from fuzzSeeds.
//
// It needs root (chown, mknod, trusted.* xattrs, chroot) and mounts a
// tmpfs; CI runs as root.
func FuzzApply(f *testing.F) {
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		host, inside := e.prepare(t)
		e.apply(t, inside, data, fuzzOptions(mode))
		e.check(t, host)
	})
}
