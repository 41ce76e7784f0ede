package dockerfile

import (
	"slices"
	"strings"
)

// envList is the environment a stage's commands run with and expand words
// against: the image's Env, then ENV and ARG values in the order they were
// last set. Setting a key again moves it to the end, as BuildKit's llb
// EnvList does, so a RUN sees the same order as under BuildKit. It
// implements shell.EnvGetter.
type envList struct {
	keys []string
	vals map[string]string
	size int // bytes of keys and values, to bound it
}

func newEnvList() *envList { return &envList{vals: map[string]string{}} }

func (e *envList) Get(key string) (string, bool) {
	v, ok := e.vals[key]
	return v, ok
}

func (e *envList) Keys() []string { return e.keys }

func (e *envList) set(key, value string) {
	if old, ok := e.vals[key]; ok {
		e.keys = slices.DeleteFunc(e.keys, func(k string) bool { return k == key })
		e.size -= len(key) + len(old)
	}
	e.size += len(key) + len(value)
	e.keys = append(e.keys, key)
	e.vals[key] = value
}

func (e *envList) clone() *envList {
	c := &envList{keys: slices.Clone(e.keys), vals: make(map[string]string, len(e.vals)), size: e.size}
	for k, v := range e.vals {
		c.vals[k] = v
	}
	return c
}

// slice returns the list as KEY=value strings, oldest first.
func (e *envList) slice() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

// emptyEnv is an environment without variables, to detect words that would
// expand (COPY --from must not).
type emptyEnv struct{}

func (emptyEnv) Get(string) (string, bool) { return "", false }
func (emptyEnv) Keys() []string            { return nil }

// addEnv sets key in an image config's Env. Unlike envList, an existing key
// keeps its position: this is the order BuildKit writes into the image.
func addEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// envValue looks key up in an image config's Env.
func envValue(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}
