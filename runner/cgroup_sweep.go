package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A RUN's cgroup is removed when its container ends (Process.Wait). A
// builder killed meanwhile cannot: its container dies with it (the init's
// parent-death signal), and the cgroup stays, empty, for good. So the
// default name of a cgroup says which process made it, and the first
// builder process that makes one removes those whose maker is gone.
//
// The maker is told by its pid namespace, pid and start time (in clock
// ticks since boot, which a reused pid does not repeat). A cgroup made by
// a live process is never touched: it may be empty only because its
// container has not joined it yet. One of another pid namespace is not
// judged. rmdir itself refuses a cgroup that has processes.

// cgroupOwner is this process as the name of the cgroups it makes
// records it: "<pid namespace>.<pid>.<start time>"; "" if it cannot be
// told, and then its cgroups are named without it (and never swept).
var cgroupOwner = sync.OnceValue(func() string {
	ns, err := pidNamespace()
	if err != nil {
		return ""
	}
	pid := os.Getpid()
	start, err := processStart(pid)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s.%d.%d", ns, pid, start)
})

// pidNamespace is the inode number of this process's pid namespace.
func pidNamespace() (string, error) {
	l, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return "", err
	}
	// "pid:[4026531836]"
	ino := strings.TrimSuffix(strings.TrimPrefix(l, "pid:["), "]")
	if _, err := strconv.ParseUint(ino, 10, 64); err != nil {
		return "", fmt.Errorf("pid namespace %q: %w", l, err)
	}
	return ino, nil
}

// processStart is the start time of process pid, from /proc/pid/stat.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold anything; the fields
	// after it start with the state (field 3); the start time is field 22.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// ownerGone reports whether the cgroup name was made by a process of this
// pid namespace that is no longer running.
func ownerGone(name string) bool {
	rest, ok := strings.CutPrefix(name, "run-")
	if !ok {
		return false
	}
	owner, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	parts := strings.Split(owner, ".")
	if len(parts) != 3 {
		return false
	}
	mine := strings.Split(cgroupOwner(), ".")
	if len(mine) != 3 || parts[0] != mine[0] {
		return false
	}
	pid, err1 := strconv.Atoi(parts[1])
	start, err2 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	now, err := processStart(pid)
	return errors.Is(err, os.ErrNotExist) || err == nil && now != start
}

var sweepCgroupsOnce sync.Once

// sweepCgroups removes, once per process, the RUN cgroups under each
// hierarchy's builder/ group whose maker is gone (see above). Failures
// only leave them for the next builder.
func sweepCgroups(m cgroupMounts) {
	sweepCgroupsOnce.Do(func() { sweepCgroupsIn(m) })
}

func sweepCgroupsIn(m cgroupMounts) {
	roots := map[string]bool{}
	for _, mnt := range m.v1 {
		roots[mnt] = true
	}
	if m.v2 != "" {
		roots[m.v2] = true
	}
	for root := range roots {
		parent := filepath.Join(root, cgroupParent)
		entries, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() && ownerGone(e.Name()) {
				_ = unix.Rmdir(filepath.Join(parent, e.Name()))
			}
		}
	}
}
