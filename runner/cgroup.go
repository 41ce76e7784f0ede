package runner

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Resources are a container's resource limits, as `docker run --memory
// --pids-limit --cpus` sets them. A zero field is no limit.
type Resources struct {
	// Memory is the most memory (bytes) the container may use; swap does
	// not extend it. Past it, the kernel's OOM killer kills a process of
	// the container.
	Memory int64
	// Pids is the most processes (and threads) the container may have at
	// once; fork fails past it.
	Pids int64
	// CPUs is how many CPUs' worth of time the container may use, e.g.
	// 1.5: a CFS quota over a 100ms period.
	CPUs float64
}

// limited reports whether r sets any limit, i.e. the container needs a
// cgroup. Without one (every Dockerfile RUN) no cgroup is made at all, so
// builds also work where cgroups are not writable.
func (r *Resources) limited() bool {
	return r != nil && (r.Memory != 0 || r.Pids != 0 || r.CPUs != 0)
}

// DefaultBuildPidsLimit is the pids limit of each RUN step of a build
// unless `build --pids-limit` says otherwise (Docker and BuildKit set
// none; Podman's containers get 2048). A fork bomb in a Dockerfile then
// stops at 4096 tasks instead of filling the host's pid space (32768 on
// many hosts) and taking every other process's fork with it, while the
// heaviest honest steps stay well under it: pids count threads, and a
// parallel make, a JVM or a Go or Rust toolchain running one worker per
// core uses tens to a few hundred.
const DefaultBuildPidsLimit = 4096

// Minimums as Docker enforces them: below 6 MB the container's own setup
// may not fit, and the kernel refuses a CFS quota under 1ms (0.01 of the
// period).
const (
	minMemory = 6 << 20
	minCPUs   = 0.01
	cfsPeriod = 100000 // µs; Docker's --cpus period
)

// validateResources checks r the way Docker does before anything is made.
func validateResources(r *Resources, numCPU int) error {
	if r == nil {
		return nil
	}
	if r.Memory < 0 || r.Memory > 0 && r.Memory < minMemory {
		return fmt.Errorf("runner: memory limit %d: the minimum is 6MB", r.Memory)
	}
	if r.Pids < 0 {
		return fmt.Errorf("runner: pids limit %d is negative", r.Pids)
	}
	if r.CPUs < 0 || r.CPUs > 0 && r.CPUs < minCPUs || r.CPUs > float64(numCPU) || math.IsNaN(r.CPUs) {
		return fmt.Errorf("runner: cpus limit %g: the range is %.2f to %d.00 (the CPUs available)", r.CPUs, minCPUs, numCPU)
	}
	return nil
}

// cgroupParent is the group every container's cgroup is made in, directly
// under each hierarchy's root (Docker's is "docker", Podman's
// "libpod_parent"): only the container's init ever joins it, never the
// process that runs the builder.
const cgroupParent = "builder"

// mountinfoPath is where the cgroup file systems are looked up; tests point
// it at a file describing fake hierarchies in temporary directories.
var mountinfoPath = "/proc/self/mountinfo"

// Controllers the limits need, in the order they are set up.
const (
	ctlMemory = "memory"
	ctlPids   = "pids"
	ctlCPU    = "cpu"
)

// limitName names the limit that needs a controller, for errors.
var limitName = map[string]string{ctlMemory: "memory limit", ctlPids: "pids limit", ctlCPU: "cpus limit"}

// controllers lists the controllers r needs.
func controllers(r Resources) []string {
	var out []string
	if r.Memory > 0 {
		out = append(out, ctlMemory)
	}
	if r.Pids > 0 {
		out = append(out, ctlPids)
	}
	if r.CPUs > 0 {
		out = append(out, ctlCPU)
	}
	return out
}

// cgroupFile is one value written into a container's cgroup.
type cgroupFile struct {
	name, value string
	// optional files are skipped when the kernel does not have them: swap
	// accounting is a build and boot option, and without swap there is
	// nothing for it to limit.
	optional bool
	// atExec files are opened here and written by the init right before
	// it execs the command (see atExecWrite).
	atExec bool
}

