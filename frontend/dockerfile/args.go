package dockerfile

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// buildArg is an ARG a stage declared; value is nil when it has none.
type buildArg struct {
	key   string
	value *string
}

// proxyArgs are the build args every RUN gets without an ARG, as Docker
// predefines them. They stay out of the history because they often carry
// credentials.
var proxyArgs = []string{"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"}

// globalArgs sets up the global scope: BuildKit's predefined platform args
// (--build-arg may override them), then the ARGs before the first FROM,
// whose defaults expand against what precedes them.
//
// As in today's BuildKit, a global ARG without a value (and without a
// --build-arg) declares the name without assigning it: a predefined
// platform arg or an earlier global ARG keeps its value, and a stage that
// redeclares the name gets that value. (Docker 20.10 blanked it.) A default
// that fails to expand becomes empty, as in Docker 20.10; only a FROM line
// using it fails.
func (c *converter) globalArgs(metaArgs []instructions.ArgCommand, stages []instructions.Stage) error {
	p := c.platform
	target := c.opts.Target
	if target == "" {
		target = stages[len(stages)-1].Name
	}
	if target == "" {
		target = "default"
	}
	predefined := [][2]string{
		{"BUILDPLATFORM", formatPlatform(p)},
		{"BUILDOS", p.OS},
		{"BUILDOSVERSION", p.OSVersion},
		{"BUILDARCH", p.Architecture},
		{"BUILDVARIANT", p.Variant},
		{"TARGETPLATFORM", formatPlatform(p)},
		{"TARGETOS", p.OS},
		{"TARGETOSVERSION", p.OSVersion},
		{"TARGETARCH", p.Architecture},
		{"TARGETVARIANT", p.Variant},
		{"TARGETSTAGE", target},
	}
	c.global = newEnvList()
	for _, kv := range predefined {
		v := kv[1]
		if ov, ok := c.opts.BuildArgs[kv[0]]; ok {
			v = ov
		}
		c.global.set(kv[0], v)
	}
	for _, cmd := range metaArgs {
		for _, a := range cmd.Args {
			c.declared[a.Key] = true
			if v, ok := c.opts.BuildArgs[a.Key]; ok {
				c.global.set(a.Key, v)
				continue
			}
			if a.Value != nil {
				// Docker 20.10 drops the error and keeps ""; but not
				// the error of a value grown past the limits.
				v, err := c.processWord(*a.Value, c.global)
				if errors.Is(err, errTooLarge) {
					return c.errAt(cmd.Location(), err)
				}
				c.global.set(a.Key, v)
				if err := checkEnvSize(c.global); err != nil {
					return c.errAt(cmd.Location(), err)
				}
			}
		}
	}
	return nil
}

// dispatchArg declares ARGs in a stage. The value is, in order: the
// --build-arg, the default written here (expanded), or the global value
// of the same name. A declared value joins the environment of later RUNs
// but not the image's Env.
func (c *converter) dispatchArg(s *stage, cmd *command, ic *instructions.ArgCommand) error {
	// Every default is expanded first, against the environment before the
	// instruction (ARG A=1 B=$A leaves B empty, as with ENV), and even when
	// a --build-arg overrides it, so a bad one fails the build all the same.
	defaults := make([]*string, len(ic.Args))
	for i, a := range ic.Args {
		if a.Value == nil {
			continue
		}
		v, err := c.processWord(*a.Value, s.env)
		if err != nil {
			return err
		}
		defaults[i] = &v
	}
	var commit []string
	for i, a := range ic.Args {
		c.declared[a.Key] = true
		bv, hasBuildArg := c.opts.BuildArgs[a.Key]
		value := defaults[i]
		text := a.Key
		if value != nil {
			// Docker 20.10's BuildKit writes the default in the history,
			// even when a --build-arg overrides it.
			text += "=" + *value
		} else if gv, ok := c.global.Get(a.Key); ok && !hasBuildArg {
			value = &gv
		}
		if hasBuildArg {
			value = &bv
		}
		if value != nil {
			s.env.set(a.Key, *value)
		}
		s.buildArgs = append(s.buildArgs, buildArg{key: a.Key, value: value})
		commit = append(commit, text)
	}
	return c.configStep(s, cmd, "ARG "+strings.Join(commit, " "))
}

// proxyEnv returns the proxy variables from the build args, upper and lower
// case as BuildKit's executor sets them, for keys env does not hold yet.
func (c *converter) proxyEnv(env *envList) []string {
	vals := map[string]string{}
	keys := slices.Sorted(maps.Keys(c.opts.BuildArgs))
	// Sorted, so that of HTTP_PROXY and http_proxy the latter wins, as in
	// BuildKit.
	for _, k := range keys {
		for _, p := range proxyArgs {
			if strings.EqualFold(k, p) {
				vals[p] = c.opts.BuildArgs[k]
			}
		}
	}
	var out []string
	for _, p := range proxyArgs {
		v, ok := vals[p]
		if !ok || v == "" {
			continue
		}
		for _, k := range []string{p, strings.ToLower(p)} {
			if _, set := env.Get(k); !set {
				out = append(out, k+"="+v)
			}
		}
	}
	return out
}

// isPredefinedArg reports build args that are consumed without an ARG.
func isPredefinedArg(key string) bool {
	for _, p := range proxyArgs {
		if strings.EqualFold(key, p) {
			return true
		}
	}
	switch key {
	case "SOURCE_DATE_EPOCH": // read by whoever writes the layers
		return true
	case "BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT",
		"TARGETPLATFORM", "TARGETOS", "TARGETOSVERSION", "TARGETARCH", "TARGETVARIANT", "TARGETSTAGE":
		return true
	}
	// BUILDKIT_* args configure the frontend, not the build.
	return strings.HasPrefix(key, "BUILDKIT_")
}

// warnUnusedArgs warns about build args no converted ARG declared, as
// Docker does.
func (c *converter) warnUnusedArgs() {
	var unused []string
	for k := range c.opts.BuildArgs {
		if !c.declared[k] && !isPredefinedArg(k) {
			unused = append(unused, k)
		}
	}
	if len(unused) == 0 {
		return
	}
	slices.Sort(unused)
	c.warnings = append(c.warnings, fmt.Sprintf("one or more build args were not consumed: %s", strings.Join(unused, ", ")))
}
