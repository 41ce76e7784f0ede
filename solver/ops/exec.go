package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/builder-dev/builder/runner"
	"github.com/builder-dev/builder/runner/seccomp"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/graph"
)

// sandboxHostname is the fixed hostname RUN sees, like BuildKit's.
const sandboxHostname = "buildkitsandbox"

// execOp is a RUN: a command in a container over the stage's snapshot.
type execOp struct {
	r  *Resolver
	op *graph.Exec
}

func (e *execOp) CacheMap(ctx context.Context, inputs []solver.Chain) (solver.CacheMap, error) {
	b, err := json.Marshal(e.op)
	return solver.CacheMap{Kind: "exec", Op: b}, err
}

func (e *execOp) Exec(ctx context.Context, parent solver.Chain, inputs []solver.Chain, log io.Writer) (solver.Layer, error) {
	return e.r.layer(ctx, parent, func(ctx context.Context, active *snapshot.Active) error {
		return e.run(ctx, active, log)
	})
}

func (e *execOp) run(ctx context.Context, active *snapshot.Active, log io.Writer) error {
	filter, err := seccomp.Default(runner.DefaultCapabilities())
	if err != nil {
		return err
	}
	op := e.op
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
	stdio := runner.Stdio{Stdout: log, Stderr: log}
	err = e.r.cfg.Runner.Run(ctx, spec, stdio)
	var exit *runner.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("process %q did not complete successfully: exit code: %d", strings.Join(op.Args, " "), exit.Code)
	}
	return err
}
