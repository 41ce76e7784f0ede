package solver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/builder-dev/builder/runner"
	"github.com/builder-dev/builder/runner/seccomp"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/solver/graph"
)

// sandboxHostname is the fixed hostname RUN sees, like BuildKit's.
const sandboxHostname = "buildkitsandbox"

func (b *build) exec(ctx context.Context, op *graph.Exec, active *snapshot.Active, v int, name string) error {
	filter, err := seccomp.Default(runner.DefaultCapabilities())
	if err != nil {
		return err
	}
	spec := runner.Spec{
		Root:     active.Mounts(),
		UpperDir: active.UpperDir(),
		Args:     op.Args,
		Env:      op.Env,
		Cwd:      op.Cwd,
		User:     op.User,
		Hostname: sandboxHostname,
		Network:  op.Network,
		Seccomp:  filter,
	}
	// One writer for both streams: the runner then gives the command one
	// pipe for both, and the log keeps the order they were written in.
	log := &logWriter{p: b.prog, vertex: v, name: name}
	stdio := runner.Stdio{Stdout: log, Stderr: log}
	err = b.s.Runner.Run(ctx, spec, stdio)
	var exit *runner.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("process %q did not complete successfully: exit code: %d", strings.Join(op.Args, " "), exit.Code)
	}
	return err
}
