package dockerfile

import (
	"maps"
	"slices"
	"strings"
)

// envList is the environment a stage's commands run with and expand words
// against: the image's Env, then ENV and ARG values in the order they were
// last set. Setting a key again moves it to the end, as BuildKit's llb
// EnvList does, so a RUN sees the same order as under BuildKit. It
// implements shell.EnvGetter.
//
// Setting is O(1): a key set again leaves a stale entry in keys (one whose
// pos is elsewhere), dropped when they pile up, so that a Dockerfile
// setting many keys over and over stays linear.
type envList struct {
	keys  []string
	pos   map[string]int // key -> its live index in keys
	vals  map[string]string
	stale int // entries of keys that were set again later
	size  int // bytes of keys and values, to bound it
}

func newEnvList() *envList {
	return &envList{pos: map[string]int{}, vals: map[string]string{}}
}

func (e *envList) Get(key string) (string, bool) {
	v, ok := e.vals[key]
	return v, ok
}

func (e *envList) Keys() []string {
	e.compact()
	return e.keys
}

func (e *envList) set(key, value string) {
	if old, ok := e.vals[key]; ok {
		e.stale++
		e.size -= len(key) + len(old)
	}
	e.pos[key] = len(e.keys)
	e.keys = append(e.keys, key)
	e.vals[key] = value
	e.size += len(key) + len(value)
	if e.stale > len(e.keys)/2 {
		e.compact()
	}
}

// compact drops the stale entries of keys.
func (e *envList) compact() {
	if e.stale == 0 {
		return
	}
	live := make([]string, 0, len(e.keys)-e.stale)
	for i, k := range e.keys {
		if e.pos[k] == i {
			e.pos[k] = len(live)
			live = append(live, k)
		}
	}
	e.keys, e.stale = live, 0
}

func (e *envList) clone() *envList {
	e.compact()
	return &envList{keys: slices.Clone(e.keys), pos: maps.Clone(e.pos), vals: maps.Clone(e.vals), size: e.size}
}

// slice returns the list as KEY=value strings, oldest first.
func (e *envList) slice() []string {
	e.compact()
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

// setImageEnv sets key in the stage's image Env. Unlike envList, an
// existing key keeps its position: this is the order BuildKit writes into
// the image. The index makes it O(1), whatever the number of keys.
func (s *stage) setImageEnv(key, value string) {
	if s.envIndex == nil {
		s.envIndex = make(map[string]int, len(s.img.Config.Env))
		for i, kv := range s.img.Config.Env {
			k, _, _ := strings.Cut(kv, "=")
			if _, dup := s.envIndex[k]; !dup {
				s.envIndex[k] = i
			}
		}
	}
	if i, ok := s.envIndex[key]; ok {
		s.img.Config.Env[i] = key + "=" + value
		return
	}
	s.envIndex[key] = len(s.img.Config.Env)
	s.img.Config.Env = append(s.img.Config.Env, key+"="+value)
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
