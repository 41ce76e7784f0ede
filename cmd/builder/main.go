package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/builder-dev/builder/runner"
)

// usageError marks a bad invocation: exit code 2, like docker.
type usageError struct{ error }

// exitCodeError carries the exit code of a container `run` returns.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit code %d", e.code) }

func main() {
	// A re-executed container init never returns from here.
	runner.Init()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ec exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

type globalOptions struct {
	root     string
	registry registryFlags
}

// rootFlag is --root: a string that may not be empty. `--root "$UNSET"`
// would otherwise fall back to the default root, which the user did not
// ask for.
type rootFlag struct{ p *string }

func (f rootFlag) Set(s string) error {
	if s == "" {
		return errors.New("empty path")
	}
	*f.p = s
	return nil
}

func (f rootFlag) String() string { return *f.p }
func (f rootFlag) Type() string   { return "string" }

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	cmd := &cobra.Command{
		Use:           "builder",
		Short:         "Build Dockerfiles into OCI images and run them, without a daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Runnable with its own Args, so that an unknown command is a usage
		// error (exit 2) like every other bad invocation, not cobra's plain
		// error.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
			}
			return usageError{errors.New(msg)}
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().Var(rootFlag{&g.root}, "root", "store directory (default $BUILDER_ROOT, /var/lib/builder as root)")
	g.registry.add(cmd.PersistentFlags())
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath())}
	})
	cmd.AddCommand(
		newBuildCmd(g),
		newImagesCmd(g),
		newInspectCmd(g),
		newHistoryCmd(g),
		newTagCmd(g),
		newRmiCmd(g),
		newLoadCmd(g),
		newSaveCmd(g),
		newImportCmd(g),
		newRunCmd(g),
		newPsCmd(g),
		newStartCmd(g),
		newStopCmd(g),
		newRmCmd(g),
		newLogsCmd(g),
		newDiffCmd(g),
		newCommitCmd(g),
		newMonitorCmd(g),
		newCacheCmd(g),
		newStoreCmd(g),
		newPullCmd(g),
		newPushCmd(g),
		newLoginCmd(g),
		newLogoutCmd(g),
	)
	return cmd
}

// exactArgs is cobra.ExactArgs returning a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MinimumNArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(lo, hi)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
