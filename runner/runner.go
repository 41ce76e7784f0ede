package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/mount"
)

// Spec describes one container process.
type Spec struct {
	// Root are the root file system mounts (e.g. one overlay from the
	// snapshotter). They are performed inside the container's own mount
	// namespace, so they vanish with the process.
	Root []mount.Mount
	// UpperDir is the overlay upper dir of Root, if any: mount-point stubs
	// the runner had to create are removed from it after the process exits,
	// so they never end up in a layer.
	UpperDir     string
	ReadOnlyRoot bool
	// Args is argv; Args[0] is looked up in the PATH of Env, inside the
	// root, when it has no slash.
	Args []string
	// Env is exactly the command's environment; PATH (Docker's default) and
	// HOME (from the user's passwd entry) are added when missing.
	Env []string
	// Cwd is the absolute working directory, created (as root, 0755) when
	// missing, as Docker does for WORKDIR. "" is "/".
	Cwd string
	// User is "", name, uid, name:group or uid:gid, resolved from the root's
	// /etc/passwd and /etc/group. "" is root.
	User string
	// Hostname is set in the new UTS namespace; "" is DefaultHostname.
	Hostname string
	// Network is "", "default" or "host" to share the host's network
	// namespace, "none" for a new one with only lo, brought up.
	Network string
	// Mounts are extra mounts inside the root, performed after the
	// runner's own, parents before children.
	Mounts []Mount
	// Tty gives the command a pseudo-terminal of the container's own
	// devpts as stdin, stdout, stderr, controlling terminal and
	// /dev/console. Stdio.Stdin feeds it and Stdio.Stdout gets both output
	// streams, as the terminal shows them (\r\n line ends, echo); Stderr is
	// unused. Putting the user's own terminal in raw mode is the caller's.
	Tty bool
	// ConsoleSize, with Tty, is the terminal's size when the command
	// starts (the user's terminal's, as docker run passes it); nil leaves
	// the kernel's 0x0. Process.Resize changes it later.
	ConsoleSize *Winsize
	// PrimaryGroupInGroups also lists the user's primary gid among the
	// supplementary groups, as `docker run` does (a Dockerfile RUN does not).
	PrimaryGroupInGroups bool
	// IPv6Hosts also lists the IPv6 multicast names in /etc/hosts
	// (ip6-localnet, ip6-allnodes...), as `docker run` does; BuildKit's RUN
	// has only the two loopback lines.
	IPv6Hosts bool
	// Resources are the container's limits; nil (or all zero) is none, and
	// then no cgroup is made.
	Resources *Resources
	// RunDir is where the run's own files are kept on the host (the /etc
	// files bound into the container, the root's mount point): made for
	// the run and removed when it ends. "" is a fresh temporary directory;
	// a container that outlives its runner (a killed monitor) gives one of
	// its own, which the next run of it replaces.
	RunDir string
	// Seccomp is the seccomp program the command runs under:
	// seccomp.Default's (package runner/seccomp) for Docker's default
	// profile, compiled by the caller once per process. It is required: no
	// container runs without one. (It is compiled outside the runner so
	// that the init, which links this package, stays small and quick to
	// start.)
	Seccomp []unix.SockFilter `json:"-"`
	// NoNewPrivileges sets the command's no_new_privs bit (`docker run
	// --security-opt no-new-privileges`): setuid binaries and file
	// capabilities no longer raise its privileges. Off by default, as in
	// Docker and BuildKit.
	NoNewPrivileges bool
	// CgroupName names the container's cgroup (a single path element, e.g.
	// the container's id), made as builder/<name> in each hierarchy a
	// limit needs. "" is a random name. Used only with Resources.
	CgroupName string
}

// Mount is an extra mount inside the container: Type "bind" (Source is a
// host path) or "tmpfs".
type Mount struct {
	Type     string
	Source   string
	Dest     string
	ReadOnly bool
}