// atExecWrite is a limit the init itself sets, through a descriptor of the
// cgroup file opened by Start, as the very last thing before execve.
//
// pids.max counts threads, and the init is a Go program with several: a
// limit below their number (a `--pids-limit 2`) would make the Go runtime
// abort when it starts one more. Written at the last moment instead, the
// limit holds from the command's first instruction on, which then has a
// single thread again (execve ends the others).
type atExecWrite struct {
	Fd    int
	Value string
	Limit string // the limit's name, for errors
	Path  string
}

// write sets the value; it runs in the init on its last steps, so it makes
// one system call and allocates nothing the runtime could want a thread
// for.
func (w atExecWrite) write() error {
	if _, err := unix.Write(w.Fd, []byte(w.Value)); err != nil {
		return fmt.Errorf("%s: write %q to %s: %w", w.Limit, w.Value, w.Path, err)
	}
	return nil
}

// limitFiles are the files that set r's limit for one controller, in the
// order to write them, for a v1 or a v2 hierarchy.
func limitFiles(ctl string, v2 bool, r Resources) []cgroupFile {
	switch ctl {
	case ctlMemory:
		mem := strconv.FormatInt(r.Memory, 10)
		if v2 {
			return []cgroupFile{{name: "memory.max", value: mem}, {name: "memory.swap.max", value: "0", optional: true}}
		}
		// memsw is memory plus swap, and may never be below the memory
		// limit: the memory limit goes first. Equal, swap adds nothing.
		return []cgroupFile{{name: "memory.limit_in_bytes", value: mem}, {name: "memory.memsw.limit_in_bytes", value: mem, optional: true}}
	case ctlPids:
		return []cgroupFile{{name: "pids.max", value: strconv.FormatInt(r.Pids, 10), atExec: true}}
	case ctlCPU:
		quota := strconv.FormatInt(int64(math.Round(r.CPUs*cfsPeriod)), 10)
		if v2 {
			return []cgroupFile{{name: "cpu.max", value: quota + " " + strconv.Itoa(cfsPeriod)}}
		}
		return []cgroupFile{{name: "cpu.cfs_period_us", value: strconv.Itoa(cfsPeriod)}, {name: "cpu.cfs_quota_us", value: quota}}
	}
	return nil
}

// cgroupMounts are the cgroup file systems of this machine.
type cgroupMounts struct {
	v1 map[string]string // controller -> mount point of its v1 hierarchy
	v2 string            // mount point of the unified hierarchy; "" if none
}

// readCgroupMounts finds the cgroup mounts in the mountinfo file at path.
func readCgroupMounts(path string) (cgroupMounts, error) {
	f, err := os.Open(path)
	if err != nil {
		return cgroupMounts{}, err
	}
	defer f.Close()
	return parseCgroupMounts(f)
}

// parseCgroupMounts finds the cgroup mounts in a mountinfo table. A v1
// hierarchy names its controllers in its super options ("rw,cpu,cpuacct");
// the first mount of each counts.
func parseCgroupMounts(table io.Reader) (cgroupMounts, error) {
	infos, err := mountinfo.GetMountsFromReader(table, mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return cgroupMounts{}, err
	}
	m := cgroupMounts{v1: map[string]string{}}
	for _, i := range infos {
		switch i.FSType {
		case "cgroup2":
			if m.v2 == "" {
				m.v2 = i.Mountpoint
			}
		case "cgroup":
			for _, opt := range strings.Split(i.VFSOptions, ",") {
				if _, ok := limitName[opt]; ok && m.v1[opt] == "" {
					m.v1[opt] = i.Mountpoint
				}
			}
		}
	}
	return m, nil
}

// cgroupDir is the container's cgroup in one hierarchy.
type cgroupDir struct {
	path        string
	v2          bool
	controllers []string
}

// cgroup is a container's cgroup: one directory per v1 hierarchy it needs,
// or one in the unified hierarchy, or a mix (a hybrid host may have moved
// some controllers to v2).
type cgroup struct {
	dirs []cgroupDir
	// atExec are the files the init writes (opened here, passed to it);
	// Start closes its copies once the init has them.
	atExec []*os.File
	writes []atExecWrite // Fd is an index into atExec until Start sets it
	// pool, if set, keeps the cgroup for its next container once this
	// one ended (see release).
	pool *Pool
}

