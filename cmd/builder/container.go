package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/builder-dev/builder/container"
	"github.com/builder-dev/builder/frontend/dockerfile"
)

// runtime is the container runtime of the store.
func (e *env) runtime() *container.Runtime {
	return &container.Runtime{
		Store: e.store,
		Snap:  e.snap,
	}
}

// monitorCmdName is the hidden command a detached container's monitor runs.
const monitorCmdName = "__monitor"

// spawnMonitor starts the detached container c's monitor (see
// container.SpawnMonitor): this binary, running the hidden monitor command.
// A command that could not be executed is the container's exit code.
func spawnMonitor(ctx context.Context, rt *container.Runtime, c *container.Container) error {
	args := []string{"--root", rt.Store.Root(), monitorCmdName, c.ID}
	err := container.SpawnMonitor(ctx, rt, c, args, os.Stderr)
	var ne container.NotExecutedError
	if errors.As(err, &ne) {
		return exitCodeError{code: ne.Code}
	}
	return err
}

func newMonitorCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    monitorCmdName + " ID",
		Short:  "Run a detached container and record its exit (internal)",
		Hidden: true,
		Args:   exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := container.NewMonitor(os.NewFile(3, "ready"))
			defer m.Close()
			e, err := g.open(cmd.Context())
			if err != nil {
				return m.Fail(err)
			}
			return m.Run(cmd.Context(), e.runtime(), args[0], forwardedSignals)
		},
	}
}

// forEachContainer looks each ref up, collecting the failures as Docker does
// (the others are still acted on).
func forEachContainer(ctx context.Context, rt *container.Runtime, refs []string, fn func(c *container.Container) error) error {
	var errs []error
	for _, ref := range refs {
		c, err := rt.Get(ctx, ref)
		if err == nil {
			err = fn(c)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Println(ref)
	}
	return errors.Join(errs...)
}

func newStartCmd(g *globalOptions) *cobra.Command {
	var attachOut, interactive bool
	cmd := &cobra.Command{
		Use:   "start [-a] [-i] CONTAINER...",
		Short: "Start stopped containers, with their file system changes and settings",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if (attachOut || interactive) && len(args) > 1 {
				return usageError{errors.New("you cannot start and attach multiple containers at once")}
			}
			e, err := g.open(ctx)
			if err != nil {
				return err
			}
			rt := e.runtime()
			if attachOut || interactive {
				c, err := rt.Get(ctx, args[0])
				if err != nil {
					return err
				}
				stdin := interactive && c.Host.OpenStdin
				if stdin && c.Host.Tty && !isTerminal(os.Stdin) {
					return errors.New("the input device is not a TTY")
				}
				return attach(ctx, rt, c, stdin, nil)
			}
			return forEachContainer(ctx, rt, args, func(c *container.Container) error {
				if container.Live(c) {
					return nil
				}
				return spawnMonitor(ctx, rt, c)
			})
		},
	}
	cmd.Flags().BoolVarP(&attachOut, "attach", "a", false, "attach stdout/stderr, forward signals, and exit with the container's code")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "attach stdin too")
	return cmd
}

func newStopCmd(g *globalOptions) *cobra.Command {
	var seconds int
	cmd := &cobra.Command{
		Use:   "stop [-t SECONDS] CONTAINER...",
		Short: "Stop running containers: STOPSIGNAL (SIGTERM), then SIGKILL after a grace period",
		Args:  minArgs(1),
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			rt := e.runtime()
			timeout := time.Duration(seconds) * time.Second
			if seconds < 0 {
				timeout = -1 // wait as long as it takes
			}
			return forEachContainer(ctx, rt, args, func(c *container.Container) error {
				return rt.Stop(ctx, c, timeout)
			})
		}),
	}
	cmd.Flags().IntVarP(&seconds, "time", "t", 10, "seconds to wait before killing the container (-1: forever)")
	cmd.Flags().IntVar(&seconds, "timeout", 10, "same as --time")
	return cmd
}