// Stdio are the command's standard streams; nil ones are /dev/null. Output
// is written as the command produces it, not when it ends. One writer as
// both Stdout and Stderr gets them through one pipe, in the order the
// command wrote them (two pipes are read apart, so their order between
// them is lost). Pass an *os.File
// as Stdin when reading it may block forever (a terminal): any other Reader
// is copied by a goroutine that Run waits for (as os/exec does).
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// ExitError is returned by Run when the command exits non-zero: Code is its
// exit status, 128+N for a kill by signal N, 127 when the command was not
// found and 126 when it could not be executed (as Docker).
type ExitError struct {
	Code int
	// OOMKilled reports that the kernel's OOM killer killed a process of
	// the container for its memory limit (pid 1, making Code 137, or
	// another one), as Docker's State.OOMKilled.
	OOMKilled bool
}

func (e *ExitError) Error() string {
	if e.OOMKilled {
		return fmt.Sprintf("exit code: %d (out of memory)", e.Code)
	}
	return fmt.Sprintf("exit code: %d", e.Code)
}

// initEnv marks a started init (initBinary) as one, its value the protocol
// Start speaks. The init's environment is only this marker and the Go
// runtime's settings: the host's never reaches the container.
const initEnv = "_BUILDER_RUNNER_INIT"

// Child file descriptors of the init: the spec comes in on one pipe, status
// messages go out on the other.
const (
	specFd       = 3
	statusFd     = 4
	firstExtraFd = 5 // spawnOptions.extra: then the console, cgroup files
	consoleFd    = 5 // only with Spec.Tty: a unix socket for the pty master
)

// initConfig is what the init reads from specFd.
type initConfig struct {
	Spec Spec
	// Dir is the run's directory on the host: root/ (the mount target of
	// Spec.Root, empty on the host) and the per-run /etc files.
	Dir string
	// AtExec are cgroup limits the init sets just before execve.
	AtExec []atExecWrite `json:",omitempty"`
	// Seccomp is the seccomp program the init installs (struct
	// sock_filter entries, in host byte order): compiled once by the
	// builder, so that the init stays small and each start cheap.
	Seccomp []byte
}

// status is one message from the init. Stubs come one by one as they are
// created, so a failure or a kill half-way still lets Run remove them.
type status struct {
	// SpecRead is the first message: the init has its spec (a Pool's
	// spare that died before, unseen, gets no container: see start).
	SpecRead bool   `json:",omitempty"`
	Stub     *stub  `json:",omitempty"`
	Error    string `json:",omitempty"`
	// ExecFailed: the command could not be executed; the init exits with
	// its exit code (126, 127) right after.
	ExecFailed bool `json:",omitempty"`
}

// stub is a mount point the init created in the root.
type stub struct {
	Path string // relative to the root
	// ParentMtime and ParentMtimeAfter are the parent directory's mtime
	// (Unix ns) before and after the stub was made; 0 when the parent is
	// itself a stub. Removing the stub puts the old mtime back unless the
	// command changed the directory too.
	ParentMtime      int64 `json:",omitempty"`
	ParentMtimeAfter int64 `json:",omitempty"`
}

// Run runs spec's command in a new container and waits for it: Start, then
// Wait. It returns nil for exit code 0, an *ExitError for another exit code
// (also when the command could not be executed: 126, 127), and any other
// error when the container could not be set up. Cancelling ctx kills the
// container (SIGKILL to its pid 1 takes every process in it) and Run then
// returns an error wrapping ctx.Err().
func Run(ctx context.Context, spec Spec, stdio Stdio) error {
	p, err := Start(ctx, spec, stdio)
	if err != nil {
		return err
	}
	return p.Wait()
}

// Process is a container whose command runs: the pid 1 of its own pid
// namespace. Wait must be called to release it.
type Process struct {
	ctx  context.Context
	spec Spec
	init *initProc
	dir  string  // the run dir (prepareRunDir); "" once removed
	cg   *cgroup // nil without resource limits

	stubs    []stub
	setupErr string // the init's report of what failed, if anything did

	ptmx    *os.File      // our end of the container's terminal (Spec.Tty)
	ttyDone chan struct{} // closed when the terminal's output is all copied

	waitOnce sync.Once
	waitErr  error
}

// Start starts spec's command in a new container and returns once the
// command runs, i.e. after the container was set up, resource limits
// applied, and the command exec'd (or the init was killed on the way, which
// Wait then reports). When it could not start, Start returns
// what Run would (an error for the setup, an *ExitError with 126 or 127
// when the command could not be executed, its message on Stdio.Stderr)
// and nothing is left behind. Cancelling ctx at any time kills the
// container, so ctx must last as long as the container should.
func Start(ctx context.Context, spec Spec, stdio Stdio) (*Process, error) {
	return start(ctx, spec, stdio, nil)
}