// newCgroupName is a default name for a container's cgroup:
// "run-OWNER-RANDOM", OWNER saying which process made it (see
// sweepCgroups).
func newCgroupName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails on Linux
	if o := cgroupOwner(); o != "" {
		return "run-" + o + "-" + hex.EncodeToString(b)
	}
	return "run-" + hex.EncodeToString(b)
}

// newCgroup makes the cgroup named name with r's limits, which the
// container's init then joins (add) before it does anything else. Each
// controller is taken from a v1 hierarchy if one has it, else from the
// unified hierarchy if it offers it. It fails, naming the limit, when a
// controller is missing or a limit cannot be written; nothing is left
// behind then.
func newCgroup(name string, r Resources) (_ *cgroup, err error) {
	h, err := findHierarchies()
	if err != nil {
		return nil, err
	}
	mounts, v2Available := h.mounts, h.v2Available
	sweepCgroups(mounts)
	plan, err := planCgroup(mounts, v2Available, name, r)
	if err != nil {
		return nil, err
	}
	cg := &cgroup{}
	defer func() {
		if err != nil {
			err = errors.Join(err, cg.remove())
		}
	}()
	for _, d := range plan {
		if d.v2 {
			if err := enableV2(filepath.Dir(filepath.Dir(d.path)), d.controllers); err != nil {
				return nil, err
			}
		} else if err := os.Mkdir(filepath.Dir(d.path), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("runner: %s: make cgroup %s: %w", limitName[d.controllers[0]], filepath.Dir(d.path), err)
		}
		if err := makeCgroupDir(d.path); err != nil {
			return nil, fmt.Errorf("runner: %s: %w", limitName[d.controllers[0]], err)
		}
		cg.dirs = append(cg.dirs, d)
		for _, ctl := range d.controllers {
			for _, f := range limitFiles(ctl, d.v2, r) {
				if f.atExec {
					if err := cg.openAtExec(d.path, f, limitName[ctl]); err != nil {
						return nil, err
					}
					continue
				}
				if err := writeCgroupFile(d.path, f); err != nil {
					return nil, fmt.Errorf("runner: %s: %w", limitName[ctl], err)
				}
			}
		}
	}
	return cg, nil
}

// planCgroup decides the directories of the cgroup named name that r's
// limits need: for each controller, the v1 hierarchy that has it, else the
// unified one if v2Available lists it there, else an error naming the
// limit and why it cannot be had.
func planCgroup(mounts cgroupMounts, v2Available map[string]bool, name string, r Resources) ([]cgroupDir, error) {
	var dirs []cgroupDir
	add := func(path string, v2 bool, ctl string) {
		for i := range dirs {
			if dirs[i].path == path {
				dirs[i].controllers = append(dirs[i].controllers, ctl)
				return
			}
		}
		dirs = append(dirs, cgroupDir{path: path, v2: v2, controllers: []string{ctl}})
	}
	for _, ctl := range controllers(r) {
		if mnt, ok := mounts.v1[ctl]; ok {
			add(filepath.Join(mnt, cgroupParent, name), false, ctl)
			continue
		}
		if v2Available[ctl] {
			add(filepath.Join(mounts.v2, cgroupParent, name), true, ctl)
			continue
		}
		why := "no cgroup v1 hierarchy has it and no cgroup v2 hierarchy is mounted"
		if mounts.v2 != "" {
			why = fmt.Sprintf("no cgroup v1 hierarchy has it and it is not in %s", filepath.Join(mounts.v2, "cgroup.controllers"))
		}
		return nil, fmt.Errorf("runner: %s: the cgroup %s controller is not available (%s)", limitName[ctl], ctl, why)
	}
	return dirs, nil
}

