package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultPath is the PATH a container gets when its env has none: Docker's.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultHostname is the hostname of a container whose Spec names none, as
// BuildKit's RUN sandboxes are called.
const DefaultHostname = "buildkitsandbox"

// defaultCapabilities is Docker's default capability set (moby
// oci/caps/defaults.go): the bounding set of every container, and the
// effective and permitted sets of one that runs as root.
var defaultCapabilities = []struct {
	name string
	bit  uint
}{
	{"CAP_CHOWN", unix.CAP_CHOWN},
	{"CAP_DAC_OVERRIDE", unix.CAP_DAC_OVERRIDE},
	{"CAP_FSETID", unix.CAP_FSETID},
	{"CAP_FOWNER", unix.CAP_FOWNER},
	{"CAP_MKNOD", unix.CAP_MKNOD},
	{"CAP_NET_RAW", unix.CAP_NET_RAW},
	{"CAP_SETGID", unix.CAP_SETGID},
	{"CAP_SETUID", unix.CAP_SETUID},
	{"CAP_SETFCAP", unix.CAP_SETFCAP},
	{"CAP_SETPCAP", unix.CAP_SETPCAP},
	{"CAP_NET_BIND_SERVICE", unix.CAP_NET_BIND_SERVICE},
	{"CAP_SYS_CHROOT", unix.CAP_SYS_CHROOT},
	{"CAP_KILL", unix.CAP_KILL},
	{"CAP_AUDIT_WRITE", unix.CAP_AUDIT_WRITE},
}

// DefaultCapabilities names the capabilities of Docker's default set, the
// bounding set of every container: what a seccomp profile's capability
// conditions are resolved against (see runner/seccomp).
func DefaultCapabilities() []string {
	names := make([]string, len(defaultCapabilities))
	for i, c := range defaultCapabilities {
		names[i] = c.name
	}
	return names
}

// defaultCapMask is defaultCapabilities as a bit mask, the form
// /proc/PID/status shows (CapBnd: 00000000a80425fb).
func defaultCapMask() uint64 {
	var m uint64
	for _, c := range defaultCapabilities {
		m |= 1 << c.bit
	}
	return m
}

// capSets are the capability sets the command starts with. As Docker does
// since 20.10, a non-root user gets only the bounding set: execve would clear
// its effective and permitted sets anyway, and inheritable stays empty for
// everyone (CVE-2022-24769).
type capSets struct {
	bounding, effective, permitted, inheritable uint64
}

func capsFor(uid int) capSets {
	m := defaultCapMask()
	if uid == 0 {
		return capSets{bounding: m, effective: m, permitted: m}
	}
	return capSets{bounding: m}
}

// containerEnv returns env as the command sees it: exactly env, plus
// Docker's default PATH when it has none and HOME from the user's account
// when it has none.
func containerEnv(env []string, home string) []string {
	out := append([]string(nil), env...)
	if _, ok := lookupEnv(env, "PATH"); !ok {
		out = append(out, "PATH="+DefaultPath)
	}
	if _, ok := lookupEnv(env, "HOME"); !ok {
		out = append(out, "HOME="+home)
	}
	return out
}

// homeFor is the HOME of an account: its passwd entry's, else "/root" for
// root and "/" for anyone else (runc's and Docker's fallbacks).
func homeFor(uid int, name, home string) string {
	switch {
	case name != "" && home != "":
		return home
	case uid == 0:
		return "/root"
	default:
		return "/"
	}
}

// lookupEnv returns the value of key in env; as execve's consumers do, the
// last entry wins.
func lookupEnv(env []string, key string) (string, bool) {
	val, found := "", false
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			val, found = v, true
		}
	}
	return val, found
}

// execError is why the command could not be started; Code is the exit code
// Docker reports for it (127 not found, 126 not executable).
type execError struct {
	Code int
	Msg  string
}

func (e *execError) Error() string { return e.Msg }

