// Command sysprobe makes the system calls named by its arguments, with
// harmless arguments, and prints one line per call: the name and "ok" or
// the errno's name. The seccomp and isolation tests run it inside
// containers.
package main

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

var calls = map[string]func() (uintptr, uintptr, unix.Errno){
	"keyctl": func() (uintptr, uintptr, unix.Errno) {
		return unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, ^uintptr(2), 0) // KEY_SPEC_SESSION_KEYRING
	},
	"add_key": func() (uintptr, uintptr, unix.Errno) {
		typ, desc := []byte("user\x00"), []byte("probe\x00")
		return unix.Syscall6(unix.SYS_ADD_KEY, uintptr(unsafe.Pointer(&typ[0])), uintptr(unsafe.Pointer(&desc[0])), uintptr(unsafe.Pointer(&typ[0])), 1, ^uintptr(1), 0) // KEY_SPEC_PROCESS_KEYRING
	},
	"unshare-user": func() (uintptr, uintptr, unix.Errno) {
		return unix.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0)
	},
	"mount": func() (uintptr, uintptr, unix.Errno) {
		src, dst, fs := []byte("none\x00"), []byte("/tmp\x00"), []byte("tmpfs\x00")
		return unix.Syscall6(unix.SYS_MOUNT, uintptr(unsafe.Pointer(&src[0])), uintptr(unsafe.Pointer(&dst[0])), uintptr(unsafe.Pointer(&fs[0])), 0, 0, 0)
	},
	"kexec_load": func() (uintptr, uintptr, unix.Errno) { return unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0) },
	"bpf":        func() (uintptr, uintptr, unix.Errno) { return unix.Syscall(unix.SYS_BPF, 0, 0, 0) },
	"perf_event_open": func() (uintptr, uintptr, unix.Errno) {
		return unix.Syscall6(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0, 0)
	},
	"socket-vsock": func() (uintptr, uintptr, unix.Errno) {
		return unix.Syscall(unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM, 0)
	},
	"socket-inet": func() (uintptr, uintptr, unix.Errno) {
		return unix.Syscall(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM, 0)
	},
	"clone3":      func() (uintptr, uintptr, unix.Errno) { return unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0) },
	"getpid":      func() (uintptr, uintptr, unix.Errno) { return unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0) },
	"personality": func() (uintptr, uintptr, unix.Errno) { return unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0) },
	"personality-noaslr": func() (uintptr, uintptr, unix.Errno) {
		return unix.RawSyscall(unix.SYS_PERSONALITY, 0x0040000, 0, 0) // ADDR_NO_RANDOMIZE
	},
	"chroot-escape": chrootEscape,
	// The calls below change the host, or reach past the container, when
	// allowed; each is harmless if it works (the clock is set to the time
	// it has, the rest fail on their arguments).
	"clock_settime": func() (uintptr, uintptr, unix.Errno) {
		var now unix.Timespec
		unix.ClockGettime(unix.CLOCK_REALTIME, &now)
		return unix.Syscall(unix.SYS_CLOCK_SETTIME, unix.CLOCK_REALTIME, uintptr(unsafe.Pointer(&now)), 0)
	},
	"init_module": func() (uintptr, uintptr, unix.Errno) { return unix.Syscall(unix.SYS_INIT_MODULE, 0, 0, 0) },
	"iopl":        func() (uintptr, uintptr, unix.Errno) { return unix.Syscall(unix.SYS_IOPL, 0, 0, 0) },
	"open_by_handle_at": func() (uintptr, uintptr, unix.Errno) {
		return unix.Syscall(unix.SYS_OPEN_BY_HANDLE_AT, ^uintptr(0), 0, 0)
	},
	// setuid-root: setuid(0) works only where the binary ran with euid 0
	// (a setuid-root copy run by another user).
	"setuid-root": func() (uintptr, uintptr, unix.Errno) { return unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0) },
}

// chrootEscape tries the classic way out of a chroot: keep a descriptor of
// the current root, chroot into a subdirectory, fchdir back to the kept
// descriptor (now outside the root), climb with "..", and chroot there.
// It then stats /.inside: ok means the climb ended in the container's own
// root (which holds that marker), ENOENT that it reached another one.
func chrootEscape() (uintptr, uintptr, unix.Errno) {
	if err := os.MkdirAll("/tmp/jail", 0o755); err != nil {
		return 0, 0, err.(*os.PathError).Err.(unix.Errno)
	}
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return 0, 0, err.(unix.Errno)
	}
	for _, step := range []func() error{
		func() error { return unix.Chroot("/tmp/jail") },
		func() error { return unix.Fchdir(fd) },
		func() error {
			for range 64 {
				if err := unix.Chdir(".."); err != nil {
					return err
				}
			}
			return nil
		},
		func() error { return unix.Chroot(".") },
		func() error { var st unix.Stat_t; return unix.Stat("/.inside", &st) },
	} {
		if err := step(); err != nil {
			return 0, 0, err.(unix.Errno)
		}
	}
	return 0, 0, 0
}

func main() {
	for _, name := range os.Args[1:] {
		f, ok := calls[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "sysprobe: unknown call %q\n", name)
			os.Exit(2)
		}
		if _, _, errno := f(); errno != 0 {
			fmt.Printf("%s %s\n", name, unix.ErrnoName(errno))
		} else {
			fmt.Printf("%s ok\n", name)
		}
	}
}