// start is Start, with the init taken from pool when it has a suitable one.
func start(ctx context.Context, spec Spec, stdio Stdio, pool *Pool) (*Process, error) {
	if err := validate(spec); err != nil {
		return nil, err
	}
	if spec.Hostname == "" {
		spec.Hostname = DefaultHostname
	}
	dir, err := prepareRunDir(spec.RunDir, spec.Hostname, spec.IPv6Hosts)
	if err != nil {
		return nil, err
	}
	p := &Process{ctx: ctx, spec: spec, dir: dir}
	filter := encodeFilter(spec.Seccomp)
	var spare *initProc
	if pool != nil && prestartable(spec, stdio) {
		spare = pool.take(flavourOf(spec, stdio))
	}
	// A spare that a Pool with limits started is in a cgroup with them
	// already: moving a process into a cgroup waits for an RCU grace
	// period (milliseconds), which the pool paid ahead, while the previous
	// container ran. A container with other limits gets an init of its
	// own.
	if spare != nil && spare.cg != nil {
		if spec.CgroupName == "" && spec.Resources.limited() && *spec.Resources == spare.res {
			p.cg, spare.cg = spare.cg, nil
		} else {
			spare.discard()
			spare = nil
		}
	}
	if p.cg == nil && spare == nil && pool != nil && spec.CgroupName == "" && spec.Resources.limited() && pool.Resources != nil && *spec.Resources == *pool.Resources {
		// No spare: a cgroup that an ended container of the pool left
		// still saves making one (see reusable).
		if p.cg, err = pool.newPoolCgroup(*spec.Resources); err != nil {
			return nil, errors.Join(err, p.release())
		}
	}
	if p.cg == nil && spec.Resources.limited() {
		name := spec.CgroupName
		if name == "" {
			name = newCgroupName()
		}
		if p.cg, err = newCgroup(name, *spec.Resources); err != nil {
			if spare != nil {
				spare.discard()
			}
			return nil, errors.Join(err, p.release())
		}
	}

	var console *os.File // our end of the socket the init sends the pty master on
	if ip := spare; ip != nil {
		ip.stdout.set(stdio.Stdout)
		ip.stderr.set(stdio.Stderr)
		// The spare waits for its spec: joining the cgroup now (if it is
		// not in it) is before any of the container's setup. Its
		// descriptors were fixed when it started, so it opens the files it
		// writes at exec itself (by path, still in the host's mount
		// namespace).
		var atExec []atExecWrite
		joined := true
		if p.cg != nil {
			for _, w := range p.cg.writes {
				w.Fd = -1
				atExec = append(atExec, w)
			}
			if len(p.cg.atExec) > 0 { // made here, not the spare's
				joined = p.cg.add(ip.cmd.Process.Pid) == nil
			}
		}
		if joined && ip.sendSpec(initConfig{Spec: spec, Dir: dir, AtExec: atExec, Seccomp: filter}) == nil && ip.specRead() {
			p.init = ip
			if p.cg != nil {
				p.cg.closeAtExec()
			}
		} else {
			// The spare died before its container came (killed, out
			// of memory): this one gets an init of its own.
			ip.discard()
		}
	}
	if p.init == nil {
		o := spawnOptions{network: spec.Network, stdio: stdio}
		var child *os.File // the init's end of the console socket
		if spec.Tty {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return nil, errors.Join(fmt.Errorf("runner: console socket: %w", err), p.release())
			}
			console = os.NewFile(uintptr(fds[0]), "console")
			defer console.Close()
			child = os.NewFile(uintptr(fds[1]), "console-init")
			o.extra = append(o.extra, child) // becomes consoleFd
			// The init makes the pty in the container's own devpts and
			// makes it its controlling terminal, which takes a session of
			// its own. Its streams are the terminal's.
			o.setsid = true
			o.stdio = Stdio{}
		}
		var atExec []atExecWrite
		if p.cg != nil {
			for _, w := range p.cg.writes {
				if len(p.cg.atExec) == 0 {
					// A spare's cgroup, its files closed: the init
					// opens them.
					w.Fd = -1
				} else {
					f := p.cg.atExec[w.Fd]
					w.Fd = firstExtraFd + len(o.extra)
					o.extra = append(o.extra, f)
				}
				atExec = append(atExec, w)
			}
		}
		p.init, err = spawn(o)
		// The child has its copies; ours would keep the console socket
		// from reporting EOF when the child closes it.
		if child != nil {
			child.Close()
		}
		if p.cg != nil {
			p.cg.closeAtExec()
		}
		if err != nil {
			return nil, errors.Join(err, p.release())
		}
		// The init waits for its spec before it does anything, so it is
		// in the cgroup before any of the container's setup, let alone
		// the command.
		if p.cg != nil {
			if err := p.cg.add(p.Pid()); err != nil {
				p.init.discard()
				return nil, errors.Join(err, p.release())
			}
		}
		// An error means the init died early; its status or exit says why.
		_ = p.init.sendSpec(initConfig{Spec: spec, Dir: dir, AtExec: atExec, Seccomp: filter})
	}
	// Killed with ctx, whenever that ends before the init does.
	go func() {
		select {
		case <-ctx.Done():
			_ = p.init.cmd.Process.Kill()
		case <-p.init.exited:
		}
	}()

	// The status pipe closes (EOF) when the init execs the command (it is
	// close-on-exec there) or exits.
	execFailed := false
	for {
		var m status
		if err := p.init.status.Decode(&m); err != nil {
			break
		}
		if m.Stub != nil {
			p.stubs = append(p.stubs, *m.Stub)
		}
		if m.Error != "" {
			p.setupErr = m.Error
		}
		if m.ExecFailed {
			execFailed = true
		}
	}
	p.init.statusR.Close()

	if console != nil {
		ptmx, err := receiveConsole(console)
		if err != nil && p.setupErr == "" {
			p.setupErr = "runner: " + err.Error()
		}
		if ptmx != nil {
			p.ptmx = ptmx
			p.ttyDone = make(chan struct{})
			go func() {
				defer close(p.ttyDone)
				out := stdio.Stdout
				if out == nil {
					out = io.Discard
				}
				// Ends with EIO once every process holding the terminal
				// is gone, which the container's end takes care of.
				_, _ = io.Copy(out, ptmx)
			}()
			if stdio.Stdin != nil {
				go func() { _, _ = io.Copy(ptmx, stdio.Stdin) }()
			}
		}
	}

	if p.setupErr != "" || execFailed {
		// The init has exited or is about to: Wait has its answer.
		return nil, p.Wait()
	}
	if spec.RunDir == "" {
		// The command runs: its root is pivoted and its files bound, so
		// the container needs the run dir no more (the binds keep the
		// files). Removed now rather than at Wait, a builder killed while
		// the command runs leaves none behind in /dev/shm.
		if err := removeRunDir(p.dir); err != nil {
			_ = p.Signal(unix.SIGKILL)
			return nil, errors.Join(err, p.Wait())
		}
		p.dir = ""
	}
	return p, nil
}

