package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/builder-dev/builder/runner"
)

type runOptions struct {
	rm          bool
	env         []string
	workdir     string
	user        string
	entrypoint  *string
	network     string
	hostname    string
	tty         bool
	interactive bool
}

func newRunCmd(g *globalOptions) *cobra.Command {
	o := &runOptions{}
	var entrypoint string
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Run a command in a new container of an image",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("entrypoint") {
				o.entrypoint = &entrypoint
			}
			return runContainer(cmd.Context(), g, o, args[0], args[1:])
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVar(&o.rm, "rm", false, "remove the container when it exits")
	f.StringArrayVarP(&o.env, "env", "e", nil, "set environment variables")
	f.StringVarP(&o.workdir, "workdir", "w", "", "working directory inside the container")
	f.StringVarP(&o.user, "user", "u", "", "user[:group]")
	f.StringVar(&entrypoint, "entrypoint", "", "override the image's ENTRYPOINT")
	f.StringVar(&o.network, "network", "host", "network: host or none")
	f.StringVar(&o.hostname, "hostname", "", "container hostname")
	f.BoolVarP(&o.tty, "tty", "t", false, "allocate a pseudo-TTY")
	f.BoolVarP(&o.interactive, "interactive", "i", false, "keep stdin open")
	return cmd
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// argv applies Docker's ENTRYPOINT/CMD rules: command-line args replace
// CMD; --entrypoint replaces ENTRYPOINT and drops the image's CMD.
func argv(entrypoint, cmd []string, override *string, args []string) []string {
	if override != nil {
		entrypoint = nil
		if *override != "" {
			entrypoint = []string{*override}
		}
		cmd = nil
	}
	if len(args) > 0 {
		cmd = args
	}
	return append(append([]string(nil), entrypoint...), cmd...)
}

// mergeEnv sets each KEY=VALUE of add in base, replacing an existing KEY in
// place; "KEY" alone takes the value from the caller's environment.
func mergeEnv(base []string, add []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range add {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			v, set := os.LookupEnv(k)
			if !set {
				continue
			}
			kv = k + "=" + v
		}
		replaced := false
		for i, e := range out {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				out[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

func runContainer(ctx context.Context, g *globalOptions, o *runOptions, ref string, args []string) error {
	if o.network != "host" && o.network != "none" && o.network != "default" {
		return usageError{fmt.Errorf("invalid --network %q: want host or none", o.network)}
	}
	e, err := g.open(ctx)
	if err != nil {
		return err
	}
	desc, err := e.store.Resolve(ctx, ref)
	if err != nil {
		return fmt.Errorf("unable to find image %q: %w", ref, err)
	}
	m, cfg, err := e.store.LoadImage(ctx, desc)
	if err != nil {
		return err
	}
	s := e.solver(nil)
	parent, err := s.Materialize(ctx, m.Layers, cfg.RootFS.DiffIDs)
	if err != nil {
		return err
	}
	cmdArgs := argv(cfg.Config.Entrypoint, cfg.Config.Cmd, o.entrypoint, args)
	if len(cmdArgs) == 0 {
		return usageError{errors.New("no command specified")}
	}
	id := newID()
	hostname := o.hostname
	if hostname == "" {
		hostname = id[:12]
	}
	env := mergeEnv(cfg.Config.Env, append([]string{"HOSTNAME=" + hostname}, o.env...))
	if o.tty {
		env = mergeEnv(env, []string{"TERM=xterm"})
	}
	cwd := cfg.Config.WorkingDir
	if o.workdir != "" {
		cwd = o.workdir
	}
	if cwd == "" {
		cwd = "/"
	}
	usr := cfg.Config.User
	if o.user != "" {
		usr = o.user
	}
	active, err := e.snap.Prepare(ctx, parent)
	if err != nil {
		return err
	}
	// The full container lifecycle (a kept writable layer, ps, start) is a
	// later step; until then every container is removed when it exits.
	defer active.Remove(context.WithoutCancel(ctx))
	stdio := runner.Stdio{Stdout: os.Stdout, Stderr: os.Stderr}
	if o.interactive {
		stdio.Stdin = os.Stdin
	}
	err = runner.Run(ctx, runner.Spec{
		Root:     active.Mounts(),
		UpperDir: active.UpperDir(),
		Args:     cmdArgs,
		Env:      env,
		Cwd:      cwd,
		User:     usr,
		Hostname: hostname,
		Network:  o.network,
		Tty:      o.tty,
		// docker run lists the primary group among the supplementary ones.
		PrimaryGroupInGroups: true,
	}, stdio)
	var exit *runner.ExitError
	if errors.As(err, &exit) {
		return exitCodeError{code: exit.Code}
	}
	return err
}
