package dockerfile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// checkArg is the build arg that configures the checks, as in BuildKit; it
// replaces the Dockerfile's # check= directive.
const checkArg = "BUILDKIT_DOCKERFILE_CHECK"

// checks runs BuildKit's lint rules as the Dockerfile's "# check=" directive
// (or the BUILDKIT_DOCKERFILE_CHECK build arg) configures them: skip=A,B or
// skip=all silences rules, error=true makes any warning fail the build.
type checks struct {
	lint *linter.Linter
	// first is where the first reported violation is, for the error that
	// error=true turns the warnings into.
	first []parser.Range
	rules []string // the rules that reported, in order, once each
}

// newChecks reads the check configuration. Every warning goes to
// c.warnings.
func (c *converter) newChecks(dt []byte) (*checks, error) {
	var (
		cfg *linter.Config
		err error
	)
	if v, ok := c.opts.BuildArgs[checkArg]; ok {
		cfg, err = linter.ParseLintOptions(v)
		if err != nil {
			return nil, c.errAt(nil, fmt.Errorf("parse build arg %s: %w", checkArg, err))
		}
	} else {
		v, _, rng, _ := parser.ParseDirective("check", dt)
		cfg, err = linter.ParseLintOptions(v)
		if err != nil {
			return nil, c.errAt(rng, fmt.Errorf("parse check directive: %w", err))
		}
	}
	ck := &checks{}
	cfg.Warn = func(rule, _, _, msg string, rng []parser.Range) {
		if len(ck.rules) == 0 {
			ck.first = rng
		}
		if !slices.Contains(ck.rules, rule) {
			ck.rules = append(ck.rules, rule)
		}
		c.warnAt(rng, rule+": "+msg)
	}
	ck.lint = linter.New(cfg)
	return ck, nil
}

// checkErr is the build's failure when the checks are errors and some rule
// reported, located at the first violation.
func (c *converter) checkErr(ck *checks) error {
	if !ck.lint.ReturnAsError || len(ck.rules) == 0 {
		return nil
	}
	return c.errAt(ck.first, fmt.Errorf("lint violation found for rules: %s (check=error=true)", strings.Join(ck.rules, ", ")))
}