// Winsize is a terminal's size in characters.
type Winsize struct {
	Rows, Cols uint16
}

// Resize sets the size of the container's terminal (Spec.Tty), as a
// terminal window's change does: the command's foreground process group
// gets SIGWINCH. Without a terminal it does nothing.
func (p *Process) Resize(size Winsize) error {
	if p.ptmx == nil {
		return nil
	}
	if err := unix.IoctlSetWinsize(int(p.ptmx.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols}); err != nil {
		return fmt.Errorf("runner: resize terminal: %w", err)
	}
	return nil
}

// Pid is the host's pid of the container's pid 1.
func (p *Process) Pid() int { return p.init.cmd.Process.Pid }

// Signal sends sig to the container's pid 1. As for any pid 1 of a pid
// namespace (and in Docker), the kernel drops a signal the command has no
// handler for, SIGKILL and SIGSTOP aside: a `sh -c` without a trap ignores
// SIGTERM. Once Wait has returned it fails with os.ErrProcessDone.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.init.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("runner: signal %v: %w", sig, err)
	}
	return nil
}

// Wait waits for the container's pid 1 to exit (every other process in the
// container dies with it) and returns what Run does: nil for exit code 0,
// an *ExitError for another one, an error wrapping ctx.Err() if ctx killed
// it. It then removes what the run made: mount-point stubs in
// Spec.UpperDir, the run dir and the cgroups. It may be called more than
// once and from several goroutines; all get the same answer.
func (p *Process) Wait() error {
	p.waitOnce.Do(func() { p.waitErr = p.wait() })
	return p.waitErr
}

