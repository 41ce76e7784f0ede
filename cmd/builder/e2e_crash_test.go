package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/internal/mount"
	"github.com/moby/sys/mountinfo"
)

// crashAt runs the builder with the crash point armed and requires that it
// died there, killed by SIGKILL: a point never reached would test nothing.
func (h *harness) crashAt(point string, args ...string) {
	h.t.Helper()
	cmd := exec.Command(builderBin, append([]string{"--root", h.root}, args...)...)
	cmd.Env = append(os.Environ(), crashpoint.EnvVar+"="+point)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A process the killed builder left holding our pipe would make Wait
	// hang; leftover processes are checked for separately.
	cmd.WaitDelay = 10 * time.Second
	// A process group of its own, to find what it started after its death.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// What the killed process left mounted must not outlive the test,
	// whatever happens to the next command.
	h.t.Cleanup(func() { _ = mount.UnmountUnder(h.root) })
	err := cmd.Run()
	if !killedBySIGKILL(err) {
		h.t.Fatalf("builder %s with %s=%s: want it killed at the point, got %v\n%s",
			strings.Join(args, " "), crashpoint.EnvVar, point, err, out.String())
	}
	checkNoProcessLeft(h.t, cmd.Process.Pid)
}

// checkNoProcessLeft fails t if a process of the group pgid (the killed
// builder's: its container inits and their commands) outlives it. They
// are killed by their parent-death signal, which takes a moment, so it
// waits for them a while.
func checkNoProcessLeft(t *testing.T, pgid int) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		left = left[:0]
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			p, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if st := procStat(p); len(st) >= 3 && st[2] == strconv.Itoa(pgid) && st[0] != "Z" && st[0] != "X" {
				left = append(left, fmt.Sprintf("%d (%s)", p, comm(p)))
			}
		}
		if len(left) == 0 {
			return
		}
	}
	t.Errorf("the killed builder's processes live on: %s", strings.Join(left, ", "))
}

// procStat is the fields of /proc/p/stat after the command name: state,
// ppid, pgrp, ...; nil once p is gone.
func procStat(p int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
	if err != nil {
		return nil
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// crashDockerfile has a COPY, a COPY --from an image (mounted on the
// host meanwhile) and a RUN layer and a config step; tag makes every
// case's steps its own, so no case hits another's cache.
func crashDockerfile(tag string) string {
	return "FROM base/busybox:1\nCOPY f /f\nRUN echo " + tag + " > /r && cat /f >> /r\n" +
		"COPY --from=base/busybox:1 /bin/busybox /bb\nENV CASE=" + tag + "\n"
}

// crashTag is a repository name for the case of a crash point.
func crashTag(point string) string { return strings.ReplaceAll(point, "@", "-") }

// checkCrashImage runs the image built from crashDockerfile(tag).
func (h *harness) checkCrashImage(ref, tag string) {
	h.t.Helper()
	if got, want := h.runImage(ref, "cat", "/r"), tag+"\n"+tag+"-file\n"; got != want {
		h.t.Errorf("image %s: /r is %q, want %q", ref, got, want)
	}
}

// Kill -9 the builder at each named point of a build's write path, then
// build again on the same root: the store is consistent after the kill and
// after the rebuild, and the rebuilt image is right.
func TestCrashDuringBuild(t *testing.T) {
	h := newHarness(t)
	for _, point := range []string{
		"store.blob.staged",      // a layer blob written and synced, not named yet
		"store.blob.committed",   // a layer blob in the store, no record yet
		"solver.blobs.committed", // a batch's blobs in the store, no records yet
		"solver.records.written", // records written, no image yet
		"store.index.staged",     // config and manifest written, index.json not yet
		"store.index.staged@2",   // listed untagged, the tag not yet written
		"store.blob.committed@2", // the second layer of the build
		"solver.layer.staged",    // a RUN's layer staged, its snapshot not committed
		"solver.copy.mounted",    // an image mounted on the host for COPY --from
	} {
		t.Run(point, func(t *testing.T) {
			h := &harness{t: t, root: h.root}
			tag := crashTag(point)
			dir := h.context(crashDockerfile(tag), map[string]string{"f": tag + "-file\n"})
			h.crashAt(point, "build", "-t", tag+":1", dir)
			checkStoreAfterCrash(t, h.root)
			h.build(dir, tag+":1")
			h.checkCrashImage(tag+":1", tag)
			checkStoreConsistent(t, h.root)
		})
	}
}

// Kill -9 the builder while a RUN's container runs: the container dies
// with it (nothing of it runs on, nothing stays mounted), and a rebuild
// works.
func TestCrashDuringRun(t *testing.T) {
	h := newHarness(t)
	dir := h.context("FROM base/busybox:1\nARG WAIT=0\nRUN echo run > /r && sleep $WAIT\n", map[string]string{})
	cmd := exec.Command(builderBin, "--root", h.root, "build", "-t", "run:1", "--build-arg", "WAIT=600", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The RUN is running once a descendant of the builder runs sleep.
	var procs []int
	var sleeper int
	for deadline := time.Now().Add(60 * time.Second); sleeper == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the RUN never started:\n%s", out.String())
		}
		procs = descendants(cmd.Process.Pid)
		for _, p := range procs {
			if comm(p) == "sleep" {
				sleeper = p
			}
		}
	}
	runDir := runDirOf(sleeper)
	t.Logf("the RUN's run dir: %s", runDir)
	cgroups := ownCgroups(sleeper)
	t.Logf("the RUN's cgroups: %v", cgroups)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); !killedBySIGKILL(err) {
		t.Fatalf("builder: %v\n%s", err, out.String())
	}
	// The container's processes die with the builder (the parent-death
	// signal of its init); killing is not instant, so wait for it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var alive []string
		for _, p := range procs {
			if c := comm(p); c != "" {
				alive = append(alive, fmt.Sprintf("%d (%s)", p, c))
			}
		}
		if len(alive) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed build's processes live on: %s", strings.Join(alive, ", "))
		}
	}
	if runDir == "" {
		t.Error("cannot tell the RUN's run dir from its /etc/hosts mount")
	} else if _, err := os.Stat(runDir); err == nil {
		t.Errorf("the killed RUN's run dir %s is left behind", runDir)
	}
	checkStoreAfterCrash(t, h.root)
	h.build(dir, "run:1")
	if got := h.runImage("run:1", "cat", "/r"); got != "run\n" {
		t.Errorf("/r: %q", got)
	}
	checkStoreConsistent(t, h.root)
	// The killed RUN's cgroups (if it had its own) are gone once the
	// next build ran.
	for _, d := range cgroups {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("the killed RUN's cgroup %s is left behind", d)
		}
	}
}

