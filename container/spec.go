package container

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"unicode"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Overrides are the options of `run` that change what the image's config
// says to run.
type Overrides struct {
	// Entrypoint, when set, replaces the image's ENTRYPOINT ("" clears it)
	// and drops the image's CMD, as `docker run --entrypoint` does.
	Entrypoint *string
	// Args, when any, replace CMD.
	Args []string
	// Env are KEY=VALUE or KEY entries, --env-file ones first and then
	// -e ones, applied over the image's ENV in order (see MergeEnv).
	Env []string
	// WorkingDir replaces WORKDIR; it must be absolute.
	WorkingDir string
	// User replaces USER: user[:group], names or numbers.
	User string
}

// MakeConfig applies o to the image's config img as `docker run` does.
// lookup reads the caller's environment, for a bare KEY in o.Env.
func MakeConfig(img ocispec.ImageConfig, o Overrides, lookup func(string) (string, bool)) (Config, error) {
	c := Config{
		Entrypoint: img.Entrypoint,
		Cmd:        img.Cmd,
		WorkingDir: img.WorkingDir,
		User:       img.User,
		StopSignal: img.StopSignal,
		Volumes:    imageVolumes(img.Volumes),
	}
	if o.Entrypoint != nil {
		c.Entrypoint = nil
		if *o.Entrypoint != "" {
			c.Entrypoint = []string{*o.Entrypoint}
		}
		c.Cmd = nil
	}
	if len(o.Args) > 0 {
		c.Cmd = o.Args
	}
	c.Entrypoint = append([]string(nil), c.Entrypoint...)
	c.Cmd = append([]string(nil), c.Cmd...)
	if len(c.Argv()) == 0 {
		return Config{}, errors.New("no command specified")
	}
	c.Env = MergeEnv(img.Env, o.Env, lookup)
	if o.WorkingDir != "" {
		if !path.IsAbs(o.WorkingDir) {
			return Config{}, fmt.Errorf("the working directory %q is invalid: it needs to be an absolute path", o.WorkingDir)
		}
		c.WorkingDir = path.Clean(o.WorkingDir)
	}
	if o.User != "" {
		c.User = o.User
	}
	return c, nil
}

// MergeEnv applies add to base as Docker does: KEY=VALUE replaces KEY in
// place or appends it; a bare KEY takes the value lookup gives, and when
// lookup has none it removes KEY.
func MergeEnv(base, add []string, lookup func(string) (string, bool)) []string {
	out := append([]string(nil), base...)
	for _, kv := range add {
		k, _, hasValue := strings.Cut(kv, "=")
		if !hasValue && lookup != nil {
			if v, ok := lookup(k); ok {
				kv, hasValue = k+"="+v, true
			}
		}
		i := -1
		for j, e := range out {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				i = j
				break
			}
		}
		switch {
		case !hasValue && i >= 0:
			out = append(out[:i], out[i+1:]...)
		case !hasValue:
		case i >= 0:
			out[i] = kv
		default:
			out = append(out, kv)
		}
	}
	return out
}

// ParseEnvFile reads an --env-file: one KEY=VALUE or KEY per line, blank
// lines and lines starting with # ignored, values taken verbatim (no
// quotes, no expansion), as Docker reads it.
func ParseEnvFile(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeftFunc(sc.Text(), unicode.IsSpace)
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, _ := strings.Cut(line, "=")
		if k == "" {
			return nil, fmt.Errorf("env file line %d: no variable name in %q", n, line)
		}
		if strings.ContainsFunc(k, unicode.IsSpace) {
			return nil, fmt.Errorf("env file line %d: variable %q contains whitespaces", n, k)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read env file: %w", err)
	}
	return out, nil
}

// ParseVolume reads a -v SRC:DST[:ro|rw] bind mount. SRC must be an
// absolute host path: named volumes do not exist here.
func ParseVolume(spec string) (Mount, error) {
	parts := strings.Split(spec, ":")
	m := Mount{Type: "bind"}
	switch len(parts) {
	case 2:
	case 3:
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw", "":
		default:
			return Mount{}, fmt.Errorf("invalid volume %q: unknown mode %q (ro or rw)", spec, parts[2])
		}
	default:
		return Mount{}, fmt.Errorf("invalid volume %q: want SRC:DST[:ro]", spec)
	}
	m.Source, m.Dest = parts[0], parts[1]
	if !path.IsAbs(m.Source) {
		return Mount{}, fmt.Errorf("invalid volume %q: the source must be an absolute host path (named volumes are not supported)", spec)
	}
	if !path.IsAbs(m.Dest) {
		return Mount{}, fmt.Errorf("invalid volume %q: the destination must be an absolute path", spec)
	}
	m.Source, m.Dest = path.Clean(m.Source), path.Clean(m.Dest)
	if m.Dest == "/" {
		return Mount{}, fmt.Errorf("invalid volume %q: cannot mount over /", spec)
	}
	return m, nil
}

// ParseTmpfs reads a --tmpfs DST[:OPTIONS]; the options are not supported
// beyond ro.
func ParseTmpfs(spec string) (Mount, error) {
	dst, opts, _ := strings.Cut(spec, ":")
	if !path.IsAbs(dst) || path.Clean(dst) == "/" {
		return Mount{}, fmt.Errorf("invalid tmpfs %q: the destination must be an absolute path other than /", spec)
	}
	m := Mount{Type: "tmpfs", Dest: path.Clean(dst)}
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "", "rw":
		case "ro":
			m.ReadOnly = true
		default:
			return Mount{}, fmt.Errorf("invalid tmpfs %q: option %q is not supported", spec, o)
		}
	}
	return m, nil
}

// ParseSecurityOpts reads --security-opt values as Docker spells them:
// "no-new-privileges" (also with ":true", "=true", ":false", "=false") is
// the one supported; any other option (seccomp=, apparmor=, label=) is an
// error, rather than a setting silently not applied.
func ParseSecurityOpts(opts []string) (noNewPrivileges bool, err error) {
	for _, o := range opts {
		k, v, hasValue := strings.Cut(o, "=")
		if !hasValue {
			k, v, hasValue = strings.Cut(o, ":")
		}
		if k != "no-new-privileges" {
			return false, fmt.Errorf("invalid --security-opt %q: only no-new-privileges is supported", o)
		}
		b := true
		if hasValue {
			if b, err = strconv.ParseBool(v); err != nil {
				return false, fmt.Errorf("invalid --security-opt %q: want no-new-privileges[=true|false]", o)
			}
		}
		noNewPrivileges = b
	}
	return noNewPrivileges, nil
}

// RuntimeEnv is the container process's environment, as Docker makes it:
// HOSTNAME (and TERM=xterm with a terminal) first, then the container's
// ENV over them. The runner adds PATH and HOME when missing.
func RuntimeEnv(c *Container) []string {
	env := []string{"HOSTNAME=" + c.Host.Hostname}
	if c.Host.Tty {
		env = append(env, "TERM=xterm")
	}
	return MergeEnv(env, c.Config.Env, nil)
}

// stubPaths are where the runner may create mount points in the upper dir
// of a running container (relative to the root): its /etc files, /proc,
// /sys, /dev, and the user's mount destinations with their parents.
func stubPaths(c *Container) []string {
	out := []string{"etc/resolv.conf", "etc/hosts", "etc/hostname", "proc", "sys", "dev"}
	for _, m := range c.Host.Mounts {
		for d := path.Clean(m.Dest); d != "/" && d != "."; d = path.Dir(d) {
			out = append(out, strings.TrimPrefix(d, "/"))
		}
	}
	return out
}
