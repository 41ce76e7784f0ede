package dockerfile

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/builder-dev/builder/solver/graph"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// dispatchRun turns RUN into an Exec. The shell form is not expanded here:
// the shell does it, with build args and ENV in its environment.
func (c *converter) dispatchRun(s *stage, cmd *command, ic *instructions.RunCommand) error {
	network := c.network
	for _, f := range ic.FlagsUsed {
		switch f {
		case "network":
			if n := instructions.GetNetwork(ic); n != instructions.NetworkDefault {
				network = n
			}
		case "security":
			if instructions.GetSecurity(ic) != instructions.SecuritySandbox {
				return errors.New("RUN --security=insecure is not supported")
			}
		default:
			return fmt.Errorf("RUN --%s is not supported", f)
		}
	}
	args, err := runArgs(s.img, ic)
	if err != nil {
		return err
	}
	env := append(s.env.slice(), c.proxyEnv(s.env)...)
	exec := &graph.Exec{
		Args:    args,
		Env:     env,
		Cwd:     workdir(s.img),
		User:    s.img.Config.User,
		Network: network,
	}
	c.addStep(s, cmd, "RUN "+runHistory(args, s.buildArgs, s.env)+" # buildkit", exec, true)
	return nil
}

// runArgs is the argv of a RUN: the exec form as given, the shell form
// wrapped in the stage's shell. A here-document is the script itself.
func runArgs(img dockerspec.DockerOCIImage, ic *instructions.RunCommand) ([]string, error) {
	args := ic.CmdLine
	if len(ic.Files) > 0 {
		if len(args) != 1 || !ic.PrependShell {
			return nil, fmt.Errorf("parsing produced an invalid run command: %v", args)
		}
		if h := parser.MustParseHeredoc(args[0]); h != nil {
			data := ic.Files[0].Data
			if ic.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				// BuildKit runs such a script from a mounted file; we have
				// no file mounts for RUN.
				return nil, errors.New("RUN here-document with a #! interpreter line is not supported")
			}
			args = []string{data}
		} else {
			// Here-documents inside a longer command line: hand the whole
			// text to the shell, which understands them.
			var b strings.Builder
			b.WriteString(args[0])
			for _, f := range ic.Files {
				b.WriteString("\n" + f.Data + f.Name)
			}
			args = []string{b.String()}
		}
	}
	if ic.PrependShell {
		return withShell(img, args), nil
	}
	return slices.Clone(args), nil
}

// withShell wraps a shell-form command line in the stage's SHELL.
func withShell(img dockerspec.DockerOCIImage, args []string) []string {
	sh := []string{"/bin/sh", "-c"}
	if len(img.Config.Shell) > 0 {
		sh = slices.Clone(img.Config.Shell)
	}
	return append(sh, strings.Join(args, " "))
}

// runHistory is BuildKit's history text of a RUN: the build args in scope,
// "|N K=V ...", then the argv joined by spaces. An ARG declared twice is
// listed twice, as Docker 20.10's BuildKit did (newer ones list it once).
func runHistory(args []string, buildArgs []buildArg, env *envList) string {
	var kvs []string
	for _, a := range buildArgs {
		v, ok := env.Get(a.key)
		if !ok && a.value != nil {
			v = *a.value
		}
		kvs = append(kvs, a.key+"="+v)
	}
	if len(kvs) > 0 {
		kvs = append([]string{fmt.Sprintf("|%d", len(kvs))}, kvs...)
	}
	return strings.Join(append(kvs, args...), " ")
}

// dispatchShell sets the shell for later shell forms (JSON form only, which
// the parser enforces).
func (c *converter) dispatchShell(s *stage, cmd *command, ic *instructions.ShellCommand) error {
	s.img.Config.Shell = slices.Clone(ic.Shell)
	return c.configStep(s, cmd, fmt.Sprintf("SHELL %v", ic.Shell))
}
