package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	units "github.com/docker/go-units"

	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/internal/stopsignal"
	"github.com/builder-dev/builder/runner"
	"github.com/builder-dev/builder/runner/seccomp"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/store"
)

// Runtime runs containers of one store: their records, writable layers,
// logs and processes.
type Runtime struct {
	Store *store.Store
	Snap  *snapshot.Snapshotter
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

func (r *Runtime) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Dir is the container's directory, ROOT/containers/<id>.
func (r *Runtime) Dir(id string) string {
	return filepath.Join(r.Store.Root(), "containers", id)
}

// LogPath is the container's log, as Docker names it.
func (r *Runtime) LogPath(id string) string {
	return filepath.Join(r.Dir(id), id+"-json.log")
}

// CreateOptions describe a new container.
type CreateOptions struct {
	Name   string // "" for a generated one
	Image  Image
	Config Config
	Host   HostConfig // Hostname "" is the short ID
}

// Create makes a container: its writable layer over the image's layers, its
// directory and its record (state created). Nothing runs yet.
func (r *Runtime) Create(ctx context.Context, o CreateOptions) (_ *Container, err error) {
	if len(o.Image.Layers) != len(o.Image.DiffIDs) {
		return nil, fmt.Errorf("create container: image %s has %d layers but %d diff IDs", o.Image.Ref, len(o.Image.Layers), len(o.Image.DiffIDs))
	}
	if len(o.Config.Argv()) == 0 {
		return nil, errors.New("create container: no command specified")
	}
	c := &Container{
		ID:      NewID(),
		Name:    o.Name,
		Created: r.now().UTC(),
		Image:   o.Image,
		Config:  o.Config,
		Host:    o.Host,
		State:   State{Status: Created},
	}
	if c.Host.Hostname == "" {
		c.Host.Hostname = ShortID(c.ID)
	}
	parent, err := r.Snap.Materialize(ctx, r.Store.Content(), o.Image.Layers, o.Image.DiffIDs)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	active, err := r.Snap.Prepare(ctx, parent)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	c.SnapshotID = active.ID()
	defer func() {
		if err != nil {
			_ = active.Remove(context.WithoutCancel(ctx))
			_ = os.RemoveAll(r.Dir(c.ID))
		}
	}()
	if err := os.MkdirAll(r.Dir(c.ID), 0o710); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	if err := r.makeVolumes(ctx, c, parent); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	crashpoint.Hit("container.prepared")
	if err := insert(ctx, r.Store.Meta(), c); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	return c, nil
}

// Get finds a container by ID, name or ID prefix, with its state as it
// really is (Reconcile).
func (r *Runtime) Get(ctx context.Context, ref string) (*Container, error) {
	c, err := Get(ctx, r.Store.Meta(), ref)
	if err != nil {
		return nil, err
	}
	return r.Reconcile(ctx, c)
}

// List returns every container, newest first, each reconciled.
func (r *Runtime) List(ctx context.Context) ([]*Container, error) {
	list, err := List(ctx, r.Store.Meta())
	if err != nil {
		return nil, err
	}
	out := list[:0]
	for _, c := range list {
		c, err := r.Reconcile(ctx, c)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile, or auto-removed just now
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Reconcile brings c's record in line with reality: a container recorded
// running whose processes are all gone (its monitor was killed, the
// machine rebooted) is recorded exited, with Docker's 255 for an unknown
// exit code, any mount left under its writable layer is detached, and an
// auto-remove container is removed. It returns the current record, or
// ErrNotFound if it was removed.
func (r *Runtime) Reconcile(ctx context.Context, c *Container) (*Container, error) {
	if c.State.Status != Running || Live(c) {
		return c, nil
	}
	return r.markExited(ctx, c.ID, 255, "the container's monitor is gone")
}

// markExited records c exited with code unless it turned live again (a
// start won the race) or was recorded otherwise already; then it cleans
// up what a dead monitor could not.
func (r *Runtime) markExited(ctx context.Context, id string, code int, why string) (*Container, error) {
	c, err := update(ctx, r.Store.Meta(), id, func(c *Container) error {
		if c.State.Status != Running || Live(c) {
			return nil
		}
		c.State.Status = Exited
		c.State.ExitCode = code
		c.State.FinishedAt = r.now().UTC()
		c.State.Pid, c.State.PidStart = 0, 0
		c.State.MonitorPid, c.State.MonitorStart = 0, 0
		c.State.Error = why
		return nil
	})
	if err != nil {
		return nil, err
	}
	if c.State.Status == Exited {
		if err := r.cleanupMounts(c); err != nil {
			return nil, err
		}
		if c.Host.AutoRemove {
			if err := r.Remove(ctx, c, false); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %s (removed)", ErrNotFound, c.ID)
		}
	}
	return c, nil
}

func (r *Runtime) active(c *Container) (*snapshot.Active, error) {
	return r.Snap.OpenActive(c.SnapshotID, snapshot.Committed{Chain: c.Image.Chain()})
}

// cleanupMounts detaches anything mounted under c's writable layer or
// directory on the host.
func (r *Runtime) cleanupMounts(c *Container) error {
	var errs []error
	if a, err := r.active(c); err == nil {
		errs = append(errs, mount.UnmountUnder(filepath.Dir(a.UpperDir())))
	}
	errs = append(errs, mount.UnmountUnder(r.Dir(c.ID)))
	return errors.Join(errs...)
}

// IO is what Run connects a container to, besides its log.
type IO struct {
	// Stdin feeds the container (nil: /dev/null). Pass an *os.File for a
	// terminal (see runner.Stdio).
	Stdin io.Reader
	// Stdout and Stderr get the output as it comes (nil: only the log).
	// With a terminal (Host.Tty) both streams come on Stdout.
	Stdout, Stderr io.Writer
	// Signals are forwarded to the container's pid 1 while it runs.
	Signals <-chan os.Signal
	// Started is called once the command runs, with its host pid.
	Started func(pid int)
	// NoLog leaves the log alone (a foreground container that is removed
	// when it exits has nobody to read it).
	NoLog bool
	// ConsoleSize is the terminal's size at start (Host.Tty): the user's
	// terminal's. Resize brings its later sizes.
	ConsoleSize *runner.Winsize
	Resize      <-chan runner.Winsize
}

// Run starts the container id and monitors it to its end: it claims the
// container (refusing one that is running), starts its command over its
// writable layer with the runner, records the pid, forwards signals,
// waits, records the exit, and removes an auto-remove container. It
// returns the exit code; an error only when the container could not be
// run or its exit not recorded. A command that cannot be executed is exit
// code 126 or 127, as in Docker.
//
// Run is the monitor: the process calling it must live as long as the
// container (the container is killed if it dies).
func (r *Runtime) Run(ctx context.Context, id string, rio IO) (int, error) {
	// The container outlives a cancelled ctx (a signal to the monitor is
	// for the container, see rio.Signals); only its record needs ctx.
	ctx = context.WithoutCancel(ctx)
	self := os.Getpid()
	selfStart, err := ProcStart(self)
	if err != nil {
		return 0, fmt.Errorf("start container: %w", err)
	}
	var ranBefore bool
	c, err := update(ctx, r.Store.Meta(), id, func(c *Container) error {
		if c.State.Status == Removing {
			return fmt.Errorf("container %s is marked for removal and cannot be started", c.Name)
		}
		if Live(c) {
			return fmt.Errorf("container %s: %w", c.Name, ErrRunning)
		}
		ranBefore = !c.State.StartedAt.IsZero()
		c.State = State{
			Status:       Running,
			MonitorPid:   self,
			MonitorStart: selfStart,
			StartedAt:    r.now().UTC(),
			FinishedAt:   c.State.FinishedAt,
			ExitCode:     c.State.ExitCode,
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	stdio, closeLog, err := r.openLog(c, rio)
	if err != nil {
		return r.failedStart(ctx, c, ranBefore, err)
	}
	proc, err := r.start(ctx, c, stdio, rio.ConsoleSize)
	if err != nil {
		_ = closeLog()
		return r.failedStart(ctx, c, ranBefore, err)
	}
	return r.monitor(ctx, c, proc, rio, closeLog)
}

// failedStart records that c could not start: exit code 126 or 127 when
// its command could not be executed (Docker's codes, and then no error:
// the runner wrote the message to the container's stderr), else 128 and
// the error. Like Docker, a container that never ran stays created.
func (r *Runtime) failedStart(ctx context.Context, c *Container, ranBefore bool, startErr error) (int, error) {
	code := 128
	var ee *runner.ExitError
	if errors.As(startErr, &ee) {
		code = ee.Code
	}
	status := Created
	if ranBefore {
		status = Exited
	}
	_, uerr := update(ctx, r.Store.Meta(), c.ID, func(c *Container) error {
		c.State = State{Status: status, ExitCode: code, Error: startErr.Error(), FinishedAt: r.now().UTC()}
		if ranBefore {
			c.State.StartedAt = c.State.FinishedAt
		}
		return nil
	})
	rerr := r.autoRemove(ctx, c.ID)
	if ee != nil {
		return code, errors.Join(uerr, rerr)
	}
	return code, errors.Join(fmt.Errorf("start container %s: %w", c.Name, startErr), uerr, rerr)
}

// monitor records proc's pid, forwards signals to it, waits for it and
// records its exit.
func (r *Runtime) monitor(ctx context.Context, c *Container, proc *runner.Process, rio IO, closeLog func() error) (int, error) {
	id := c.ID
	pid := proc.Pid()
	pidStart, perr := ProcStart(pid)
	_, uerr := update(ctx, r.Store.Meta(), id, func(c *Container) error {
		c.State.Pid, c.State.PidStart = pid, pidStart
		return nil
	})
	if perr != nil || uerr != nil {
		// Without its pid on record nobody could stop it.
		_ = proc.Signal(syscall.SIGKILL)
		_ = proc.Wait()
		_ = closeLog()
		_, _ = r.markExited(ctx, id, 137, "could not record the container's pid")
		return 0, fmt.Errorf("start container %s: record pid: %w", c.Name, errors.Join(perr, uerr))
	}
	if rio.Started != nil {
		rio.Started(pid)
	}

	done := make(chan error, 1)
	go func() { done <- proc.Wait() }()
	var waitErr error
wait:
	for {
		select {
		case s := <-rio.Signals:
			if sig, ok := s.(syscall.Signal); ok {
				_ = proc.Signal(sig) // fails only once it has exited
			}
		case ws := <-rio.Resize:
			_ = proc.Resize(ws) // fails only once it has exited
		case waitErr = <-done:
			break wait
		}
	}
	logErr := closeLog()
	code, oom := 0, false
	var ee *runner.ExitError
	switch {
	case waitErr == nil:
	case errors.As(waitErr, &ee):
		code, oom = ee.Code, ee.OOMKilled
	default:
		// The runner could not clean up after the container (or lost
		// it): its status is unknown.
		code = 255
	}
	_, uerr = update(ctx, r.Store.Meta(), id, func(c *Container) error {
		c.State.Status = Exited
		c.State.ExitCode = code
		c.State.OOMKilled = oom
		c.State.FinishedAt = r.now().UTC()
		c.State.Pid, c.State.PidStart = 0, 0
		c.State.MonitorPid, c.State.MonitorStart = 0, 0
		if ee == nil && waitErr != nil {
			c.State.Error = waitErr.Error()
		}
		return nil
	})
	if ee == nil && waitErr != nil {
		return code, errors.Join(waitErr, uerr)
	}
	if uerr != nil {
		return code, fmt.Errorf("record exit of container %s: %w", c.Name, uerr)
	}
	if err := r.autoRemove(ctx, id); err != nil {
		return code, err
	}
	if logErr != nil {
		return code, fmt.Errorf("container %s: %w", c.Name, logErr)
	}
	return code, nil
}

// autoRemove removes the container id if it was made with --rm.
func (r *Runtime) autoRemove(ctx context.Context, id string) error {
	c, err := Get(ctx, r.Store.Meta(), id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !c.Host.AutoRemove {
		return nil
	}
	return r.Remove(ctx, c, false)
}

// start starts c's command with the runner over its writable layer.
func (r *Runtime) start(ctx context.Context, c *Container, stdio runner.Stdio, size *runner.Winsize) (*runner.Process, error) {
	if err := r.cleanupMounts(c); err != nil {
		return nil, err
	}
	// Garbage collection keeps a container's layers, but a store pruned
	// by an older builder may miss some: unpack whatever is missing.
	if _, err := r.Snap.Materialize(ctx, r.Store.Content(), c.Image.Layers, c.Image.DiffIDs); err != nil {
		return nil, err
	}
	a, err := r.active(c)
	if err != nil {
		return nil, err
	}
	spec := r.spec(c, a)
	if spec.Seccomp, err = seccomp.Default(runner.DefaultCapabilities()); err != nil {
		return nil, err
	}
	if c.Host.Tty {
		spec.ConsoleSize = size
	}
	return runner.Start(ctx, spec, stdio)
}

// openLog connects rio's output to c's log: the streams to give the
// runner, and a function that flushes and closes the log once the
// runner's copies are done (after Wait, or after a failed Start).
func (r *Runtime) openLog(c *Container, rio IO) (runner.Stdio, func() error, error) {
	stdio := runner.Stdio{Stdin: rio.Stdin, Stdout: rio.Stdout, Stderr: rio.Stderr}
	if rio.NoLog {
		return stdio, func() error { return nil }, nil
	}
	lf, err := OpenLog(r.LogPath(c.ID))
	if err != nil {
		return stdio, nil, err
	}
	out, errs := lf.Stream("stdout"), lf.Stream("stderr")
	stdio.Stdout = tee(out, rio.Stdout)
	stdio.Stderr = tee(errs, rio.Stderr)
	return stdio, func() error {
		out.Flush()
		errs.Flush()
		return lf.Close()
	}, nil
}

// tee writes to the log first (which never fails) and then to the
// caller's writer, whose error stops the copy as a closed pipe would.
func tee(log io.Writer, w io.Writer) io.Writer {
	if w == nil {
		return log
	}
	return teeWriter{log, w}
}

type teeWriter struct{ log, w io.Writer }

func (t teeWriter) Write(p []byte) (int, error) {
	_, _ = t.log.Write(p)
	return t.w.Write(p)
}

// spec is the runner's spec for c over its writable layer a.
func (r *Runtime) spec(c *Container, a *snapshot.Active) runner.Spec {
	s := runner.Spec{
		Root:                 a.Mounts(),
		UpperDir:             a.UpperDir(),
		ReadOnlyRoot:         c.Host.ReadOnly,
		Args:                 c.Config.Argv(),
		Env:                  RuntimeEnv(c),
		Cwd:                  c.Config.WorkingDir,
		User:                 c.Config.User,
		Hostname:             c.Host.Hostname,
		Network:              c.Host.Network,
		Tty:                  c.Host.Tty,
		PrimaryGroupInGroups: true,
		IPv6Hosts:            true,
		NoNewPrivileges:      c.Host.NoNewPrivileges,
		RunDir:               filepath.Join(r.Dir(c.ID), "run"),
		CgroupName:           c.ID,
	}
	for i, v := range c.volumes() {
		s.Mounts = append(s.Mounts, runner.Mount{Type: "bind", Source: r.volumeDir(c, i), Dest: v})
	}
	for _, m := range c.Host.Mounts {
		s.Mounts = append(s.Mounts, runner.Mount{Type: m.Type, Source: m.Source, Dest: m.Dest, ReadOnly: m.ReadOnly})
	}
	if res := c.Host.Resources; res != nil {
		s.Resources = &runner.Resources{Memory: res.Memory, Pids: res.Pids, CPUs: res.CPUs}
	}
	return s
}

// pollInterval is how often Stop and Remove look whether a container's
// processes are gone.
const pollInterval = 20 * time.Millisecond

// Stop stops c as `docker stop` does: its STOPSIGNAL (SIGTERM by default)
// to its pid 1, then SIGKILL after timeout, and waits until its monitor
// has recorded the exit. Stopping a stopped container does nothing.
func (r *Runtime) Stop(ctx context.Context, c *Container, timeout time.Duration) error {
	sig, err := stopsignal.Parse(c.Config.StopSignal)
	if err != nil {
		sig = syscall.SIGTERM
	}
	return r.kill(ctx, c, sig, timeout)
}

// kill sends sig, and SIGKILL after timeout, to c's pid 1 and waits for
// its processes to be gone and its exit recorded.
func (r *Runtime) kill(ctx context.Context, c *Container, sig syscall.Signal, timeout time.Duration) error {
	c, err := r.waitPid(ctx, c)
	if err != nil || !Live(c) {
		if err == nil {
			_, err = r.Reconcile(ctx, c)
		}
		if errors.Is(err, ErrNotFound) {
			err = nil
		}
		return err
	}
	last := sig
	if err := signalProc(c.State.Pid, c.State.PidStart, sig); err != nil && !errors.Is(err, errGone) {
		return fmt.Errorf("stop container %s: %w", c.Name, err)
	}
	if sig != syscall.SIGKILL && !r.waitGone(ctx, c, timeout) {
		last = syscall.SIGKILL
		if err := signalProc(c.State.Pid, c.State.PidStart, syscall.SIGKILL); err != nil && !errors.Is(err, errGone) {
			return fmt.Errorf("kill container %s: %w", c.Name, err)
		}
	}
	if !r.waitGone(ctx, c, -1) {
		return fmt.Errorf("stop container %s: %w", c.Name, ctx.Err())
	}
	// The monitor recorded the exit before it ended; if it had died
	// before, the exit is what we sent.
	_, err = r.markExited(ctx, c.ID, 128+int(last), "the container's monitor is gone")
	if errors.Is(err, ErrNotFound) {
		err = nil // auto-removed
	}
	return err
}

// waitPid waits while c is starting (running, but its pid not recorded
// yet) and returns its record then.
func (r *Runtime) waitPid(ctx context.Context, c *Container) (*Container, error) {
	for c.State.Status == Running && c.State.Pid == 0 && Live(c) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pollInterval):
		}
		var err error
		if c, err = Get(ctx, r.Store.Meta(), c.ID); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// waitGone waits up to timeout (< 0: until ctx ends) until c's container
// and monitor processes are gone; it reports whether they are.
func (r *Runtime) waitGone(ctx context.Context, c *Container, timeout time.Duration) bool {
	var deadline <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	for Live(c) {
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return false
		case <-time.After(pollInterval):
		}
	}
	return true
}

// Remove deletes c: its writable layer, directory, log and record. A
// running container needs force, and is then killed first.
func (r *Runtime) Remove(ctx context.Context, c *Container, force bool) error {
	if Live(c) {
		if !force {
			return fmt.Errorf("cannot remove container %q: %w: stop the container before removing or force remove", "/"+c.Name, ErrRunning)
		}
		if err := r.kill(ctx, c, syscall.SIGKILL, 0); err != nil {
			return err
		}
	}
	c, err := update(ctx, r.Store.Meta(), c.ID, func(c *Container) error {
		if Live(c) {
			return fmt.Errorf("cannot remove container %q: %w", "/"+c.Name, ErrRunning)
		}
		c.State.Status = Removing
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil // someone else removed it
	}
	if err != nil {
		return err
	}
	var errs []error
	errs = append(errs, r.cleanupMounts(c))
	if a, err := r.active(c); err == nil {
		errs = append(errs, a.Remove(ctx))
	} else if !errors.Is(err, snapshot.ErrNotFound) {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(r.Dir(c.ID)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		// The record stays (state removing), so rm can be tried again.
		return fmt.Errorf("remove container %s: %w", c.Name, err)
	}
	if err := remove(ctx, r.Store.Meta(), c.ID); err != nil {
		return fmt.Errorf("remove container %s: %w", c.Name, err)
	}
	return nil
}

// lowers are c's layer directories, top first.
func (r *Runtime) lowers(c *Container) []string {
	chain := c.Image.Chain()
	out := make([]string, 0, len(chain))
	for i := len(chain) - 1; i >= 0; i-- {
		out = append(out, r.Snap.LayerDir(chain[i]))
	}
	return out
}

// Diff lists c's changes to its image's file system, as `docker diff`.
// For a running container, the mount points the runner made are left out.
func (r *Runtime) Diff(ctx context.Context, c *Container) ([]Change, error) {
	changes, _, err := r.diff(ctx, c)
	return changes, err
}

func (r *Runtime) diff(ctx context.Context, c *Container) ([]Change, map[string]bool, error) {
	a, err := r.active(c)
	if err != nil {
		return nil, nil, err
	}
	var opts DiffOptions
	if Live(c) {
		opts.Stubs = stubPaths(c)
	}
	return diff(ctx, a.UpperDir(), r.lowers(c), opts)
}

// Size is the size of c's writable layer (SIZE of `ps -s`).
func (r *Runtime) Size(ctx context.Context, c *Container) (int64, error) {
	a, err := r.active(c)
	if err != nil {
		return 0, err
	}
	return DirSize(ctx, a.UpperDir())
}

// ImageSize is the size of c's image as `ps -s` adds it into VIRTUAL SIZE:
// the sizes (DirSize) of its unpacked layers. It is the same for every
// container of an image; callers listing many compute it once per image.
func (r *Runtime) ImageSize(ctx context.Context, c *Container) (int64, error) {
	var total int64
	for _, dir := range r.lowers(c) {
		n, err := DirSize(ctx, dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// StatusText is the STATUS column of `ps`, as Docker words it.
func StatusText(c *Container, now time.Time) string {
	switch c.State.Status {
	case Running:
		return "Up " + units.HumanDuration(now.Sub(c.State.StartedAt))
	case Exited:
		return fmt.Sprintf("Exited (%d) %s ago", c.State.ExitCode, units.HumanDuration(now.Sub(c.State.FinishedAt)))
	case Removing:
		return "Removal In Progress"
	}
	return "Created"
}

// DiscardUnstarted removes container id when it never started (a user its
// image lacks, a mount that fails), so that bad input to run leaves
// nothing behind; a container that ran, or is gone already (--rm), is left
// alone.
func (r *Runtime) DiscardUnstarted(ctx context.Context, id string) error {
	c, err := r.Get(ctx, id)
	if err != nil || c.State.Status != Created || !c.State.StartedAt.IsZero() {
		return nil
	}
	if err := r.Remove(ctx, c, false); err != nil {
		return fmt.Errorf("remove container %s that did not start: %w", c.Name, err)
	}
	return nil
}
