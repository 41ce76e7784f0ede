package stopsignal

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Parse reads a STOPSIGNAL: a number, or a name with or without SIG
// in any case; "" is SIGTERM.
func Parse(s string) (unix.Signal, error) {
	if s == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	name := "SIG" + strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	// SIGRTMIN+n and SIGRTMAX-n, as Docker spells the real-time signals
	// (glibc's SIGRTMIN is 34, SIGRTMAX 64).
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN"); ok {
		if n, err := strconv.Atoi(strings.TrimPrefix(rest, "+")); rest == "" || err == nil && n >= 0 && n <= 30 {
			return unix.Signal(34 + n), nil
		}
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMAX"); ok {
		if n, err := strconv.Atoi(strings.TrimPrefix(rest, "-")); rest == "" || err == nil && n >= 0 && n <= 30 {
			return unix.Signal(64 - n), nil
		}
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}
