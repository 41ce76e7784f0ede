package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/container"
	"github.com/builder-dev/builder/runner"
	"github.com/builder-dev/builder/source"
)

type runOptions struct {
	rm          bool
	name        string
	detach      bool
	interactive bool
	tty         bool
	env         []string
	envFiles    []string
	workdir     string
	user        string
	entrypoint  *string
	network     string
	volumes     []string
	tmpfs       []string
	hostname    string
	memory      string
	memorySet   bool // --memory given, even as "" (which docker refuses)
	pidsLimit   int64
	cpus        float64
	readOnly    bool
	securityOpt []string
}

func newRunCmd(g *globalOptions) *cobra.Command {
	o := &runOptions{}
	var entrypoint string
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Run a command in a new container of an image",
		Long: `Run a command in a new container of an image.

The container keeps its writable layer and settings until it is removed
(rm, or --rm when it exits): see ps, start, stop, logs, diff and commit.
Without -d, run waits for the command, forwards signals to it and exits
with its exit code (126: cannot be executed, 127: not found). With -d it
prints the container's ID and leaves it running.`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("entrypoint") {
				o.entrypoint = &entrypoint
			}
			o.memorySet = cmd.Flags().Changed("memory")
			return runContainer(cmd.Context(), g, o, args[0], args[1:])
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVar(&o.rm, "rm", false, "remove the container when it exits")
	f.StringVar(&o.name, "name", "", "name the container")
	f.BoolVarP(&o.detach, "detach", "d", false, "run in the background and print the container ID")
	f.BoolVarP(&o.interactive, "interactive", "i", false, "keep stdin open")
	f.BoolVarP(&o.tty, "tty", "t", false, "allocate a pseudo-TTY")
	f.StringArrayVarP(&o.env, "env", "e", nil, "set an environment variable (KEY=VALUE, or KEY to take it from here)")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "read environment variables from a file")
	f.StringVarP(&o.workdir, "workdir", "w", "", "working directory inside the container (created if missing)")
	f.StringVarP(&o.user, "user", "u", "", "user[:group], names or numbers")
	f.StringVar(&entrypoint, "entrypoint", "", "override the image's ENTRYPOINT (and drop its CMD)")
	f.StringVar(&o.network, "network", "host", "network: host or none")
	f.StringArrayVarP(&o.volumes, "volume", "v", nil, "bind mount a host path: SRC:DST[:ro]")
	f.StringArrayVar(&o.tmpfs, "tmpfs", nil, "mount a tmpfs at DST")
	f.StringVar(&o.hostname, "hostname", "", "container hostname (default: the short container ID)")
	f.StringVarP(&o.memory, "memory", "m", "", "memory limit (e.g. 64m, 1g)")
	f.Int64Var(&o.pidsLimit, "pids-limit", 0, "limit the number of processes (0: unlimited)")
	f.StringArrayVar(&o.securityOpt, "security-opt", nil, "security option: no-new-privileges")
	f.Float64Var(&o.cpus, "cpus", 0, "limit CPU time, in CPUs (e.g. 0.5)")
	f.BoolVar(&o.readOnly, "read-only", false, "mount the container's root file system read-only")
	return cmd
}