// ownCgroups lists the host directories of the cgroups process p is in
// that this test process is not in: those made for its container.
func ownCgroups(p int) []string {
	mine := map[string]string{} // controllers -> path
	b, _ := os.ReadFile("/proc/self/cgroup")
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 {
			mine[f[1]] = f[2]
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p))
	if err != nil {
		return nil
	}
	mounts, _ := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 || mine[f[1]] == f[2] {
			continue
		}
		// The hierarchy's mount: cgroup2 for "0::", else the cgroup
		// mount whose options name the controllers.
		for _, m := range mounts {
			match := f[1] == "" && m.FSType == "cgroup2"
			if f[1] != "" && m.FSType == "cgroup" {
				match = true
				for _, c := range strings.Split(f[1], ",") {
					if !slices.Contains(strings.Split(m.VFSOptions, ","), c) {
						match = false
					}
				}
			}
			if match {
				out = append(out, filepath.Join(m.Mountpoint, f[2]))
				break
			}
		}
	}
	return out
}

// descendants lists the processes below pid, at this moment.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := ppid(p); pp > 0 {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// ppid reads the parent of p, 0 if p is gone.
func ppid(p int) int {
	st := procStat(p)
	if len(st) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(st[1])
	return n
}

// comm is p's command name, "" once p is gone (a zombie counts as gone:
// it runs nothing and holds nothing).
func comm(p int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
	if err != nil {
		return ""
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || len(s) < end+3 || s[end+2] == 'Z' || s[end+2] == 'X' {
		return ""
	}
	return s[open+1 : end]
}

// runDirOf finds the host run dir of the container process p from the
// source of its /etc/hosts bind mount (the run dir may be removed already,
// so it is found by device, not by path), "" if it cannot be told.
func runDirOf(p int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", p))
	if err != nil {
		return ""
	}
	defer f.Close()
	theirs, err := mountinfo.GetMountsFromReader(f, mountinfo.SingleEntryFilter("/etc/hosts"))
	if err != nil || len(theirs) == 0 {
		return ""
	}
	hosts := theirs[0]
	// Root is the file's path in its file system ("//deleted" appended
	// once it is unlinked); the host's mount of that file system's root
	// (same device) says where it is.
	src := strings.TrimSuffix(hosts.Root, "//deleted")
	mine, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return i.Major != hosts.Major || i.Minor != hosts.Minor || i.Root != "/", false
	})
	if err != nil || len(mine) == 0 {
		return ""
	}
	return filepath.Join(mine[0].Mountpoint, filepath.Dir(src))
}

