package runner

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockFilterSize is sizeof(struct sock_filter): u16 code, u8 jt, u8 jf,
// u32 k.
const sockFilterSize = 8

func encodeFilter(prog []unix.SockFilter) []byte {
	b := make([]byte, 0, len(prog)*sockFilterSize)
	for _, f := range prog {
		b = binary.NativeEndian.AppendUint16(b, f.Code)
		b = append(b, f.Jt, f.Jf)
		b = binary.NativeEndian.AppendUint32(b, f.K)
	}
	return b
}

func decodeFilter(b []byte) ([]unix.SockFilter, error) {
	if len(b) == 0 || len(b)%sockFilterSize != 0 || len(b)/sockFilterSize > 0xffff {
		return nil, fmt.Errorf("seccomp program of %d bytes", len(b))
	}
	prog := make([]unix.SockFilter, len(b)/sockFilterSize)
	for i := range prog {
		e := b[i*sockFilterSize:]
		prog[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(e), Jt: e[2], Jf: e[3], K: binary.NativeEndian.Uint32(e[4:])}
	}
	return prog, nil
}

// installSeccomp installs the filter on the calling thread, the one that
// execs the command (the filter goes with it through execve; the init's
// other threads end there).
func installSeccomp(b []byte) error {
	prog, err := decodeFilter(b)
	if err != nil {
		return fmt.Errorf("install seccomp filter: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("install seccomp filter: %w", errno)
	}
	return nil
}
