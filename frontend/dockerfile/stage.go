package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/builder-dev/builder/solver/graph"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// stage is one FROM block while it is converted.
type stage struct {
	index int
	name  string // lowercased AS name, "" if none
	ist   instructions.Stage
	from  graph.From
	// commands are the stage's instructions, preceded by the ONBUILD
	// triggers of its base once that is resolved.
	commands []*command
	needed   bool // the target needs this stage

	// Dispatch state.
	base      dockerspec.DockerOCIImage // what the stage starts from
	img       dockerspec.DockerOCIImage // the config after the last step
	env       *envList                  // what RUN gets and words expand against
	buildArgs []buildArg                // ARGs declared so far, for RUN's history
	cmdSet    bool                      // CMD was set in this stage
	envIndex  map[string]int            // img.Config.Env key -> index, built on first use
	steps     []*graph.Step
}

// label names the stage in messages as BuildKit does.
func (s *stage) label() string {
	if s.name != "" {
		return s.name
	}
	return fmt.Sprintf("stage-%d", s.index)
}

// command is an instruction plus what COPY --from refers to.
type command struct {
	ic        instructions.Command
	fromStage int    // COPY --from=<stage>, -1 if none
	fromImage string // COPY --from=<image>
	onbuild   bool   // inserted from the base's ONBUILD triggers
}

// text is the instruction as written, continuations joined; a trigger says
// it comes from ONBUILD.
func (cmd *command) text() string {
	t := strings.ToUpper(cmd.ic.Name())
	if s, ok := cmd.ic.(fmt.Stringer); ok {
		t = s.String()
	}
	if cmd.onbuild {
		t = "ONBUILD " + t
	}
	return t
}

// addStages expands every FROM line in global scope and links stages to
// the earlier stages they start from, for all stages as BuildKit does.
func (c *converter) addStages(stages []instructions.Stage) error {
	for i, ist := range stages {
		s := &stage{index: i, name: ist.Name, ist: ist, from: graph.From{Stage: -1}}
		name, err := c.processWord(ist.BaseName, c.global)
		if err != nil {
			return c.errAt(ist.Location, err)
		}
		if name == "" {
			return c.errAt(ist.Location, fmt.Errorf("base name (%s) should not be blank", ist.BaseName))
		}
		if ist.Platform != "" {
			if err := c.checkFromPlatform(ist); err != nil {
				return err
			}
		}
		// Only earlier stages can be a base: the lookup happens before
		// this stage's own name is registered.
		if j, ok := c.byName[name]; ok {
			s.from.Stage = j
		} else if name == "scratch" {
			s.from.Scratch = true
		} else {
			s.from.Image = name
		}
		if s.name != "" {
			c.byName[s.name] = i
		}
		c.stages = append(c.stages, s)
	}
	for _, s := range c.stages {
		for _, ic := range s.ist.Commands {
			cmd, err := c.newCommand(ic)
			if err != nil {
				return err
			}
			s.commands = append(s.commands, cmd)
		}
	}
	return nil
}

// checkFromPlatform accepts FROM --platform only for the build platform:
// this builder does not cross-build.
func (c *converter) checkFromPlatform(ist instructions.Stage) error {
	v, err := c.processWord(ist.Platform, c.global)
	if err != nil {
		return c.errAt(ist.Location, fmt.Errorf("failed to process arguments for platform %s: %w", ist.Platform, err))
	}
	if v == "" {
		return c.errAt(ist.Location, fmt.Errorf("empty platform value from expression %s", ist.Platform))
	}
	p, ok := parsePlatform(v, c.platform)
	if !ok {
		return c.errAt(ist.Location, fmt.Errorf("failed to parse platform %s", v))
	}
	if p.OS != c.platform.OS || p.Architecture != c.platform.Architecture ||
		(p.Variant != "" && c.platform.Variant != "" && p.Variant != c.platform.Variant) {
		return c.errAt(ist.Location, fmt.Errorf("FROM --platform=%s: only the build platform %s is supported", v, formatPlatform(c.platform)))
	}
	return nil
}

// newCommand wraps an instruction, resolving what COPY --from names: a
// stage index, a stage name, or else an image reference.
func (c *converter) newCommand(ic instructions.Command) (*command, error) {
	cmd := &command{ic: ic, fromStage: -1}
	cp, ok := ic.(*instructions.CopyCommand)
	if !ok || cp.From == "" {
		return cmd, nil
	}
	res, err := c.lex.ProcessWordWithMatches(cp.From, emptyEnv{})
	if err != nil || res.Result != cp.From {
		return nil, c.errAt(ic.Location(), errors.New("variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"))
	}
	if i, err := strconv.Atoi(cp.From); err == nil {
		if i < 0 || i >= len(c.stages) {
			return nil, c.errAt(ic.Location(), fmt.Errorf("invalid stage index %d", i))
		}
		cmd.fromStage = i
	} else if i, ok := c.byName[strings.ToLower(cp.From)]; ok {
		cmd.fromStage = i
	} else {
		cmd.fromImage = cp.From
	}
	return cmd, nil
}

// dep is a stage a stage depends on, and the instruction that says so.
type dep struct {
	stage int
	loc   []parser.Range // the FROM or COPY --from line
}

// deps lists the stages s depends on.
func (s *stage) deps() []dep {
	var d []dep
	if s.from.Stage >= 0 {
		d = append(d, dep{s.from.Stage, s.ist.Location})
	}
	for _, cmd := range s.commands {
		if cmd.fromStage >= 0 {
			d = append(d, dep{cmd.fromStage, cmd.ic.Location()})
		}
	}
	return d
}

