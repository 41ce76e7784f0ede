package runner

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-dev/builder/internal/testutil"
)

// deadOwner is the owner part of a cgroup name made by a process that has
// ended: a child of this test, started and reaped.
func deadOwner(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start, err := processStart(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	ns, err := pidNamespace()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s.%d.%d", ns, cmd.Process.Pid, start)
}

func TestCgroupOwnerGone(t *testing.T) {
	me := cgroupOwner()
	if me == "" {
		t.Fatal("no owner for this process")
	}
	dead := deadOwner(t)
	parts := strings.Split(me, ".")
	for _, tc := range []struct {
		name string
		gone bool
	}{
		{newCgroupName(), false},
		{"run-" + me + "-0123", false},
		{"run-" + dead + "-0123", true},
		// This pid, started at another time: a reused pid.
		{"run-" + parts[0] + "." + parts[1] + ".1-0123", true},
		// Another pid namespace's: not judged.
		{"run-1." + strings.Join(strings.Split(dead, ".")[1:], ".") + "-0123", false},
		{"run-0123456789abcdef", false}, // made without an owner
		{"0123456789abcdef0123", false}, // a container's, named by its ID
		{"run-x.y.z-0123", false},
	} {
		if got := ownerGone(tc.name); got != tc.gone {
			t.Errorf("ownerGone(%q) = %v, want %v", tc.name, got, tc.gone)
		}
	}
	if !strings.HasPrefix(newCgroupName(), "run-"+me+"-") {
		t.Errorf("newCgroupName() = %q, want it to name %s", newCgroupName(), me)
	}
}

// The sweep removes the dead makers' cgroups under builder/ of every
// hierarchy and leaves live makers', other names and cgroups in use (here:
// a directory that is not empty, which rmdir refuses as it refuses a
// cgroup with processes).
func TestSweepCgroups(t *testing.T) {
	dead := deadOwner(t)
	v1, v2 := t.TempDir(), t.TempDir()
	mk := func(root, name string) string {
		p := filepath.Join(root, cgroupParent, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gone := []string{mk(v1, "run-"+dead+"-01"), mk(v2, "run-"+dead+"-02")}
	busy := mk(v1, "run-"+dead+"-03")
	if err := os.WriteFile(filepath.Join(busy, "cgroup.procs"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kept := []string{busy, mk(v1, newCgroupName()), mk(v2, "run-0123456789abcdef"), mk(v2, "some-container")}
	sweepCgroupsIn(cgroupMounts{v1: map[string]string{"pids": v1, "memory": v1}, v2: v2})
	for _, p := range gone {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s kept", p)
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

// On this machine's real cgroups: a dead maker's empty cgroup goes, and
// a cgroup with a process in it stays (rmdir refuses it).
func TestSweepRealCgroups(t *testing.T) {
	testutil.RequiresRoot(t)
	r := Resources{Pids: 16}
	requiresCgroups(t, r)
	name := "run-" + deadOwner(t) + "-" + strings.TrimPrefix(newCgroupName(), "run-"+cgroupOwner()+"-")
	cg, err := newCgroup(name, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.remove() })
	busyName := "run-" + deadOwner(t) + "-busy"
	startLimited(t, r, busyName, "sleep", "30")
	m, err := readCgroupMounts(mountinfoPath)
	if err != nil {
		t.Fatal(err)
	}
	sweepCgroupsIn(m)
	for _, d := range cg.dirs {
		if _, err := os.Stat(d.path); err == nil {
			t.Errorf("the dead maker's cgroup %s is kept", d.path)
		}
	}
	root := m.v1["pids"]
	if root == "" {
		root = m.v2
	}
	if _, err := os.Stat(filepath.Join(root, cgroupParent, busyName)); err != nil {
		t.Errorf("a cgroup in use was removed: %v", err)
	}
}
