package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestLimitFiles(t *testing.T) {
	r := Resources{Memory: 16 << 20, Pids: 8, CPUs: 1.5}
	tests := []struct {
		ctl  string
		v2   bool
		want []cgroupFile
	}{
		{ctlMemory, false, []cgroupFile{
			{name: "memory.limit_in_bytes", value: "16777216"},
			{name: "memory.memsw.limit_in_bytes", value: "16777216", optional: true},
		}},
		{ctlMemory, true, []cgroupFile{
			{name: "memory.max", value: "16777216"},
			{name: "memory.swap.max", value: "0", optional: true},
		}},
		{ctlPids, false, []cgroupFile{{name: "pids.max", value: "8", atExec: true}}},
		{ctlPids, true, []cgroupFile{{name: "pids.max", value: "8", atExec: true}}},
		{ctlCPU, false, []cgroupFile{
			{name: "cpu.cfs_period_us", value: "100000"},
			{name: "cpu.cfs_quota_us", value: "150000"},
		}},
		{ctlCPU, true, []cgroupFile{{name: "cpu.max", value: "150000 100000"}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s v2=%v", tt.ctl, tt.v2), func(t *testing.T) {
			if got := limitFiles(tt.ctl, tt.v2, r); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	// Float rounding: 0.3 CPUs is 30000µs, not 29999.
	if got := limitFiles(ctlCPU, true, Resources{CPUs: 0.3}); got[0].value != "30000 100000" {
		t.Fatalf("0.3 cpus: %q", got[0].value)
	}
}

func TestControllers(t *testing.T) {
	if got := controllers(Resources{Memory: 1, CPUs: 1}); !reflect.DeepEqual(got, []string{"memory", "cpu"}) {
		t.Fatalf("got %q", got)
	}
	var r *Resources
	if r.limited() || (&Resources{}).limited() || !(&Resources{Pids: 1}).limited() {
		t.Fatal("limited() wrong")
	}
}

func TestValidateResources(t *testing.T) {
	tests := []struct {
		r       *Resources
		wantErr string
	}{
		{nil, ""},
		{&Resources{}, ""},
		{&Resources{Memory: 6 << 20, Pids: 1, CPUs: 0.01}, ""},
		{&Resources{CPUs: 4}, ""},
		{&Resources{Memory: 1 << 20}, "memory limit 1048576: the minimum is 6MB"},
		{&Resources{Memory: -1}, "memory limit -1"},
		{&Resources{Pids: -1}, "pids limit -1 is negative"},
		{&Resources{CPUs: 0.001}, "cpus limit 0.001: the range is 0.01 to 4.00"},
		{&Resources{CPUs: 4.5}, "cpus limit 4.5: the range is 0.01 to 4.00"},
		{&Resources{CPUs: -1}, "cpus limit -1"},
	}
	for _, tt := range tests {
		err := validateResources(tt.r, 4)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%+v: got %v, want %q", tt.r, err, tt.wantErr)
		}
	}
}

func TestParseCgroupMounts(t *testing.T) {
	tests := []struct {
		name      string
		mountinfo string
		v1        map[string]string
		v2        string
	}{
		{
			name: "hybrid, one controller per hierarchy",
			mountinfo: `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`,
			v1: map[string]string{"cpu": "/sys/fs/cgroup/cpu", "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"},
			v2: "/sys/fs/cgroup/unified",
		},
		{
			name: "v1 with cpu,cpuacct, mounted twice",
			mountinfo: `31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw shared:10 - cgroup cgroup rw,memory
90 30 0:31 / /mnt/other\040mem rw - cgroup cgroup rw,memory
`,
			v1: map[string]string{"cpu": "/sys/fs/cgroup/cpu,cpuacct", "memory": "/sys/fs/cgroup/memory"},
		},
		{
			name:      "pure v2",
			mountinfo: "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
			v1:        map[string]string{},
			v2:        "/sys/fs/cgroup",
		},
		{
			name:      "escaped mount point",
			mountinfo: `40 30 0:37 / /tmp/a\040b rw - cgroup2 cgroup2 rw` + "\n",
			v1:        map[string]string{},
			v2:        "/tmp/a b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCgroupMounts(strings.NewReader(tt.mountinfo))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.v1, tt.v1) || got.v2 != tt.v2 {
				t.Fatalf("got v1 %v v2 %q, want v1 %v v2 %q", got.v1, got.v2, tt.v1, tt.v2)
			}
		})
	}
}