// checkCycles rejects stages that depend on each other, in every stage as
// BuildKit does, needed or not. The error is located at the instruction
// that closes the loop and names every link of it with its line.
func (c *converter) checkCycles() error {
	const (
		unseen = iota
		visiting
		done
	)
	state := make([]int, len(c.stages))
	// path is the chain of dependencies being followed: path[k] is how
	// the k-th stage on it depends on the next.
	var path []struct {
		from int
		dep  dep
	}
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case visiting:
			k := 0
			for path[k].from != i {
				k++
			}
			var links []string
			for _, p := range path[k:] {
				links = append(links, fmt.Sprintf("%s -> %s (%s)", c.stages[p.from].label(), c.stages[p.dep.stage].label(), c.location(p.dep.loc)))
			}
			last := path[len(path)-1].dep.loc
			return c.errAt(last, fmt.Errorf("circular dependency detected on stage: %s: %s", c.stages[i].label(), strings.Join(links, ", ")))
		case done:
			return nil
		}
		state[i] = visiting
		for _, d := range c.stages[i].deps() {
			path = append(path, struct {
				from int
				dep  dep
			}{i, d})
			if err := visit(d.stage); err != nil {
				return err
			}
			path = path[:len(path)-1]
		}
		state[i] = done
		return nil
	}
	for i := range c.stages {
		if err := visit(i); err != nil {
			return err
		}
	}
	return nil
}

// resolve marks the stages the target needs and resolves their bases. A
// base's ONBUILD triggers become the first commands of the stage, and may
// themselves COPY --from other stages, which are then needed too.
func (c *converter) resolve(ctx context.Context, i int) error {
	s := c.stages[i]
	if s.needed {
		return nil
	}
	s.needed = true
	var triggers []string
	switch {
	case s.from.Stage >= 0:
		if err := c.resolve(ctx, s.from.Stage); err != nil {
			return err
		}
		// The base stage's own ONBUILD instructions; whatever it
		// inherited was triggered there already.
		for _, cmd := range c.stages[s.from.Stage].commands {
			if ob, ok := cmd.ic.(*instructions.OnbuildCommand); ok {
				triggers = append(triggers, ob.Expression)
			}
		}
	case s.from.Scratch:
		s.base = emptyImage(c.platform)
	default:
		img, err := c.opts.ResolveImage(ctx, s.from.Image)
		if err != nil {
			return c.errAt(s.ist.Location, fmt.Errorf("resolve image %s: %w", s.from.Image, err))
		}
		s.base = img
		triggers = img.Config.OnBuild
	}
	if err := c.loadTriggers(s, triggers); err != nil {
		return err
	}
	for _, cmd := range s.commands {
		if cmd.fromStage >= 0 {
			if err := c.resolve(ctx, cmd.fromStage); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadTriggers parses ONBUILD triggers and puts them before the stage's
// own commands, located at its FROM line.
func (c *converter) loadTriggers(s *stage, triggers []string) error {
	var cmds []*command
	for _, t := range triggers {
		res, err := parser.Parse(strings.NewReader(t))
		if err != nil {
			return c.errAt(s.ist.Location, fmt.Errorf("parse ONBUILD trigger %q: %w", t, err))
		}
		if len(res.AST.Children) != 1 {
			return c.errAt(s.ist.Location, errors.New("onbuild trigger should be a single expression"))
		}
		node := res.AST.Children[0]
		node.StartLine, node.EndLine = lineSpan(s.ist.Location)
		ic, err := instructions.ParseCommand(node)
		if err != nil {
			return c.errAt(s.ist.Location, err)
		}
		cmd, err := c.newCommand(ic)
		if err != nil {
			return err
		}
		cmd.onbuild = true
		cmds = append(cmds, cmd)
	}
	s.commands = append(cmds, s.commands...)
	return nil
}

func lineSpan(rng []parser.Range) (start, end int) {
	for i, r := range rng {
		if i == 0 || r.Start.Line < start {
			start = r.Start.Line
		}
		if r.End.Line > end {
			end = r.End.Line
		}
	}
	return start, end
}

// dispatchStage converts a needed stage: its starting config, then one
// step per command.
func (c *converter) dispatchStage(s *stage) error {
	if s.from.Stage >= 0 {
		b := c.stages[s.from.Stage]
		s.base = b.img
		s.img = cloneImage(b.img)
		// A stage inherits its base stage's environment, ARG values
		// included, as BuildKit's dispatch state does; but not the list
		// of declared ARGs that RUN's history text shows.
		s.env = b.env.clone()
	} else {
		s.img = cloneImage(s.base)
		s.env = newEnvList()
	}
	// Triggers were taken from the base; they do not carry over.
	s.img.Config.OnBuild = nil
	s.img.Created = nil
	if _, ok := envValue(s.img.Config.Env, "PATH"); !ok {
		s.img.Config.Env = append(s.img.Config.Env, "PATH="+defaultPath)
	}
	for _, kv := range s.img.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		s.env.set(k, v)
	}
	if wd := s.img.Config.WorkingDir; wd != "" {
		s.img.Config.WorkingDir = normalizeWorkdir("/", wd)
	}
	for _, cmd := range s.commands {
		if err := c.dispatch(s, cmd); err != nil {
			return c.errAt(cmd.ic.Location(), err)
		}
		if err := checkEnvSize(s.env); err != nil {
			return c.errAt(cmd.ic.Location(), err)
		}
		// Steps copy the environment (RUN) and their history text.
		if err := c.expanded(0); err != nil {
			return c.errAt(cmd.ic.Location(), err)
		}
	}
	return nil
}
