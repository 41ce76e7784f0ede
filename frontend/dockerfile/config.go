package dockerfile

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"
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
		s.img.Config.Env = addEnv(s.img.Config.Env, kv.Key, kv.Value)
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

// validSignal accepts what Docker's signal parser does on Linux: a
// positive number, or a name with or without SIG (RTMIN+n and RTMAX-n
// included), in any case.
func validSignal(s string) bool {
	if n, err := strconv.Atoi(s); err == nil {
		return n > 0
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if unix.SignalNum("SIG"+name) != 0 {
		return true
	}
	for _, rt := range []struct {
		prefix string
		max    int
	}{{"RTMIN", 15}, {"RTMAX", 14}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		if rest == "" {
			return true
		}
		sign := "+"
		if rt.prefix == "RTMAX" {
			sign = "-"
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(rest, sign)); err == nil && strings.HasPrefix(rest, sign) && n >= 1 && n <= rt.max {
			return true
		}
	}
	return false
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