func (p *Process) wait() error {
	waitErr := p.init.wait()
	if p.ttyDone != nil {
		<-p.ttyDone
	}
	result := runResult(p.ctx, p.setupErr, waitErr)
	var ee *ExitError
	if p.cg != nil && errors.As(result, &ee) {
		// Read before the cgroup goes. As in Docker, any OOM kill in the
		// container counts, not only one of pid 1.
		ee.OOMKilled = p.cg.oomKills() > 0
	}
	if err := p.release(); err != nil {
		return errors.Join(result, err)
	}
	return result
}

// release removes what Start made on the host, once the init is gone (or
// was never started).
func (p *Process) release() error {
	var errs []error
	if p.ptmx != nil {
		p.ptmx.Close()
	}
	if err := p.cg.release(); err != nil {
		errs = append(errs, err)
	}
	if p.spec.UpperDir != "" && len(p.stubs) > 0 {
		if err := removeStubs(p.spec.UpperDir, overlayLowers(p.spec.Root), p.stubs); err != nil {
			errs = append(errs, err)
		}
	}
	if p.dir != "" {
		if err := removeRunDir(p.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runResult is Run's answer once the init is gone.
func runResult(ctx context.Context, setupErr string, waitErr error) error {
	switch {
	case waitErr != nil && ctx.Err() != nil:
		return fmt.Errorf("runner: %w", ctx.Err()) // we killed it
	case setupErr != "":
		return errors.New(setupErr)
	case waitErr == nil:
		return nil
	}
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return &ExitError{Code: exitCode(ws)}
		}
	}
	return fmt.Errorf("runner: wait: %w", waitErr)
}

// receiveConsole receives the pty master the init sent on sock; nil if the
// init ended before sending one (its status tells why).
func receiveConsole(sock *os.File) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	if oobn == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive console: bad control message (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("receive console: bad rights (%v)", err)
	}
	return os.NewFile(uintptr(fds[0]), "ptmx"), nil
}

// prepareRunDir makes the run's host directory: an empty root/ to mount the
// root file system on (inside the container's mount namespace only), and the
// per-run copies of the files bind-mounted into /etc, so a command that
// writes them changes neither the host nor the image.
func prepareRunDir(dir, hostname string, ipv6Hosts bool) (string, error) {
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp(runDirParent(), "builder-runner-")
	} else if err = removeRunDir(dir); err == nil || errors.Is(err, os.ErrNotExist) {
		// What a run that was killed left.
		err = os.Mkdir(dir, 0o700)
	}
	if err != nil {
		return "", fmt.Errorf("runner: make run dir: %w", err)
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		os.RemoveAll(dir)
		return "", fmt.Errorf("runner: read host resolv.conf: %w", err)
	}
	files := map[string][]byte{
		"resolv.conf": resolv,
		"hosts":       hostsFile(hostname, ipv6Hosts),
		"hostname":    []byte(hostname + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("runner: write %s: %w", name, err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "root"), 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("runner: make root dir: %w", err)
	}
	return dir, nil
}

// runDirParent is where run dirs are made: /dev/shm when it is a tmpfs, as
// it is on most systems, else the temporary directory. Every RUN makes and
// removes a run dir; on a tmpfs that is a few microseconds, on a journaled
// disk file system a few inodes allocated and freed each time.
var runDirParent = sync.OnceValue(func() string {
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err == nil && st.Type == unix.TMPFS_MAGIC && unix.Access("/dev/shm", unix.W_OK) == nil {
		return "/dev/shm"
	}
	return os.TempDir()
})

// removeRunDir removes what prepareRunDir made, entry by entry rather than
// with RemoveAll: root/ is only ever a mount point in the container's
// namespace, but if it ever were one here, rmdir fails where RemoveAll would
// walk into the image.
func removeRunDir(dir string) error {
	var errs []error
	for _, name := range append([]string{"root"}, etcFiles...) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runner: remove run dir: %w", err)
	}
	return nil
}