// Kill -9 at random moments of a multi-step build, a few times in a row
// on one root; then the build completes and the image is right.
func TestCrashAtRandomTimes(t *testing.T) {
	h := newHarness(t)
	df := "FROM base/busybox:1\nCOPY a /a\nRUN cat /a > /r1\nCOPY b /b\nRUN cat /r1 /b > /r2 && echo three > /r3\nCOPY --from=base/busybox:1 /bin/busybox /bb\nRUN cat /r2 /r3 > /r\n"
	dir := h.context(df, map[string]string{"a": "a\n", "b": "b\n"})
	// The kills fall within one whole build's time from an empty cache.
	start := time.Now()
	h.build(dir, "rnd:1")
	whole := time.Since(start)
	reset := func() {
		h.mustRun("rmi", "rnd:1")
		h.mustRun("cache", "prune", "--all")
	}
	reset()
	t.Cleanup(func() { _ = mount.UnmountUnder(h.root) })
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 8))
	for i := range 4 {
		cmd := exec.Command(builderBin, "--root", h.root, "build", "-t", "rnd:1", dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.WaitDelay = 10 * time.Second
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rnd.Int64N(int64(whole)))
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		t.Logf("kill %d after %v of %v: %v", i, delay, whole, err)
		checkNoProcessLeft(t, cmd.Process.Pid)
		checkStoreAfterCrash(t, h.root)
		if err == nil {
			reset() // done before the kill: start over from an empty cache
		}
	}
	h.build(dir, "rnd:1")
	if got := h.runImage("rnd:1", "cat", "/r"); got != "a\nb\nthree\n" {
		t.Errorf("/r: %q", got)
	}
	checkStoreConsistent(t, h.root)
}

// Kill -9 `load` while it copies an archive's blobs and before it tags;
// then the same load works and the image runs.
func TestCrashDuringLoad(t *testing.T) {
	h := newHarness(t)
	dir := h.context(crashDockerfile("ld"), map[string]string{"f": "ld-file\n"})
	h.build(dir, "ld:1")
	archive := filepath.Join(t.TempDir(), "ld.tar")
	h.mustRun("save", "-o", archive, "ld:1")
	for _, point := range []string{
		"store.blob.staged",      // the config staged
		"store.blob.committed@2", // config and first layer in, the second not
		"store.blob.staged@3",    // the second layer staged
		"store.index.staged",     // all blobs in, not listed
		"store.index.staged@2",   // listed untagged, not tagged
	} {
		t.Run(point, func(t *testing.T) {
			h := &harness{t: t, root: h.root}
			// Nothing of the image may be in the store, so that load
			// writes every blob but the base's.
			h.mustRun("rmi", "ld:1")
			h.mustRun("cache", "prune", "--all")
			h.crashAt(point, "load", "-i", archive)
			checkStoreAfterCrash(t, h.root)
			h.mustRun("load", "-i", archive)
			h.checkCrashImage("ld:1", "ld")
			checkStoreConsistent(t, h.root)
		})
	}
}

// Kill -9 `cache prune` after it deleted the records and in the middle of
// deleting blobs and layers, and `rmi` between untagging and deleting:
// the store stays consistent, the next prune finishes the job, and builds
// work.
func TestCrashDuringPruneAndRmi(t *testing.T) {
	h := newHarness(t)
	for _, point := range []string{
		"gc.records.deleted",
		"gc.blob.removed@2",
		"gc.layer.removed",
	} {
		t.Run(point, func(t *testing.T) {
			h := &harness{t: t, root: h.root}
			tag := crashTag(point)
			dir := h.context(crashDockerfile(tag), map[string]string{"f": tag + "-file\n"})
			h.build(dir, tag+":1")
			h.mustRun("rmi", tag+":1")
			// A kept image keeps its blobs through any prune.
			h.build(h.context(crashDockerfile("keep"), map[string]string{"f": "keep-file\n"}), "keep:1")
			h.crashAt(point, "cache", "prune", "--all")
			checkStoreAfterCrash(t, h.root)
			h.mustRun("cache", "prune", "--all")
			checkStoreConsistent(t, h.root)
			h.checkCrashImage("keep:1", "keep")
			h.build(dir, tag+":1")
			h.checkCrashImage(tag+":1", tag)
			checkStoreConsistent(t, h.root)
		})
	}
	t.Run("rmi.untagged", func(t *testing.T) {
		h := &harness{t: t, root: h.root}
		dir := h.context(crashDockerfile("rmi"), map[string]string{"f": "rmi-file\n"})
		// By ID, forced: both names go, then the image.
		id := strings.TrimSpace(h.build(dir, "rmi:1", "-t", "rmi:2", "-q"))
		h.crashAt("rmi.untagged", "rmi", "-f", id)
		checkStoreAfterCrash(t, h.root)
		h.mustRun("rmi", "-f", id)
		h.mustRun("cache", "prune", "--all")
		checkStoreConsistent(t, h.root)
		h.build(dir, "rmi:1")
		h.checkCrashImage("rmi:1", "rmi")
		checkStoreConsistent(t, h.root)
	})
}

// Kill -9 `run` while it creates a container (its writable layer and its
// directory, with a volume filled from the image, made; its record not
// yet): the next command removes what it left, and runs work.
func TestCrashDuringContainerCreate(t *testing.T) {
	h := newHarness(t)
	h.build(h.context("FROM base/busybox:1\nRUN mkdir /data && echo vol > /data/v\nVOLUME /data\n", map[string]string{}), "vol:1")
	h.crashAt("container.prepared", "run", "--rm", "vol:1", "true")
	checkStoreAfterCrash(t, h.root)
	if got := h.runImage("vol:1", "cat", "/data/v"); got != "vol\n" {
		t.Errorf("/data/v: %q", got)
	}
	checkStoreConsistent(t, h.root)
}
