package dockerfile

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/stopsignal"
)

// ApplyChanges applies Dockerfile instructions (commit's and import's
// --change) to cfg: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER,
// VOLUME, WORKDIR and STOPSIGNAL, as Docker does. Words are expanded
// against cfg's environment as it stands, as Docker's commit does (it runs
// the instructions through its builder): quotes are removed and $VARS
// replaced. Unlike a build's, a STOPSIGNAL is checked as the runtime will
// read it, and an ENTRYPOINT leaves CMD alone.
func ApplyChanges(cfg *dockerspec.DockerOCIImageConfig, changes []string) error {
	for _, ch := range changes {
		if err := applyChange(cfg, ch); err != nil {
			return fmt.Errorf("invalid change %q: %w", ch, err)
		}
	}
	return nil
}

// ChangeInstruction is the upper-case instruction of a --change
// ("CMD ls" -> "CMD"), for callers that accept only some.
func ChangeInstruction(change string) string {
	k, _, _ := strings.Cut(strings.TrimSpace(change), " ")
	return strings.ToUpper(k)
}

func applyChange(cfg *dockerspec.DockerOCIImageConfig, change string) error {
	res, err := parser.Parse(strings.NewReader(change))
	if err != nil {
		return err
	}
	if len(res.AST.Children) != 1 {
		return fmt.Errorf("want one instruction, got %d", len(res.AST.Children))
	}
	node := res.AST.Children[0]
	ins, err := instructions.ParseInstruction(node)
	if err != nil {
		return err
	}
	lex := shell.NewLex(res.EscapeToken)
	env := configEnv(cfg.Env)
	expand := func(word string) (string, error) {
		w, _, err := lex.ProcessWord(word, env)
		return w, err
	}
	if ex, ok := ins.(interface {
		Expand(instructions.SingleWordExpander) error
	}); ok {
		if err := ex.Expand(expand); err != nil {
			return err
		}
	}
	withShellOf := func(args []string, prepend bool) []string {
		if !prepend {
			return slices.Clone(args)
		}
		return withShell(dockerspec.DockerOCIImage{Config: *cfg}, args)
	}
	switch c := ins.(type) {
	case *instructions.CmdCommand:
		cfg.Cmd = withShellOf(c.CmdLine, c.PrependShell)
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = withShellOf(c.CmdLine, c.PrependShell)
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.ExposeCommand:
		var words []string
		for _, p := range c.Ports {
			ws, err := lex.ProcessWords(p, env)
			if err != nil {
				return err
			}
			words = append(words, ws...)
		}
		if _, err := expose(&cfg.ImageConfig, words); err != nil {
			return err
		}
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return fmt.Errorf("VOLUME cannot be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.WorkdirCommand:
		wd := c.Path
		if !path.IsAbs(wd) {
			wd = path.Join("/", cfg.WorkingDir, wd)
		}
		cfg.WorkingDir = path.Clean(wd)
	case *instructions.StopSignalCommand:
		if _, err := stopsignal.Parse(c.Signal); err != nil {
			return err
		}
		cfg.StopSignal = c.Signal
	default:
		return fmt.Errorf("%s is not allowed here (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL)", strings.ToUpper(node.Value))
	}
	return nil
}

// setEnv sets key to value in env: in place where key is, else appended.
func setEnv(env []string, key, value string) []string {
	env = slices.Clone(env)
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// configEnv is an image config's KEY=VALUE list as the shell lexer reads
// variables.
type configEnv []string

func (e configEnv) Get(key string) (string, bool) {
	for i := len(e) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(e[i], "="); k == key {
			return v, true
		}
	}
	return "", false
}

func (e configEnv) Keys() []string {
	keys := make([]string, 0, len(e))
	for _, kv := range e {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	return keys
}