func TestPlanCgroup(t *testing.T) {
	all := Resources{Memory: 16 << 20, Pids: 8, CPUs: 1}
	hybrid := cgroupMounts{
		v1: map[string]string{"memory": "/cg/memory", "pids": "/cg/pids", "cpu": "/cg/cpu,cpuacct"},
		v2: "/cg/unified",
	}
	tests := []struct {
		name    string
		mounts  cgroupMounts
		v2      map[string]bool
		r       Resources
		want    []cgroupDir
		wantErr string
	}{
		{"hybrid: v1 for each", hybrid, map[string]bool{}, all, []cgroupDir{
			{path: "/cg/memory/builder/c1", controllers: []string{"memory"}},
			{path: "/cg/pids/builder/c1", controllers: []string{"pids"}},
			{path: "/cg/cpu,cpuacct/builder/c1", controllers: []string{"cpu"}},
		}, ""},
		{"only what the limits need", hybrid, nil, Resources{CPUs: 1}, []cgroupDir{
			{path: "/cg/cpu,cpuacct/builder/c1", controllers: []string{"cpu"}},
		}, ""},
		{"pure v2: one directory", cgroupMounts{v2: "/cg"}, map[string]bool{"memory": true, "pids": true, "cpu": true, "io": true}, all, []cgroupDir{
			{path: "/cg/builder/c1", v2: true, controllers: []string{"memory", "pids", "cpu"}},
		}, ""},
		{"v1 shared by two controllers", cgroupMounts{v1: map[string]string{"memory": "/cg/x", "pids": "/cg/x"}}, nil, Resources{Memory: 16 << 20, Pids: 1}, []cgroupDir{
			{path: "/cg/x/builder/c1", controllers: []string{"memory", "pids"}},
		}, ""},
		{"mixed", cgroupMounts{v1: map[string]string{"memory": "/cg/memory"}, v2: "/cg/unified"}, map[string]bool{"pids": true}, Resources{Memory: 16 << 20, Pids: 1}, []cgroupDir{
			{path: "/cg/memory/builder/c1", controllers: []string{"memory"}},
			{path: "/cg/unified/builder/c1", v2: true, controllers: []string{"pids"}},
		}, ""},
		{"missing in v2", cgroupMounts{v2: "/cg"}, map[string]bool{"memory": true}, all, nil,
			"runner: pids limit: the cgroup pids controller is not available (no cgroup v1 hierarchy has it and it is not in /cg/cgroup.controllers)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := planCgroup(tt.mounts, tt.v2, "c1", tt.r)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestReadKeyed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "memory.oom_control")
	if err := os.WriteFile(p, []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readKeyed(p, "oom_kill"); got != 3 {
		t.Fatalf("oom_kill %d", got)
	}
	if got := readKeyed(p, "oom"); got != -1 {
		t.Fatalf("missing key: %d", got)
	}
	if got := readKeyed(p+".none", "oom_kill"); got != -1 {
		t.Fatalf("missing file: %d", got)
	}
}

// fakeCgroups points the cgroup lookup at a mountinfo file listing the
// given mounts (fstype, super options, mount point) for the rest of t.
func fakeCgroups(t *testing.T, mounts ...[3]string) {
	t.Helper()
	var b strings.Builder
	for i, m := range mounts {
		fmt.Fprintf(&b, "%d 1 0:%d / %s rw - %s %s %s\n", 100+i, 50+i, m[2], m[0], m[0], m[1])
	}
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	old := mountinfoPath
	mountinfoPath = p
	hierarchiesOnce = sync.Once{} // findHierarchies reads the fake
	t.Cleanup(func() {
		mountinfoPath = old
		hierarchiesOnce = sync.Once{}
	})
}

// TestMissingController: a limit whose controller cannot be had fails
// Start with an error naming the limit and why, and leaves nothing behind.
func TestMissingController(t *testing.T) {
	v2root := t.TempDir()
	if err := os.WriteFile(filepath.Join(v2root, "cgroup.controllers"), []byte("cpu io\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v1mem := t.TempDir() // a "hierarchy" whose cgroups have no files
	tests := []struct {
		name    string
		mounts  [][3]string
		r       Resources
		wantErr string
	}{
		{"no cgroups at all", nil, Resources{Memory: 16 << 20},
			"runner: memory limit: the cgroup memory controller is not available (no cgroup v1 hierarchy has it and no cgroup v2 hierarchy is mounted)"},
		{"not in the v2 controllers", [][3]string{{"cgroup2", "rw", v2root}}, Resources{Pids: 8},
			"runner: pids limit: the cgroup pids controller is not available (no cgroup v1 hierarchy has it and it is not in " + v2root + "/cgroup.controllers)"},
		{"limit file missing", [][3]string{{"cgroup", "rw,memory", v1mem}}, Resources{Memory: 16 << 20},
			"runner: memory limit: write " + v1mem + "/builder/t1/memory.limit_in_bytes: open " + v1mem + "/builder/t1/memory.limit_in_bytes: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakeCgroups(t, tt.mounts...)
			c := newContainer(t, "", "true")
			c.spec.Resources = &tt.r
			c.spec.CgroupName = "t1"
			_, _, err := c.run(t)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("got %v\nwant %s", err, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(v1mem, "builder/t1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the half-made cgroup is left: %v", err)
	}
}

// requiresCgroups skips t unless this machine offers the controllers r
// needs, v1 or v2.
func requiresCgroups(t *testing.T, r Resources) {
	t.Helper()
	m, err := readCgroupMounts(mountinfoPath)
	if err != nil {
		t.Fatal(err)
	}
	var v2 string
	if m.v2 != "" {
		data, _ := os.ReadFile(filepath.Join(m.v2, "cgroup.controllers"))
		v2 = " " + string(data) + " "
	}
	for _, ctl := range controllers(r) {
		if m.v1[ctl] == "" && !strings.Contains(v2, " "+ctl+" ") {
			t.Skipf("no cgroup %s controller on this machine", ctl)
		}
	}
}

// startLimited starts args in a container with r and returns the process;
// the test ends it.
func startLimited(t *testing.T, r Resources, name string, args ...string) (*container, *Process) {
	t.Helper()
	requiresCgroups(t, r)
	c := newContainer(t, "", args...)
	c.spec.Resources = &r
	c.spec.CgroupName = name
	p, err := Start(context.Background(), c.spec, Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Signal(syscall.SIGKILL)
		_ = p.Wait()
	})
	return c, p
}

// TestLimitsWritten: the limits are in the cgroup files, as the kernel
// reads them back, while the container runs in the cgroup; after Wait the
// cgroups are gone.
func TestLimitsWritten(t *testing.T) {
	r := Resources{Memory: 32 << 20, Pids: 10, CPUs: 1.5}
	name := newCgroupName()
	_, p := startLimited(t, r, name, "sleep", "1000")
	dirs := append([]cgroupDir(nil), p.cg.dirs...)
	seen := map[string]bool{}
	for _, d := range dirs {
		if filepath.Base(d.path) != name || filepath.Base(filepath.Dir(d.path)) != cgroupParent {
			t.Errorf("cgroup %s is not %s/%s", d.path, cgroupParent, name)
		}
		for _, ctl := range d.controllers {
			seen[ctl] = true
			for _, f := range limitFiles(ctl, d.v2, r) {
				data, err := os.ReadFile(filepath.Join(d.path, f.name))
				if f.optional && errors.Is(err, os.ErrNotExist) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.TrimSpace(string(data)); got != f.value {
					t.Errorf("%s/%s = %q, want %q", d.path, f.name, got, f.value)
				}
			}
		}
		procs, err := os.ReadFile(filepath.Join(d.path, "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(procs)) != strconv.Itoa(p.Pid()) {
			t.Errorf("%s holds %q, want only pid 1 (%d)", d.path, procs, p.Pid())
		}
	}
	if len(seen) != 3 {
		t.Fatalf("controllers %v, want memory, pids and cpu", seen)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ee *ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.Code != 137 || ee.OOMKilled {
		t.Fatalf("want exit 137 without OOM, got %v", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d.path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left after Wait (%v)", d.path, err)
		}
	}
}

func TestMemoryLimitOOM(t *testing.T) {
	r := Resources{Memory: 16 << 20}
	requiresCgroups(t, r)
	// tail keeps everything after the last newline: 64 MB of it.
	c := newContainer(t, "", sh("head -c 64m /dev/zero | tail")...)
	c.spec.Resources = &r
	_, _, err := c.run(t)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 137 || !ee.OOMKilled {
		t.Fatalf("want exit 137 OOM-killed, got %v", err)
	}
	// Under the limit, nothing is killed.
	c = newContainer(t, "", sh("head -c 4m /dev/zero | tail | wc -c")...)
	c.spec.Resources = &r
	if out := c.mustRun(t); out != "4194304\n" {
		t.Fatalf("got %q", out)
	}
}

func TestPidsLimit(t *testing.T) {
	requiresCgroups(t, Resources{Pids: 1})
	t.Run("fork loop under 8", func(t *testing.T) {
		// The sleeps that could start die with pid 1.
		c := newContainer(t, "", sh("for i in $(seq 20); do sleep 1000 & done; echo all started")...)
		c.spec.Resources = &Resources{Pids: 8}
		out, errOut, err := c.run(t)
		if exitCodeOf(t, err) == 0 || strings.Contains(out, "all started") || !strings.Contains(errOut, "can't fork") {
			t.Fatalf("fork loop under pids 8: %v, stdout %q, stderr %q", err, out, errOut)
		}
	})
	t.Run("1 for a user", func(t *testing.T) {
		// Fewer pids than the init has threads: it sets the limit only
		// as it execs. Its descriptor of pids.max does not reach the
		// command.
		c := newContainer(t, "", sh("echo $(ls /proc/self/fd)")...)
		c.spec.User = "nobody"
		c.spec.Resources = &Resources{Pids: 1}
		out, errOut, err := c.run(t)
		if exitCodeOf(t, err) == 0 || out != "" || !strings.Contains(errOut, "can't fork") {
			t.Fatalf("fork under pids 1: %v, stdout %q, stderr %q", err, out, errOut)
		}
		c = newContainer(t, "", sh("echo $(ls /proc/self/fd)")...)
		c.spec.Resources = &Resources{Pids: 2}
		if out := c.mustRun(t); out != "0 1 2 3\n" {
			t.Fatalf("under pids 2: %q", out)
		}
	})
}

// TestCgroupInUse: a second container may not take the cgroup of one that
// runs; a left-over empty one is taken over.
func TestCgroupInUse(t *testing.T) {
	r := Resources{Pids: 10}
	name := newCgroupName()
	_, p := startLimited(t, r, name, "sleep", "1000")
	c := newContainer(t, "", "true")
	c.spec.Resources = &r
	c.spec.CgroupName = name
	if _, _, err := c.run(t); err == nil || !strings.Contains(err.Error(), "exists and is in use") {
		t.Fatalf("want the cgroup in use, got %v", err)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.Wait()

	// Wait removed it; make it again, empty, as a killed builder leaves it.
	m, _ := readCgroupMounts(mountinfoPath)
	base := m.v1[ctlPids]
	if base == "" {
		base = m.v2
	}
	dir := filepath.Join(base, cgroupParent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	c.mustRun(t)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("taken-over cgroup left after the run (%v)", err)
	}
}