// enableV2 makes the builder parent group under the unified root and
// delegates ctls to it: a cgroup v2 controller works in a group only if its
// parent lists it in cgroup.subtree_control, level by level from the root.
// The root may list it (it has no "no internal processes" rule); the
// parent group holds no processes, so it may too.
func enableV2(root string, ctls []string) error {
	parent := filepath.Join(root, cgroupParent)
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("runner: %s: make cgroup %s: %w", limitName[ctls[0]], parent, err)
	}
	for _, dir := range []string{root, parent} {
		enabled, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if err != nil {
			return fmt.Errorf("runner: %s: %w", limitName[ctls[0]], err)
		}
		on := strings.Fields(string(enabled))
		for _, ctl := range ctls {
			if contains(on, ctl) {
				continue
			}
			f := cgroupFile{name: "cgroup.subtree_control", value: "+" + ctl}
			if err := writeCgroupFile(dir, f); err != nil {
				return fmt.Errorf("runner: %s: enable the %s controller: %w", limitName[ctl], ctl, err)
			}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// makeCgroupDir makes a container's cgroup directory. One left over from a
// container of the same name that was not cleaned up (the builder killed)
// is taken over if it is empty: rmdir fails on a cgroup that still has
// processes or children, so one in use is never taken.
func makeCgroupDir(p string) error {
	err := os.Mkdir(p, 0o755)
	if errors.Is(err, os.ErrExist) {
		if rerr := unix.Rmdir(p); rerr != nil {
			return fmt.Errorf("cgroup %s exists and is in use: %w", p, rerr)
		}
		err = os.Mkdir(p, 0o755)
	}
	if err != nil {
		return fmt.Errorf("make cgroup %s: %w", p, err)
	}
	return nil
}

// writeCgroupFile writes one value. cgroup files are never created: a
// missing one is a kernel without that feature.
func writeCgroupFile(dir string, f cgroupFile) error {
	p := filepath.Join(dir, f.name)
	fd, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		if f.optional && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("write %s: %w", p, err)
	}
	// One write per value: the kernel parses each write on its own.
	_, err = fd.WriteString(f.value)
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", f.value, p, err)
	}
	return nil
}

// openAtExec opens f for the init to write (see atExecWrite). Opening it
// here checks what can be checked before the container starts: that the
// file exists and may be written.
func (cg *cgroup) openAtExec(dir string, f cgroupFile, limit string) error {
	p := filepath.Join(dir, f.name)
	fd, err := os.OpenFile(p, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("runner: %s: open %s: %w", limit, p, err)
	}
	cg.writes = append(cg.writes, atExecWrite{Fd: len(cg.atExec), Value: f.value, Limit: limit, Path: p})
	cg.atExec = append(cg.atExec, fd)
	return nil
}

// closeAtExec closes Start's copies of the files the init writes.
func (cg *cgroup) closeAtExec() {
	for _, f := range cg.atExec {
		f.Close()
	}
	cg.atExec = nil
}

// add moves the process pid into the cgroup, in every hierarchy.
func (cg *cgroup) add(pid int) error {
	for _, d := range cg.dirs {
		if err := writeCgroupFile(d.path, cgroupFile{name: "cgroup.procs", value: strconv.Itoa(pid)}); err != nil {
			return fmt.Errorf("runner: join cgroup: %w", err)
		}
	}
	return nil
}

