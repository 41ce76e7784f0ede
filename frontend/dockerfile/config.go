package dockerfile

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// The instructions here only change the image config; their steps have no
// op and never make a layer. History texts are those of Docker 20.10's
// BuildKit, which produced the conformance goldens.

func (c *converter) dispatchEnv(s *stage, cmd *command, ic *instructions.EnvCommand) error {
	var b strings.Builder
	b.WriteString("ENV")
	for _, kv := range ic.Env {
		b.WriteString(" " + kv.String())
		s.env.set(kv.Key, kv.Value)
		s.setImageEnv(kv.Key, kv.Value)
	}
	return c.configStep(s, cmd, b.String())
}

func (c *converter) dispatchLabel(s *stage, cmd *command, ic *instructions.LabelCommand) error {
	var b strings.Builder
	b.WriteString("LABEL")
	if s.img.Config.Labels == nil {
		s.img.Config.Labels = make(map[string]string, len(ic.Labels))
	}
	for _, kv := range ic.Labels {
		b.WriteString(" " + kv.String())
		s.img.Config.Labels[kv.Key] = kv.Value
	}
	return c.configStep(s, cmd, b.String())
}

func (c *converter) dispatchCmd(s *stage, cmd *command, ic *instructions.CmdCommand) error {
	args := slices.Clone(ic.CmdLine)
	if ic.PrependShell {
		args = withShell(s.img, args)
	}
	s.img.Config.Cmd = args
	//nolint:staticcheck // deprecated in the OCI spec, but Docker reads it and BuildKit writes it
	s.img.Config.ArgsEscaped = true
	s.cmdSet = true
	return c.configStep(s, cmd, fmt.Sprintf("CMD %q", args))
}

// dispatchEntrypoint sets the entrypoint and, as Docker does, drops a CMD
// inherited from the base: it was meant for the old entrypoint. A CMD set
// earlier in this stage stays.
func (c *converter) dispatchEntrypoint(s *stage, cmd *command, ic *instructions.EntrypointCommand) error {
	args := slices.Clone(ic.CmdLine)
	if ic.PrependShell {
		args = withShell(s.img, args)
	}
	s.img.Config.Entrypoint = args
	if !s.cmdSet {
		s.img.Config.Cmd = nil
	}
	return c.configStep(s, cmd, fmt.Sprintf("ENTRYPOINT %q", args))
}

func (c *converter) dispatchVolume(s *stage, cmd *command, ic *instructions.VolumeCommand) error {
	if s.img.Config.Volumes == nil {
		s.img.Config.Volumes = map[string]struct{}{}
	}
	for _, v := range ic.Volumes {
		if v == "" {
			return errors.New("VOLUME specified can not be an empty string")
		}
		s.img.Config.Volumes[v] = struct{}{}
	}
	return c.configStep(s, cmd, fmt.Sprintf("VOLUME %v", ic.Volumes))
}

func (c *converter) dispatchStopSignal(s *stage, cmd *command, ic *instructions.StopSignalCommand) error {
	if !validSignal(ic.Signal) {
		return fmt.Errorf("invalid signal: %s", ic.Signal)
	}
	s.img.Config.StopSignal = ic.Signal
	return c.configStep(s, cmd, "STOPSIGNAL "+ic.Signal)
}

// validSignal accepts what Docker 20.10's signal parser (pkg/signal) did on
// Linux: any number but 0 (negative ones too), or a name from its table,
// with or without SIG, in any case. The table holds the aliases CLD, IOT
// and POLL, and RTMIN+1..15 and RTMAX-14..1.
func validSignal(s string) bool {
	if n, err := strconv.Atoi(s); err == nil {
		return n != 0
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if linuxSignals[name] {
		return true
	}
	for _, rt := range []struct {
		prefix, sign string
		max          int
	}{{"RTMIN", "+", 15}, {"RTMAX", "-", 14}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		if rest == "" {
			return true
		}
		digits, ok := strings.CutPrefix(rest, rt.sign)
		if !ok || digits == "" || digits[0] < '1' || digits[0] > '9' {
			return false
		}
		n, err := strconv.Atoi(digits)
		return err == nil && n <= rt.max
	}
	return false
}

// linuxSignals are the names in Docker's Linux signal table, without SIG.
var linuxSignals = map[string]bool{
	"ABRT": true, "ALRM": true, "BUS": true, "CHLD": true, "CLD": true, "CONT": true,
	"FPE": true, "HUP": true, "ILL": true, "INT": true, "IO": true, "IOT": true,
	"KILL": true, "PIPE": true, "POLL": true, "PROF": true, "PWR": true, "QUIT": true,
	"SEGV": true, "STKFLT": true, "STOP": true, "SYS": true, "TERM": true, "TRAP": true,
	"TSTP": true, "TTIN": true, "TTOU": true, "URG": true, "USR1": true, "USR2": true,
	"VTALRM": true, "WINCH": true, "XCPU": true, "XFSZ": true,
}

func (c *converter) dispatchHealthcheck(s *stage, cmd *command, ic *instructions.HealthCheckCommand) error {
	hc := *ic.Health
	hc.Test = slices.Clone(hc.Test)
	s.img.Config.Healthcheck = &hc
	// Docker 20.10's BuildKit wrote %q of a pointer to its health config
	// struct, which had no StartInterval: &{["CMD" "x"] "0s" "0s" "0s" '\x02'}.
	text := fmt.Sprintf("HEALTHCHECK &{%q %q %q %q %q}", hc.Test,
		hc.Interval.String(), hc.Timeout.String(), hc.StartPeriod.String(), rune(hc.Retries))
	return c.configStep(s, cmd, text)
}

// checkHealthchecks applies the limits Docker 20.10's parser had on
// HEALTHCHECK flags, which the parser we import relaxed: a duration below
// 1ms (0s too, which later versions read as "the default") and --retries
// below 1 fail the build. Like any parse error they do so in every stage,
// needed or not.
func (c *converter) checkHealthchecks(root *parser.Node) error {
	for _, n := range root.Children {
		if !strings.EqualFold(n.Value, "healthcheck") {
			continue
		}
		for _, f := range n.Flags {
			name, val, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
			switch name {
			case "interval", "timeout", "start-period":
				if d, err := time.ParseDuration(val); err == nil && d < time.Millisecond {
					return c.errAt(n.Location(), fmt.Errorf("interval %q cannot be less than 1ms", name))
				}
			case "retries":
				if r, err := strconv.ParseInt(val, 10, 32); err == nil && r < 1 {
					return c.errAt(n.Location(), fmt.Errorf("--retries must be at least 1 (not %d)", r))
				}
			}
		}
	}
	return nil
}

func (c *converter) dispatchMaintainer(s *stage, cmd *command, ic *instructions.MaintainerCommand) error {
	s.img.Author = ic.Maintainer
	return c.configStep(s, cmd, "MAINTAINER "+ic.Maintainer)
}

// dispatchOnbuild stores a trigger for the stages built on this image. It
// writes no history entry in BuildKit, so it makes no step either: the
// solver appends history per step.
func (c *converter) dispatchOnbuild(s *stage, ic *instructions.OnbuildCommand) error {
	s.img.Config.OnBuild = append(s.img.Config.OnBuild, ic.Expression)
	return nil
}