func newRmCmd(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [-f] CONTAINER...",
		Short: "Remove containers and their writable layers",
		Args:  minArgs(1),
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			rt := e.runtime()
			return forEachContainer(ctx, rt, args, func(c *container.Container) error {
				return rt.Remove(ctx, c, force)
			})
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill and remove a running container")
	return cmd
}

func newLogsCmd(g *globalOptions) *cobra.Command {
	var follow, timestamps bool
	cmd := &cobra.Command{
		Use:   "logs [-f] [-t] CONTAINER",
		Short: "Show a container's output",
		Args:  exactArgs(1),
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			rt := e.runtime()
			c, err := rt.Get(ctx, args[0])
			if err != nil {
				return err
			}
			running := func() bool {
				now, err := container.Get(ctx, e.store.Meta(), c.ID)
				return err == nil && container.Live(now)
			}
			return container.ReadLog(ctx, rt.LogPath(c.ID), os.Stdout, os.Stderr,
				container.LogOptions{Follow: follow, Running: running, Timestamps: timestamps})
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the output until the container stops")
	cmd.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "show timestamps")
	return cmd
}

func newDiffCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "List the files a container added (A), changed (C) and deleted (D)",
		Args:  exactArgs(1),
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			rt := e.runtime()
			c, err := rt.Get(ctx, args[0])
			if err != nil {
				return err
			}
			changes, err := rt.Diff(ctx, c)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(os.Stdout)
			for _, ch := range changes {
				fmt.Fprintln(w, ch)
			}
			return w.Flush()
		}),
	}
}