// oomKills is how many processes the kernel's OOM killer killed in the
// cgroup: memory.events on v2; memory.oom_control's oom_kill on v1 (Linux
// 4.13), and on older kernels whether the limit was ever hit at all.
func (cg *cgroup) oomKills() int64 {
	for _, d := range cg.dirs {
		if !contains(d.controllers, ctlMemory) {
			continue
		}
		if d.v2 {
			return readKeyed(filepath.Join(d.path, "memory.events"), "oom_kill")
		}
		if n := readKeyed(filepath.Join(d.path, "memory.oom_control"), "oom_kill"); n >= 0 {
			return n
		}
		data, err := os.ReadFile(filepath.Join(d.path, "memory.failcnt"))
		if err != nil {
			return 0
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		return n
	}
	return 0
}

// readKeyed returns key's value in a flat-keyed cgroup file ("key N"
// lines); -1 when the file or the key is not there.
func readKeyed(p, key string) int64 {
	data, err := os.ReadFile(p)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

// release is done with the cgroup once its container is gone: back to its
// pool if it has one and no process is left in it, else removed.
func (cg *cgroup) release() error {
	if cg == nil {
		return nil
	}
	if cg.pool != nil && cg.empty() && cg.pool.putCgroup(cg) {
		return nil
	}
	return cg.remove()
}

// empty reports whether no process is in the cgroup: what rmdir would
// require. A container's processes all die with its pid 1, and are
// reaped before it is, but one that is left keeps its cgroup from serving
// another container.
func (cg *cgroup) empty() bool {
	for _, d := range cg.dirs {
		procs, err := os.ReadFile(filepath.Join(d.path, "cgroup.procs"))
		if err != nil || len(bytes.TrimSpace(procs)) > 0 {
			return false
		}
	}
	return true
}

// unlimitAtExec lifts the limits the init writes at exec (pids.max, whose
// no-limit value is "max" on v1 and v2), so that an init may join the
// cgroup again before it has its container (see atExecWrite).
func (cg *cgroup) unlimitAtExec() error {
	for _, w := range cg.writes {
		f := cgroupFile{name: filepath.Base(w.Path), value: "max"}
		if err := writeCgroupFile(filepath.Dir(w.Path), f); err != nil {
			return fmt.Errorf("runner: %s: %w", w.Limit, err)
		}
	}
	return nil
}

// remove removes the cgroup's directories once its processes are gone.
// The kernel may refuse (EBUSY) for a moment after the last one was
// reaped, while it finishes tearing the tasks down; it is retried for about
// a second, as runc does.
func (cg *cgroup) remove() error {
	if cg == nil {
		return nil
	}
	cg.closeAtExec()
	var errs []error
	for _, d := range cg.dirs {
		delay := time.Millisecond
		for {
			err := unix.Rmdir(d.path)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || delay > 256*time.Millisecond {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d.path, err))
				break
			}
			time.Sleep(delay)
			delay *= 2
		}
	}
	cg.dirs = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	return nil
}

// CheckLimits tells, without making anything, whether newCgroup could set
// r's limits here: each controller has a hierarchy and it is writable. A
// build uses it to run without its default limits where cgroups cannot be
// had (a read-only /sys/fs/cgroup in a container), rather than fail.
func CheckLimits(r Resources) error {
	h, err := findHierarchies()
	if err != nil {
		return err
	}
	plan, err := planCgroup(h.mounts, h.v2Available, "check", r)
	if err != nil {
		return err
	}
	for _, d := range plan {
		// The hierarchy's root: the builder's parent group may not exist yet.
		root := filepath.Dir(filepath.Dir(d.path))
		if err := unix.Access(root, unix.W_OK); err != nil {
			return fmt.Errorf("runner: %s: cgroup %s is not writable: %w", limitName[d.controllers[0]], root, err)
		}
	}
	return nil
}

// hierarchies are where this host mounts its cgroup controllers.
type hierarchies struct {
	mounts      cgroupMounts
	v2Available map[string]bool // the unified hierarchy's controllers
}

var (
	hierarchiesOnce sync.Once
	hierarchiesOf   hierarchies
	hierarchiesErr  error
)

// findHierarchies reads mountinfo and the unified hierarchy's controllers
// once per process: cgroup mounts do not move while a build runs, and each
// RUN step of a build makes a cgroup.
func findHierarchies() (hierarchies, error) {
	hierarchiesOnce.Do(func() {
		mounts, err := readCgroupMounts(mountinfoPath)
		if err != nil {
			hierarchiesErr = fmt.Errorf("runner: find cgroups: %w", err)
			return
		}
		h := hierarchies{mounts: mounts}
		if h.mounts.v2 != "" {
			// Not there (and not an error) when the unified hierarchy has
			// no controllers of its own; planCgroup then reports what is
			// missing.
			data, err := os.ReadFile(filepath.Join(h.mounts.v2, "cgroup.controllers"))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				hierarchiesErr = fmt.Errorf("runner: read cgroup v2 controllers: %w", err)
				return
			}
			h.v2Available = map[string]bool{}
			for _, c := range strings.Fields(string(data)) {
				h.v2Available[c] = true
			}
		}
		hierarchiesOf = h
	})
	return hierarchiesOf, hierarchiesErr
}
