package dockerfile

import (
	"fmt"

	"github.com/builder-dev/builder/solver/graph"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// dispatch applies one command to the stage.
func (c *converter) dispatch(s *stage, cmd *command) error {
	// Words are expanded against the environment before the instruction,
	// so every reference on one ENV line sees the old values. ARG expands
	// its own defaults: a --build-arg must win without expanding them.
	if _, isArg := cmd.ic.(*instructions.ArgCommand); !isArg {
		if ex, ok := cmd.ic.(instructions.SupportsSingleWordExpansion); ok {
			err := ex.Expand(func(word string) (string, error) {
				return c.processWord(word, s.env)
			})
			if err != nil {
				return err
			}
		}
	}
	switch ic := cmd.ic.(type) {
	case *instructions.RunCommand:
		return c.dispatchRun(s, cmd, ic)
	case *instructions.CopyCommand:
		return c.dispatchCopy(s, cmd, ic)
	case *instructions.AddCommand:
		return c.dispatchAdd(s, cmd, ic)
	case *instructions.WorkdirCommand:
		return c.dispatchWorkdir(s, cmd, ic)
	case *instructions.UserCommand:
		return c.dispatchUser(s, cmd, ic)
	case *instructions.ArgCommand:
		return c.dispatchArg(s, cmd, ic)
	case *instructions.EnvCommand:
		return c.dispatchEnv(s, cmd, ic)
	case *instructions.LabelCommand:
		return c.dispatchLabel(s, cmd, ic)
	case *instructions.CmdCommand:
		return c.dispatchCmd(s, cmd, ic)
	case *instructions.EntrypointCommand:
		return c.dispatchEntrypoint(s, cmd, ic)
	case *instructions.ExposeCommand:
		return c.dispatchExpose(s, cmd, ic)
	case *instructions.VolumeCommand:
		return c.dispatchVolume(s, cmd, ic)
	case *instructions.StopSignalCommand:
		return c.dispatchStopSignal(s, cmd, ic)
	case *instructions.HealthCheckCommand:
		return c.dispatchHealthcheck(s, cmd, ic)
	case *instructions.ShellCommand:
		return c.dispatchShell(s, cmd, ic)
	case *instructions.MaintainerCommand:
		return c.dispatchMaintainer(s, cmd, ic)
	case *instructions.OnbuildCommand:
		return c.dispatchOnbuild(s, ic)
	default:
		return fmt.Errorf("unsupported instruction %s", cmd.ic.Name())
	}
}

// addStep records a step and its history entry. createdBy is BuildKit's
// created_by text; layer says whether the step (provisionally) makes a
// layer.
func (c *converter) addStep(s *stage, cmd *command, createdBy string, op graph.Op, layer bool) {
	h := ocispec.History{CreatedBy: createdBy, Comment: historyComment, EmptyLayer: !layer}
	c.total += len(createdBy)
	if ex, ok := op.(*graph.Exec); ok {
		for _, kv := range ex.Env {
			c.total += len(kv) + entryCost
		}
	}
	s.img.History = append(s.img.History, h)
	s.steps = append(s.steps, &graph.Step{
		Location: c.location(cmd.ic.Location()),
		Text:     cmd.text(),
		History:  h,
		Op:       op,
	})
}

// configStep records a step that only changes the image config.
func (c *converter) configStep(s *stage, cmd *command, createdBy string) error {
	c.addStep(s, cmd, createdBy, nil, false)
	return nil
}