// lookPath finds the executable for name the way runc does inside the
// container: a name with a slash is taken as is, anything else is searched
// in pathEnv. stat looks at the container's file system (after pivot_root it
// is os.Stat; tests pass a fake).
func lookPath(name, pathEnv string, stat func(string) (fs.FileInfo, error)) (string, error) {
	if strings.Contains(name, "/") {
		fi, err := stat(name)
		if err != nil {
			return "", &execError{Code: execErrorCode(err), Msg: fmt.Sprintf("exec: %q: %v", name, err)}
		}
		if !isExecutable(fi) {
			return "", &execError{Code: 126, Msg: fmt.Sprintf("exec: %q: permission denied", name)}
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "." // POSIX: an empty PATH element is the current directory
		}
		p := path.Join(dir, name)
		if fi, err := stat(p); err == nil && isExecutable(fi) {
			if !strings.Contains(p, "/") {
				p = "./" + p
			}
			return p, nil
		}
	}
	return "", &execError{Code: 127, Msg: fmt.Sprintf("exec: %q: executable file not found in $PATH", name)}
}

func isExecutable(fi fs.FileInfo) bool {
	return !fi.IsDir() && fi.Mode()&0o111 != 0
}

// execErrorCode maps an execve or stat failure to Docker's exit code: a
// missing file (or a missing script interpreter) is 127, anything else that
// keeps a file from running is 126.
func execErrorCode(err error) int {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return 127
	}
	return 126
}

// exitCode maps a wait status to a shell-style exit code: the status of a
// normal exit, 128+N for a kill by signal N.
func exitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	default:
		return 128
	}
}

// hostsFile is the container's /etc/hosts: loopback names, with the
// hostname on the IPv4 loopback line as BuildKit writes it, and with
// ipv6Names the multicast names docker run adds.
func hostsFile(hostname string, ipv6Names bool) []byte {
	b := fmt.Appendf(nil, "127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n", hostname)
	if ipv6Names {
		b = append(b, "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"...)
	}
	return b
}

// maskedPaths are hidden from the container as in Docker's default spec
// (moby oci/defaults.go): files get /dev/null bound over them, directories
// an empty read-only tmpfs. They leak host details (kcore, keys, timers) or
// allow host-wide changes.
var maskedPaths = []string{
	"/proc/asound",
	"/proc/acpi",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// readonlyPaths stay visible but read-only: writing them would change the
// host kernel (sysctls, irq affinity, sysrq).
var readonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// etcFiles are the per-run files bind-mounted into the container's /etc.
var etcFiles = []string{"resolv.conf", "hosts", "hostname"}

// userMountOrder returns mounts sorted so a mount never hides one made
// before it: parents before children (fewer path elements first), stable
// otherwise, as Docker sorts volume mounts.
func userMountOrder(mounts []Mount) []Mount {
	out := append([]Mount(nil), mounts...)
	sort.SliceStable(out, func(i, j int) bool {
		return depth(out[i].Dest) < depth(out[j].Dest)
	})
	return out
}

func depth(p string) int {
	p = path.Clean("/" + p)
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// overridden reports whether a user mount targets dest, in which case the
// runner's own file for dest (an /etc file) is not mounted: the user's wins,
// as in Docker.
func overridden(mounts []Mount, dest string) bool {
	for _, m := range mounts {
		if path.Clean("/"+m.Dest) == dest {
			return true
		}
	}
	return false
}

// validate checks what the init cannot sensibly report later.
func validate(spec Spec) error {
	if len(spec.Args) == 0 {
		return errors.New("runner: no command")
	}
	if len(spec.Seccomp) == 0 {
		return errors.New("runner: no seccomp program")
	}
	if len(spec.Root) == 0 {
		return errors.New("runner: no root file system mounts")
	}
	if spec.Cwd != "" && !path.IsAbs(spec.Cwd) {
		return fmt.Errorf("runner: working directory %q is not absolute", spec.Cwd)
	}
	if err := validateResources(spec.Resources, runtime.NumCPU()); err != nil {
		return err
	}
	if n := spec.CgroupName; n != "" && (strings.ContainsRune(n, '/') || n == "." || n == ".." || strings.ContainsRune(n, 0)) {
		return fmt.Errorf("runner: cgroup name %q is not a single path element", n)
	}
	switch spec.Network {
	case "", "default", "host", "none":
	default:
		return fmt.Errorf("runner: unknown network mode %q", spec.Network)
	}
	for _, m := range spec.Mounts {
		if !path.IsAbs(m.Dest) {
			return fmt.Errorf("runner: mount destination %q is not absolute", m.Dest)
		}
		switch m.Type {
		case "bind":
			if !path.IsAbs(m.Source) {
				return fmt.Errorf("runner: bind mount source %q is not absolute", m.Source)
			}
		case "tmpfs":
		default:
			return fmt.Errorf("runner: unsupported mount type %q for %s", m.Type, m.Dest)
		}
	}
	return nil
}