// createOptions turns run's flags into a container's settings; the image
// is filled in by the caller.
func (o *runOptions) createOptions() (container.CreateOptions, container.Overrides, error) {
	var co container.CreateOptions
	var ov container.Overrides
	switch o.network {
	case "host", "default", "":
		co.Host.Network = "host"
	case "none":
		co.Host.Network = "none"
	default:
		return co, ov, usageError{fmt.Errorf("invalid --network %q: want host or none", o.network)}
	}
	for _, p := range o.envFiles {
		f, err := os.Open(p)
		if err != nil {
			return co, ov, usageError{fmt.Errorf("open env file: %w", err)}
		}
		env, err := container.ParseEnvFile(f)
		f.Close()
		if err != nil {
			return co, ov, usageError{fmt.Errorf("%s: %w", p, err)}
		}
		ov.Env = append(ov.Env, env...)
	}
	for _, kv := range o.env {
		// As docker's: a variable needs a name ("", "=x" are refused).
		if k, _, _ := strings.Cut(kv, "="); k == "" {
			return co, ov, usageError{fmt.Errorf("invalid environment variable: %q", kv)}
		}
	}
	ov.Env = append(ov.Env, o.env...)
	ov.Entrypoint, ov.WorkingDir, ov.User = o.entrypoint, o.workdir, o.user
	if o.name != "" && !container.ValidName(o.name) {
		return co, ov, usageError{fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", o.name)}
	}
	for _, v := range o.volumes {
		m, err := container.ParseVolume(v)
		if err != nil {
			return co, ov, usageError{err}
		}
		// Docker's -v would make a missing source; here it would only
		// fail at start, after the container was made.
		if _, err := os.Stat(m.Source); err != nil {
			return co, ov, usageError{fmt.Errorf("invalid volume %q: bind source path: %w", v, err)}
		}
		co.Host.Mounts = append(co.Host.Mounts, m)
	}
	for _, v := range o.tmpfs {
		m, err := container.ParseTmpfs(v)
		if err != nil {
			return co, ov, usageError{err}
		}
		co.Host.Mounts = append(co.Host.Mounts, m)
	}
	nnp, err := container.ParseSecurityOpts(o.securityOpt)
	if err != nil {
		return co, ov, usageError{err}
	}
	co.Host.NoNewPrivileges = nnp
	var res container.Resources
	if o.memorySet || o.memory != "" {
		n, err := units.RAMInBytes(o.memory)
		if err != nil || n < 0 {
			return co, ov, usageError{fmt.Errorf("invalid --memory %q", o.memory)}
		}
		// Checked here, as Docker does, so no container is made that
		// could never start; the runner checks again.
		if n > 0 && n < 6<<20 {
			return co, ov, usageError{fmt.Errorf("invalid --memory %q: the minimum memory limit allowed is 6MB", o.memory)}
		}
		res.Memory = n
	}
	switch {
	case o.pidsLimit == -1:
		// Docker takes -1 for unlimited.
		o.pidsLimit = 0
	case o.pidsLimit < 0:
		return co, ov, usageError{fmt.Errorf("invalid --pids-limit %d: want a positive number, or 0 or -1 for unlimited", o.pidsLimit)}
	}
	res.Pids = o.pidsLimit
	if o.cpus < 0 || o.cpus > float64(runtime.NumCPU()) || o.cpus > 0 && o.cpus < 0.01 {
		return co, ov, usageError{fmt.Errorf("invalid --cpus %v: the range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", o.cpus, runtime.NumCPU(), runtime.NumCPU())}
	}
	res.CPUs = o.cpus
	if res != (container.Resources{}) {
		co.Host.Resources = &res
	}
	// The kernel's limit (HOST_NAME_MAX); sethostname would refuse it
	// only once the container starts.
	if len(o.hostname) > 64 {
		return co, ov, usageError{fmt.Errorf("invalid --hostname %q: longer than 64 bytes", o.hostname)}
	}
	co.Name = o.name
	co.Host.Hostname = o.hostname
	co.Host.ReadOnly = o.readOnly
	co.Host.Tty = o.tty
	co.Host.OpenStdin = o.interactive
	co.Host.AutoRemove = o.rm
	return co, ov, nil
}

func runContainer(ctx context.Context, g *globalOptions, o *runOptions, ref string, args []string) error {
	co, ov, err := o.createOptions()
	if err != nil {
		return err
	}
	ov.Args = args
	if o.interactive && o.tty && !o.detach && !isTerminal(os.Stdin) {
		return errors.New("the input device is not a TTY")
	}
	var sigs chan os.Signal
	if !o.detach {
		// From now on, signals are for the container: they wait in the
		// channel while it is made, and are forwarded once it runs.
		sigs = make(chan os.Signal, 16)
		signal.Notify(sigs, forwardedSignals...)
		defer signal.Stop(sigs)
	}
	e, err := g.open(ctx)
	if err != nil {
		return err
	}
	// As docker run: an image the store lacks is pulled.
	puller, err := g.puller("", false)
	if err != nil {
		return err
	}
	rt := e.runtime()
	c, err := createContainer(ctx, e, rt, &source.Resolver{Store: e.store, Puller: puller}, ref, co, ov)
	if err != nil {
		return err
	}
	if o.detach {
		err = spawnMonitor(ctx, rt, c)
		if err == nil {
			fmt.Println(c.ID)
		}
	} else {
		err = attach(ctx, rt, c, o.interactive, sigs)
	}
	if err != nil {
		discardUnstarted(ctx, rt, c.ID, err)
	}
	return err
}

// discardUnstarted removes the container run just made when it could not
// start at all. A command that could not be executed (126, 127) is the
// container's own exit, as in Docker, and stays.
func discardUnstarted(ctx context.Context, rt *container.Runtime, id string, runErr error) {
	var ec exitCodeError
	if errors.As(runErr, &ec) {
		return
	}
	if err := rt.DiscardUnstarted(context.WithoutCancel(ctx), id); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

// createContainer resolves the image, unpacks it and makes the container.
// The store's build lock is held meanwhile, so a prune cannot take the
// image's blobs between the lookup and the record that keeps them.
func createContainer(ctx context.Context, e *env, rt *container.Runtime, images *source.Resolver, ref string, co container.CreateOptions, ov container.Overrides) (*container.Container, error) {
	lock, err := e.lockWrites(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	// Checked again when the record is written; asked first so that a
	// taken name does not unpack the image for nothing.
	if co.Name != "" {
		if c, err := container.Get(ctx, e.store.Meta(), co.Name); err == nil && c.Name == co.Name {
			return nil, fmt.Errorf("%w: the container name %q is already in use by container %q", container.ErrNameInUse, "/"+co.Name, c.ID)
		}
	}
	img, err := images.Lookup(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("unable to find image %q: %w", ref, err)
	}
	co.Config, err = container.MakeConfig(img.Config.Config.ImageConfig, ov, os.LookupEnv)
	if err != nil {
		return nil, usageError{err}
	}
	co.Image = container.Image{Ref: ref, ID: img.ID(), Manifest: img.Descriptor, Layers: img.Layers, DiffIDs: img.DiffIDs}
	return rt.Create(ctx, co)
}

// forwardedSignals are the signals a foreground run or a monitor passes on
// to the container's pid 1 (Docker's --sig-proxy). SIGCHLD, SIGPIPE,
// SIGURG (the Go runtime's) and SIGWINCH are the process's own.
var forwardedSignals = []os.Signal{
	unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM, unix.SIGCONT,
}

// attach runs c in this process, connected to the terminal or our stdio,
// and returns its exit code as an exitCodeError. With stdin (-i) and a
// terminal (-t), the user's terminal is put in raw mode meanwhile, so keys
// (Ctrl-C too) reach the container's terminal as they are typed.
func attach(ctx context.Context, rt *container.Runtime, c *container.Container, stdin bool, sigs chan os.Signal) error {
	if sigs == nil {
		sigs = make(chan os.Signal, 16)
		signal.Notify(sigs, forwardedSignals...)
		defer signal.Stop(sigs)
	}
	rio := container.IO{Stdout: os.Stdout, Stderr: os.Stderr, Signals: sigs, NoLog: c.Host.AutoRemove}
	if c.Host.Tty {
		// The container's terminal takes the size of ours, now and as its
		// window changes.
		if size, ok := terminalSize(); ok {
			rio.ConsoleSize = &size
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, unix.SIGWINCH)
			done := make(chan struct{})
			defer func() {
				signal.Stop(winch)
				close(done)
			}()
			resize := make(chan runner.Winsize, 1)
			rio.Resize = resize
			go func() {
				for {
					select {
					case <-winch:
					case <-done:
						return
					}
					if size, ok := terminalSize(); ok {
						select {
						case resize <- size:
						default: // the monitor has not taken the last one: skip
						}
					}
				}
			}()
		}
	}
	if stdin {
		rio.Stdin = os.Stdin
		if c.Host.Tty && isTerminal(os.Stdin) {
			restore, err := makeRaw(int(os.Stdin.Fd()))
			if err != nil {
				return err
			}
			defer restore()
		}
	}
	code, err := rt.Run(ctx, c.ID, rio)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCodeError{code: code}
	}
	return nil
}

// terminalSize is the size of the terminal on our stdout (or stdin).
func terminalSize() (runner.Winsize, bool) {
	for _, f := range []*os.File{os.Stdout, os.Stdin} {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Row > 0 && ws.Col > 0 {
			return runner.Winsize{Rows: ws.Row, Cols: ws.Col}, true
		}
	}
	return runner.Winsize{}, false
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// makeRaw puts the terminal fd in raw mode (cfmakeraw(3)'s settings) and
// returns what restores it.
func makeRaw(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("get terminal mode: %w", err)
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, fmt.Errorf("set terminal raw: %w", err)
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
