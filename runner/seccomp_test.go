package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// withSysprobe returns a busybox root with testdata/sysprobe built into
// /sysprobe (static, no cgo).
func withSysprobe(t *testing.T) string {
	t.Helper()
	lower := ownLower(t)
	build := exec.Command("go", "build", "-o", filepath.Join(lower, "sysprobe"), "./testdata/sysprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sysprobe: %v\n%s", err, out)
	}
	return lower
}

// TestSeccompFilter: the command runs under one seccomp filter (Docker's
// default profile): blocked calls fail with EPERM (clone3 with ENOSYS,
// so libc falls back to clone), allowed ones work, as root and as another
// user; no_new_privs stays off as in Docker.
func TestSeccompFilter(t *testing.T) {
	lower := withSysprobe(t)
	probe := "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status; /sysprobe keyctl add_key unshare-user mount kexec_load bpf perf_event_open socket-vsock clone3 socket-inet getpid personality personality-noaslr"
	want := `NoNewPrivs:	0
Seccomp:	2
Seccomp_filters:	1
keyctl EPERM
add_key EPERM
unshare-user EPERM
mount EPERM
kexec_load EPERM
bpf EPERM
perf_event_open EPERM
socket-vsock EPERM
clone3 ENOSYS
socket-inet ok
getpid ok
personality ok
personality-noaslr EPERM
`
	for _, user := range []string{"", "nobody"} {
		c := newContainer(t, lower, sh(probe)...)
		c.spec.User = user
		if got := c.mustRun(t); got != want {
			t.Errorf("user %q: got\n%s\nwant\n%s", user, got, want)
		}
	}
	// busybox's own: a user namespace and a mount are refused.
	c := newContainer(t, lower, sh("unshare -U true 2>&1; unshare -m true 2>&1; echo done")...)
	out := c.mustRun(t)
	if strings.Count(out, "Operation not permitted") != 2 {
		t.Errorf("unshare: got %q", out)
	}
}

// TestSeccompNoNewPrivileges: with NoNewPrivileges the bit is set and the
// filter is there all the same (installed at the last moment).
func TestSeccompNoNewPrivileges(t *testing.T) {
	c := newContainer(t, "", "grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status")
	c.spec.NoNewPrivileges = true
	c.spec.User = "nobody"
	if got, want := c.mustRun(t), "NoNewPrivs:\t1\nSeccomp:\t2\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestFilterEncoding(t *testing.T) {
	prog := []unix.SockFilter{{Code: 0x20, K: 4}, {Code: 0x15, Jt: 1, Jf: 2, K: 0xc000003e}, {Code: 6, K: 0x7fff0000}}
	got, err := decodeFilter(encodeFilter(prog))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(prog) {
		t.Fatalf("got %v", got)
	}
	for i := range prog {
		if got[i] != prog[i] {
			t.Errorf("%d: got %+v, want %+v", i, got[i], prog[i])
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 7)} {
		if _, err := decodeFilter(bad); err == nil {
			t.Errorf("decodeFilter(%d bytes): no error", len(bad))
		}
	}
}
