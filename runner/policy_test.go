package runner

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/builder-dev/builder/internal/mount"
	"golang.org/x/sys/unix"
)

func TestDefaultCapMaskIsDockers(t *testing.T) {
	// The CapBnd line of `docker run busybox grep Cap /proc/self/status`.
	if got, want := defaultCapMask(), uint64(0xa80425fb); got != want {
		t.Fatalf("default capability mask %#x, want %#x", got, want)
	}
	if len(defaultCapabilities) != 14 {
		t.Fatalf("%d default capabilities, want Docker's 14", len(defaultCapabilities))
	}
}

func TestCapsFor(t *testing.T) {
	m := defaultCapMask()
	tests := []struct {
		name string
		uid  int
		want capSets
	}{
		{name: "root gets the default set", uid: 0, want: capSets{bounding: m, effective: m, permitted: m}},
		{name: "non-root gets only the bounding set", uid: 1000, want: capSets{bounding: m}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := capsFor(tt.uid); got != tt.want {
				t.Fatalf("capsFor(%d) = %+v, want %+v", tt.uid, got, tt.want)
			}
		})
	}
}

func TestContainerEnv(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		home string
		want []string
	}{
		{
			name: "empty env gets PATH and HOME",
			home: "/root",
			want: []string{"PATH=" + DefaultPath, "HOME=/root"},
		},
		{
			name: "given PATH and HOME are kept as they are",
			env:  []string{"HOME=/x", "PATH=/bin", "A=1"},
			home: "/root",
			want: []string{"HOME=/x", "PATH=/bin", "A=1"},
		},
		{
			name: "an empty PATH is still a PATH",
			env:  []string{"PATH="},
			home: "/",
			want: []string{"PATH=", "HOME=/"},
		},
		{
			name: "a name without = is not PATH",
			env:  []string{"PATH", "B=2"},
			home: "/home/u",
			want: []string{"PATH", "B=2", "PATH=" + DefaultPath, "HOME=/home/u"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]string(nil), tt.env...)
			got := containerEnv(tt.env, tt.home)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("containerEnv = %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(in, tt.env) && tt.env != nil {
				t.Fatalf("containerEnv changed its input: %q", tt.env)
			}
		})
	}
}

