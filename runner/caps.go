package runner

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// switchUser drops the capability bounding set to caps.bounding, switches
// to uid/gid with the supplementary groups, and sets the remaining
// capability sets. It must run on the thread that will call execve (the
// caller has locked it): the bounding, effective, permitted and
// inheritable sets belong to a thread, not a process.
func switchUser(uid, gid int, groups []int, caps capSets) error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	// Dropping from the bounding set needs CAP_SETPCAP, so it comes first,
	// while still root with every capability.
	for c := 0; c <= last; c++ {
		if caps.bounding&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	// The syscall package changes ids on every thread of the process (the
	// kernel calls are per thread), so no thread of ours keeps root's.
	// Groups first: a non-root user could not set them any more. An empty
	// list still clears the groups the builder itself runs with.
	if groups == nil {
		groups = []int{}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("set supplementary groups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("set gid %d: %w", gid, err)
	}
	// Leaving uid 0 clears the permitted and effective sets (no
	// PR_SET_KEEPCAPS), which is what a non-root user should have.
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("set uid %d: %w", uid, err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(caps.effective), Permitted: uint32(caps.permitted), Inheritable: uint32(caps.inheritable)},
		{Effective: uint32(caps.effective >> 32), Permitted: uint32(caps.permitted >> 32), Inheritable: uint32(caps.inheritable >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("set capabilities: %w", err)
	}
	// Ambient capabilities would survive execve for a non-root user; the
	// builder may run with some, the container gets none. (EINVAL: a
	// kernel older than 4.3 has none to clear.)
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// Changing the effective uid or gid clears the parent-death signal;
	// set it again so the container still dies with the builder.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("set parent-death signal: %w", err)
	}
	return nil
}

// lastCap is the highest capability number the running kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read cap_last_cap: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse cap_last_cap: %w", err)
	}
	return n, nil
}
