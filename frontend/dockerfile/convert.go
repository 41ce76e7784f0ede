package dockerfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/builder-dev/builder/solver/graph"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options are the inputs of a conversion besides the Dockerfile itself.
type Options struct {
	// File is the Dockerfile's path as the user named it; errors and
	// steps locate themselves with it.
	File string
	// BuildArgs are the --build-arg values. Only ARGs the Dockerfile
	// declares take them, except the proxy variables (HTTP_PROXY and
	// friends), which reach every RUN without being declared and without
	// entering the history.
	BuildArgs map[string]string
	// Target names the stage to build; "" is the last one.
	Target string
	// Network is "default", "none" or "host" ("" is "default"); every RUN
	// gets it unless it says RUN --network.
	Network string
	// Platform is both the build and the target platform (no
	// cross-building); the zero value is linux/GOARCH.
	Platform ocispec.Platform
	// ResolveImage returns the configuration of an image reference named
	// in FROM. It is called only for the stages the target needs.
	ResolveImage func(ctx context.Context, ref string) (dockerspec.DockerOCIImage, error)
	// Warnings, when set, receives what BuildKit would warn about: parser
	// and lint warnings, unused build args, also when Convert fails. Each
	// is "file:line: text" or plain text.
	Warnings *[]string
}

// Convert turns a Dockerfile into a build graph. Every error the
// Dockerfile causes is a *graph.Error locating it.
func Convert(ctx context.Context, dockerfile []byte, opts Options) (*graph.Definition, error) {
	r, err := convert(ctx, dockerfile, opts)
	if err != nil {
		return nil, err
	}
	return r.def, nil
}

// result is a conversion plus the full Docker image configs (Healthcheck,
// OnBuild, Shell) that graph.Stage cannot carry yet; nil for stages that
// were not converted.
type result struct {
	def     *graph.Definition
	configs []*dockerspec.DockerOCIImage
}

type converter struct {
	opts     Options
	platform ocispec.Platform
	network  string
	lex      *shell.Lex
	escape   rune // the Dockerfile's escape token
	// global holds the ARGs of global scope that have a value: the
	// predefined platform args and the ARGs before the first FROM, with
	// --build-arg applied. A stage that redeclares one gets its value.
	global *envList
	// declared records every ARG name declared in global scope or in a
	// converted stage, to warn about unused build args.
	declared map[string]bool
	stages   []*stage
	byName   map[string]int // stage name -> last stage with it
	warnings []string
	total    int // bytes derived from variables so far, see maxTotal
}

func convert(ctx context.Context, dt []byte, opts Options) (*result, error) {
	c := &converter{
		opts:     opts,
		platform: opts.Platform,
		network:  opts.Network,
		declared: map[string]bool{},
		byName:   map[string]int{},
	}
	// Warnings go out even when the conversion fails: with check=error=true
	// they say what the failure is about.
	defer func() {
		if opts.Warnings != nil {
			*opts.Warnings = append(*opts.Warnings, c.warnings...)
		}
	}()
	if c.platform.OS == "" || c.platform.Architecture == "" {
		c.platform = defaultPlatform()
	}
	switch c.network {
	case "":
		c.network = instructions.NetworkDefault
	case instructions.NetworkDefault, instructions.NetworkNone, instructions.NetworkHost:
	default:
		return nil, fmt.Errorf("invalid network mode %q", opts.Network)
	}
	if opts.ResolveImage == nil {
		return nil, errors.New("convert dockerfile: no ResolveImage function")
	}

	if err := c.checkSource(dt); err != nil {
		return nil, err
	}
	ck, err := c.newChecks(dt)
	if err != nil {
		return nil, err
	}
	ast, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return nil, c.errAt(nil, err)
	}
	for _, w := range ast.Warnings {
		// The parser warns only about empty continuation lines, a lint
		// rule that # check= may skip, as in BuildKit.
		var rng []parser.Range
		if w.Location != nil {
			rng = []parser.Range{*w.Location}
		}
		ck.lint.Run(&linter.RuleNoEmptyContinuation, rng, linter.RuleNoEmptyContinuation.Format())
	}
	if err := c.checkHealthchecks(ast.AST); err != nil {
		return nil, err
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, ck.lint)
	if err != nil {
		return nil, c.errAt(nil, err)
	}
	if len(stages) == 0 {
		return nil, c.errAt(nil, errors.New("dockerfile contains no stages to build"))
	}
	c.lex = shell.NewLex(ast.EscapeToken)
	c.escape = ast.EscapeToken

	if err := c.globalArgs(metaArgs, stages); err != nil {
		return nil, err
	}
	if err := c.addStages(stages); err != nil {
		return nil, err
	}
	target, err := c.target()
	if err != nil {
		return nil, err
	}
	if err := c.checkCycles(); err != nil {
		return nil, err
	}
	if err := c.resolve(ctx, target); err != nil {
		return nil, err
	}
	for _, s := range c.stages {
		if !s.needed {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := c.dispatchStage(s); err != nil {
			return nil, err
		}
	}
	c.warnUnusedArgs()
	if err := c.checkErr(ck); err != nil {
		return nil, err
	}
	return c.result(target), nil
}

// target returns the index of the stage to build.
func (c *converter) target() (int, error) {
	if c.opts.Target == "" {
		return len(c.stages) - 1, nil
	}
	i, ok := c.byName[strings.ToLower(c.opts.Target)]
	if !ok {
		return 0, c.errAt(nil, fmt.Errorf("target stage %q could not be found", c.opts.Target))
	}
	return i, nil
}

func (c *converter) result(target int) *result {
	r := &result{
		def:     &graph.Definition{Target: target},
		configs: make([]*dockerspec.DockerOCIImage, len(c.stages)),
	}
	for i, s := range c.stages {
		gs := &graph.Stage{Index: i, Name: s.name, From: s.from, Location: c.location(s.ist.Location)}
		if s.needed {
			gs.Base = s.base
			gs.Steps = s.steps
			gs.Config = s.img
			img := s.img
			r.configs[i] = &img
		}
		r.def.Stages = append(r.def.Stages, gs)
	}
	return r
}

// location turns parser ranges into a graph location in the Dockerfile.
func (c *converter) location(rng []parser.Range) graph.Location {
	loc := graph.Location{File: c.opts.File}
	for i, r := range rng {
		if i == 0 || r.Start.Line < loc.Line {
			loc.Line = r.Start.Line
		}
		if r.End.Line > loc.End {
			loc.End = r.End.Line
		}
	}
	if loc.End < loc.Line {
		loc.End = loc.Line
	}
	return loc
}

// errAt makes err a *graph.Error at rng. A location the parser already
// attached to err wins, and its redundant "on line N" wrapping is dropped.
func (c *converter) errAt(rng []parser.Range, err error) error {
	var ge *graph.Error
	if errors.As(err, &ge) {
		return err
	}
	var le *parser.LocationError
	if errors.As(err, &le) {
		if len(le.Locations) > 0 {
			rng = le.Locations[0]
		}
		if inner := le.Unwrap(); inner != nil {
			err = inner
		}
	}
	return &graph.Error{Location: c.location(rng), Err: err}
}

func (c *converter) warnAt(rng []parser.Range, msg string) {
	if loc := c.location(rng); loc.Line > 0 {
		msg = loc.String() + ": " + msg
	}
	c.warnings = append(c.warnings, msg)
}