func newCommitCmd(g *globalOptions) *cobra.Command {
	var opts container.CommitOptions
	var changes []string
	cmd := &cobra.Command{
		Use:   "commit [-m MESSAGE] [-a AUTHOR] [-c CHANGE]... CONTAINER [REPOSITORY[:TAG]]",
		Short: "Make an image of a container's changes",
		Long: `Make an image of a container's changes: its image's layers plus one
layer holding the container's writable layer, a config with what the
container runs (command, env, working dir, user) and each --change
(CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR,
STOPSIGNAL) applied, and a history entry. Prints the new image's ID.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("%q requires 1 or 2 arguments", cmd.CommandPath())}
			}
			return nil
		},
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			if len(args) == 2 {
				// Before anything is written: a bad name must not leave
				// an untagged image behind.
				if err := checkTagTarget(args[1]); err != nil {
					return err
				}
				opts.Ref = args[1]
			}
			// A prune waits: the new layer blob is not named until the
			// manifest is listed.
			lock, err := e.lockWrites(ctx)
			if err != nil {
				return err
			}
			defer lock.Release()
			rt := e.runtime()
			c, err := rt.Get(ctx, args[0])
			if err != nil {
				return err
			}
			opts.Change = func(cfg *dockerspec.DockerOCIImageConfig) error {
				return dockerfile.ApplyChanges(cfg, changes)
			}
			_, id, err := rt.Commit(ctx, c, opts)
			if err != nil {
				return err
			}
			fmt.Println(id)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Comment, "message", "m", "", "commit message (the history entry's comment)")
	f.StringVarP(&opts.Author, "author", "a", "", "author")
	f.StringArrayVarP(&changes, "change", "c", nil, "apply a Dockerfile instruction to the config")
	return cmd
}

type psOptions struct {
	all, size, quiet, noTrunc bool
	format                    string
}

// psRow is one container in `ps --format json`, with Docker's field names.
type psRow struct {
	Command    string `json:"Command"`
	CreatedAt  string `json:"CreatedAt"`
	ID         string `json:"ID"`
	Image      string `json:"Image"`
	Names      string `json:"Names"`
	RunningFor string `json:"RunningFor"`
	State      string `json:"State"`
	Status     string `json:"Status"`
	ExitCode   int    `json:"ExitCode"`
	Pid        int    `json:"Pid,omitempty"`
	// With -s: Docker's text, and the numbers (bytes).
	Size        string `json:"Size,omitempty"`
	SizeRw      *int64 `json:"SizeRw,omitempty"`
	VirtualSize *int64 `json:"VirtualSize,omitempty"`
}

func newPsCmd(g *globalOptions) *cobra.Command {
	o := &psOptions{}
	cmd := &cobra.Command{
		Use:     "ps [-a] [-s] [-q] [--format table|json]",
		Aliases: []string{"container-ls"},
		Short:   "List containers (running ones; -a for all)",
		Long: `List containers: running ones, or all with -a.

With -s, SIZE is the container's writable layer and VIRTUAL SIZE its
image plus that layer. Sizes are Docker's: the apparent sizes of the
files (hard links once), an image's being the sum over its unpacked
layers. Containers of one image share its layers, so their VIRTUAL SIZEs
are not additive: each counts the image once.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.format != "table" && o.format != "json" {
				return usageError{fmt.Errorf("invalid --format %q: want table or json", o.format)}
			}
			return ps(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "show all containers, not only running ones")
	f.BoolVarP(&o.size, "size", "s", false, "show sizes")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "only container IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "do not truncate IDs and commands")
	f.StringVar(&o.format, "format", "table", "output format: table or json")
	return cmd
}

func ps(ctx context.Context, g *globalOptions, o *psOptions) error {
	e, err := g.open(ctx)
	if err != nil {
		return err
	}
	rt := e.runtime()
	list, err := rt.List(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	imageSizes := map[digest.Digest]int64{}
	imageNames := map[string]string{}
	var rows []psRow
	for _, c := range list {
		if !o.all && c.State.Status != container.Running {
			continue
		}
		id := c.ID
		if !o.noTrunc {
			id = container.ShortID(id)
		}
		if o.quiet {
			fmt.Println(id)
			continue
		}
		command := strings.Join(c.Config.Argv(), " ")
		if !o.noTrunc {
			command = truncate(command, 20)
		}
		img, ok := imageNames[c.Image.Ref]
		if !ok {
			img = imageName(ctx, e, c)
			imageNames[c.Image.Ref] = img
		}
		r := psRow{
			Command:    strconv.Quote(command),
			CreatedAt:  c.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
			ID:         id,
			Image:      img,
			Names:      c.Name,
			RunningFor: agoAt(c.Created, now),
			State:      string(c.State.Status),
			Status:     container.StatusText(c, now),
			ExitCode:   c.State.ExitCode,
			Pid:        c.State.Pid,
		}
		if o.size {
			rw, err := rt.Size(ctx, c)
			if err != nil {
				return fmt.Errorf("size of container %s: %w", c.Name, err)
			}
			is, ok := imageSizes[c.Image.ID]
			if !ok {
				if is, err = rt.ImageSize(ctx, c); err != nil {
					return fmt.Errorf("size of image %s: %w", c.Image.Ref, err)
				}
				imageSizes[c.Image.ID] = is
			}
			virtual := is + rw
			r.SizeRw, r.VirtualSize = &rw, &virtual
			r.Size = fmt.Sprintf("%s (virtual %s)", humanSize(rw), humanSize(virtual))
		}
		rows = append(rows, r)
	}
	if o.quiet {
		return nil
	}
	if o.format == "json" {
		enc := json.NewEncoder(os.Stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	return printPs(os.Stdout, rows, o.size)
}

func printPs(w io.Writer, rows []psRow, size bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tNAMES"
	if size {
		head += "\tSIZE\tVIRTUAL SIZE"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		line := strings.Join([]string{r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Names}, "\t")
		if size {
			line += "\t" + humanSize(*r.SizeRw) + "\t" + humanSize(*r.VirtualSize)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// imageName is the IMAGE column: the reference the container was run
// with while it still names the same image, else the image's short ID,
// as Docker shows it.
func imageName(ctx context.Context, e *env, c *container.Container) string {
	if desc, err := e.store.Content().Resolve(ctx, c.Image.Ref); err == nil && desc.Digest == c.Image.Manifest.Digest {
		return c.Image.Ref
	}
	return shortID(c.Image.ID.String())
}