func TestHomeFor(t *testing.T) {
	tests := []struct {
		uid        int
		name, home string
		want       string
	}{
		{uid: 0, name: "root", home: "/root", want: "/root"},
		{uid: 0, name: "toor", home: "/var/toor", want: "/var/toor"},
		{uid: 0, name: "", home: "/", want: "/root"},
		{uid: 1000, name: "alice", home: "/home/alice", want: "/home/alice"},
		{uid: 4242, name: "", home: "/", want: "/"},
	}
	for _, tt := range tests {
		if got := homeFor(tt.uid, tt.name, tt.home); got != tt.want {
			t.Errorf("homeFor(%d, %q, %q) = %q, want %q", tt.uid, tt.name, tt.home, got, tt.want)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	mk := func(rel string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	mk("bin/sh", 0o755)
	mk("usr/bin/tool", 0o755)
	mk("sbin/tool", 0o755)  // later in PATH: loses to usr/bin
	mk("bin/data", 0o644)   // not executable: skipped in PATH
	mk("opt/data", 0o755)   // found after the unexecutable one
	mk("etc/passwd", 0o644) // named with a slash, not executable
	mk("sub/dir/x", 0o755)  // a directory is not a command
	mk("rel/cmd", 0o755)    // found through a relative PATH element
	stat := func(p string) (fs.FileInfo, error) {
		if !strings.HasPrefix(p, "/") {
			p = "/" + p // the fake's cwd is the root
		}
		return os.Stat(filepath.Join(dir, p))
	}
	const path = "/usr/bin:/sbin:/bin:/opt"
	tests := []struct {
		name, file, path string
		want             string
		code             int // 0: found
		msg              string
	}{
		{name: "first PATH match wins", file: "tool", path: path, want: "/usr/bin/tool"},
		{name: "unexecutable match is skipped", file: "data", path: path, want: "/opt/data"},
		{name: "not in PATH", file: "nosuch", path: path, code: 127, msg: `exec: "nosuch": executable file not found in $PATH`},
		{name: "empty PATH finds nothing", file: "sh", path: "/nonexistent", code: 127},
		{name: "directory is not found", file: "dir", path: "/sub", code: 127},
		{name: "slash name is taken as is", file: "/bin/sh", path: "", want: "/bin/sh"},
		{name: "slash name missing", file: "/no/such", path: path, code: 127, msg: `exec: "/no/such": stat `},
		{name: "slash name not executable", file: "/etc/passwd", path: path, code: 126, msg: `exec: "/etc/passwd": permission denied`},
		{name: "slash name is a directory", file: "/sub/dir", path: path, code: 126},
		{name: "relative PATH element", file: "cmd", path: "rel", want: "rel/cmd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookPath(tt.file, tt.path, stat)
			if tt.code == 0 {
				if err != nil || got != tt.want {
					t.Fatalf("lookPath(%q) = %q, %v; want %q", tt.file, got, err, tt.want)
				}
				return
			}
			var ee *execError
			if !errors.As(err, &ee) {
				t.Fatalf("lookPath(%q) = %q, %v; want an execError", tt.file, got, err)
			}
			if ee.Code != tt.code || !strings.HasPrefix(ee.Msg, tt.msg) {
				t.Fatalf("lookPath(%q): code %d %q, want %d %q...", tt.file, ee.Code, ee.Msg, tt.code, tt.msg)
			}
		})
	}
}

func TestExecErrorCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{unix.ENOENT, 127},
		{&fs.PathError{Op: "stat", Path: "/x", Err: unix.ENOENT}, 127},
		{unix.ENOTDIR, 127},
		{unix.EACCES, 126},
		{unix.EPERM, 126},
		{unix.ENOEXEC, 126},
		{unix.EISDIR, 126},
	}
	for _, tt := range tests {
		if got := execErrorCode(tt.err); got != tt.want {
			t.Errorf("execErrorCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	// Wait statuses as the kernel encodes them: exit code in bits 8-15,
	// terminating signal in bits 0-6.
	tests := []struct {
		name string
		ws   syscall.WaitStatus
		want int
	}{
		{"exit 0", 0, 0},
		{"exit 3", 3 << 8, 3},
		{"exit 255", 255 << 8, 255},
		{"SIGKILL", syscall.WaitStatus(unix.SIGKILL), 137},
		{"SIGTERM", syscall.WaitStatus(unix.SIGTERM), 143},
		{"SIGSEGV with core", syscall.WaitStatus(unix.SIGSEGV) | 0x80, 139},
	}
	for _, tt := range tests {
		if got := exitCode(tt.ws); got != tt.want {
			t.Errorf("%s: exitCode = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestHostsFile(t *testing.T) {
	loopback := "127.0.0.1\tlocalhost myhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if got := string(hostsFile("myhost", false)); got != loopback {
		t.Errorf("RUN's hosts file:\n%s", got)
	}
	got := string(hostsFile("myhost", true))
	if !strings.HasPrefix(got, loopback) || !strings.HasSuffix(got, "ff02::2\tip6-allrouters\n") {
		t.Errorf("docker run's hosts file:\n%s", got)
	}
}

func TestUserMountOrder(t *testing.T) {
	in := []Mount{
		{Type: "tmpfs", Dest: "/a/b/c"},
		{Type: "bind", Dest: "/a"},
		{Type: "tmpfs", Dest: "/z/y"},
		{Type: "bind", Dest: "/a/b/"},
		{Type: "tmpfs", Dest: "/b"},
	}
	var got []string
	for _, m := range userMountOrder(in) {
		got = append(got, m.Dest)
	}
	want := []string{"/a", "/b", "/z/y", "/a/b/", "/a/b/c"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order %q, want %q", got, want)
	}
	if in[0].Dest != "/a/b/c" {
		t.Fatal("userMountOrder sorted its input in place")
	}
}

func TestOverridden(t *testing.T) {
	ms := []Mount{{Type: "bind", Source: "/x", Dest: "/etc//hosts/"}}
	if !overridden(ms, "/etc/hosts") {
		t.Error("/etc//hosts/ should override /etc/hosts")
	}
	if overridden(ms, "/etc/resolv.conf") {
		t.Error("/etc/resolv.conf is not overridden")
	}
}

func TestValidate(t *testing.T) {
	root := []mount.Mount{{Type: "bind", Source: "/r", Options: []string{"rbind"}}}
	ok := Spec{Root: root, Args: []string{"true"}, Seccomp: []unix.SockFilter{{Code: 6}}}
	tests := []struct {
		name   string
		modify func(*Spec)
		errSub string // "" for valid
	}{
		{"minimal", func(*Spec) {}, ""},
		{"all networks", func(s *Spec) { s.Network = "none" }, ""},
		{"no args", func(s *Spec) { s.Args = nil }, "no command"},
		{"no root", func(s *Spec) { s.Root = nil }, "no root"},
		{"no seccomp", func(s *Spec) { s.Seccomp = nil }, "no seccomp"},
		{"relative cwd", func(s *Spec) { s.Cwd = "work" }, "not absolute"},
		{"bad network", func(s *Spec) { s.Network = "bridge" }, "unknown network"},
		{"bad mount type", func(s *Spec) { s.Mounts = []Mount{{Type: "nfs", Dest: "/x"}} }, "unsupported mount type"},
		{"relative dest", func(s *Spec) { s.Mounts = []Mount{{Type: "tmpfs", Dest: "x"}} }, "not absolute"},
		{"relative bind source", func(s *Spec) { s.Mounts = []Mount{{Type: "bind", Source: "x", Dest: "/x"}} }, "not absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.modify(&s)
			err := validate(s)
			switch {
			case tt.errSub == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case tt.errSub != "" && (err == nil || !strings.Contains(err.Error(), tt.errSub)):
				t.Fatalf("validate = %v, want an error with %q", err, tt.errSub)
			}
		})
	}
}

// TestRemoveStubs needs no namespaces: it is plain file work on an upper dir.
func TestRemoveStubs(t *testing.T) {
	upper := t.TempDir()
	t0, t1, t2, t3 := time.Unix(1_000_000, 0), time.Unix(1_000_001, 0), time.Unix(1_000_002, 0), time.Unix(1_000_003, 0)
	mkdir := func(rel string) {
		if err := os.MkdirAll(filepath.Join(upper, rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, data string) {
		if err := os.WriteFile(filepath.Join(upper, rel), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setMtime := func(rel string, tm time.Time) {
		if err := os.Chtimes(filepath.Join(upper, rel), tm, tm); err != nil {
			t.Fatal(err)
		}
	}
	mtime := func(rel string) time.Time {
		fi, err := os.Stat(filepath.Join(upper, rel))
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	mkdir("etc")
	write("etc/resolv.conf", "") // stubs, untouched: removed
	write("etc/hostname", "")
	setMtime("etc", t2) // as the second stub left it
	mkdir("var")
	write("var/hosts", "written") // stub the command filled: kept
	write("var/stub", "")         // stub removed, but var/ was the command's too
	write("var/log", "x")
	setMtime("var", t3) // the command's change
	mkdir("mnt/data")   // stub dirs, empty: removed
	mkdir("work/out")   // stub dir the command filled: kept
	write("work/out/result", "x")
	stubs := []stub{
		{Path: "etc/resolv.conf", ParentMtime: t0.UnixNano(), ParentMtimeAfter: t1.UnixNano()},
		{Path: "etc/hostname", ParentMtime: t1.UnixNano(), ParentMtimeAfter: t2.UnixNano()},
		{Path: "var/hosts", ParentMtime: t0.UnixNano(), ParentMtimeAfter: t1.UnixNano()},
		{Path: "var/stub", ParentMtime: t1.UnixNano(), ParentMtimeAfter: t2.UnixNano()},
		{Path: "mnt", ParentMtime: t0.UnixNano(), ParentMtimeAfter: t1.UnixNano()},
		{Path: "mnt/data"},
		{Path: "work", ParentMtime: t0.UnixNano(), ParentMtimeAfter: t1.UnixNano()},
		{Path: "work/out"},
		{Path: "gone"}, // already removed by the command: not an error
	}
	if err := removeStubs(upper, nil, stubs); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"etc/resolv.conf", "etc/hostname", "var/stub", "mnt"} {
		if _, err := os.Lstat(filepath.Join(upper, rel)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: stub not removed (%v)", rel, err)
		}
	}
	for _, rel := range []string{"var/hosts", "work/out/result"} {
		if _, err := os.Lstat(filepath.Join(upper, rel)); err != nil {
			t.Errorf("%s: the command's file was removed: %v", rel, err)
		}
	}
	if got := mtime("etc"); !got.Equal(t0) {
		t.Errorf("etc mtime %v, want it back at %v", got, t0)
	}
	if got := mtime("var"); !got.Equal(t3) {
		t.Errorf("var mtime %v, want the command's %v", got, t3)
	}
	if err := removeStubs(upper, nil, []stub{{Path: "../escape"}}); err == nil {
		t.Error("a stub path outside the upper dir was accepted")
	}
}

func TestRemoveStubsPrunesCopiedUpParents(t *testing.T) {
	lower, upper := t.TempDir(), t.TempDir()
	old, after := time.Unix(2_000_000, 0), time.Unix(2_000_001, 0)
	for _, d := range []string{"etc", "usr/local", "opt", "var", "home"} {
		for _, root := range []string{lower, upper} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	chtimes := func(p string, tm time.Time) {
		if err := os.Chtimes(p, tm, tm); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc", "usr/local", "usr", "opt", "var", "home"} {
		chtimes(filepath.Join(lower, d), old)
	}
	// Copy-up keeps the mtime of a parent it copies up on the way.
	chtimes(filepath.Join(upper, "usr"), old)
	// Stubs in upper, as the init made them, each under a copied-up parent.
	stubFiles := []string{"etc/hosts", "usr/local/stub", "opt/stub", "var/stub", "home/stub"}
	var stubs []stub
	for _, f := range stubFiles {
		if err := os.WriteFile(filepath.Join(upper, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		chtimes(filepath.Join(upper, filepath.Dir(f)), after)
		stubs = append(stubs, stub{Path: f, ParentMtime: old.UnixNano(), ParentMtimeAfter: after.UnixNano()})
	}
	// What the command did: a file in var/, a chmod of opt/, an xattr on home/.
	if err := os.WriteFile(filepath.Join(upper, "var/log"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(upper, "opt"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(upper, "home"), "user.test", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := removeStubs(upper, []string{lower}, stubs); err != nil {
		t.Fatal(err)
	}
	var left []string
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(upper, p)
		if rel != "." {
			left = append(left, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// etc/ and usr/local/ (then usr/) were only copied up for the stubs.
	want := []string{"home", "opt", "var", "var/log"}
	if !reflect.DeepEqual(left, want) {
		t.Fatalf("upper keeps %q, want %q", left, want)
	}
}

func TestOverlayLowers(t *testing.T) {
	root := []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"index=off", "lowerdir=/a:/b", "upperdir=/u", "workdir=/w"}}}
	if got := overlayLowers(root); !reflect.DeepEqual(got, []string{"/a", "/b"}) {
		t.Fatalf("lowers %q", got)
	}
	if got := overlayLowers([]mount.Mount{{Type: "bind", Source: "/r"}}); got != nil {
		t.Fatalf("a bind root has lowers %q", got)
	}
}
