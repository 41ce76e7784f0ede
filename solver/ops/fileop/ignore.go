package fileop

import (
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// ReadIgnoreFile parses a .dockerignore: comments, blank lines, surrounding
// spaces, a leading "/" and non-clean paths are handled as Docker does.
func ReadIgnoreFile(r io.Reader) ([]string, error) {
	patterns, err := ignorefile.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	return patterns, nil
}

// IgnoreMatcher answers, for paths of a build context, what a .dockerignore
// leaves in it.
type IgnoreMatcher struct {
	pm *patternmatcher.PatternMatcher
	// exceptions are the "!" patterns split into components, the only
	// ones that can bring back something below an excluded directory.
	exceptions [][]string
}

// NewIgnoreMatcher compiles patterns as ReadIgnoreFile returns them.
func NewIgnoreMatcher(patterns []string) (*IgnoreMatcher, error) {
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("compile .dockerignore patterns: %w", err)
	}
	m := &IgnoreMatcher{pm: pm}
	for _, p := range pm.Patterns() {
		if p.Exclusion() {
			m.exceptions = append(m.exceptions, strings.Split(filepath.ToSlash(p.String()), "/"))
		}
	}
	return m, nil
}

// NewIgnoreFilter returns the Filter for CopyRequest that patterns (a
// parsed .dockerignore) describe. Exceptions ("!keep.log") re-include paths
// below excluded directories, as in BuildKit. For large contexts set
// CopyRequest.Descend from NewIgnoreMatcher too, so that excluded trees no
// exception reaches are not walked.
func NewIgnoreFilter(patterns []string) (func(rel string, isDir bool) bool, error) {
	m, err := NewIgnoreMatcher(patterns)
	if err != nil {
		return nil, err
	}
	return m.Include, nil
}

// Include reports whether the context path rel (slash separated, relative
// to the context root) stays in the context. A path is out when the last
// pattern matching it or one of its parents is not an exception.
func (m *IgnoreMatcher) Include(rel string, isDir bool) bool {
	excluded, err := m.pm.MatchesOrParentMatches(rel)
	if err != nil {
		// Patterns were checked when compiled; a match error can only be a
		// bad pattern, and keeping the path is the safe reading of it.
		return true
	}
	return !excluded
}

// Descend reports whether the excluded directory rel may still hold paths
// that an exception brings back, so it has to be walked. It answers "yes"
// whenever an exception pattern could reach below rel, which is never wrong,
// only slower.
func (m *IgnoreMatcher) Descend(rel string) bool {
	dir := strings.Split(rel, "/")
	for _, pat := range m.exceptions {
		if couldMatchBelow(pat, dir) {
			return true
		}
	}
	return false
}

// couldMatchBelow reports whether pattern, split in components, can match a
// path strictly below dir. An exception matching dir itself or one of its
// parents cannot: it would have matched dir too, and dir is excluded.
func couldMatchBelow(pattern, dir []string) bool {
	for i, p := range pattern {
		if strings.Contains(p, "**") {
			return true // "**" spans any number of components
		}
		if i == len(dir) {
			return true // the pattern goes deeper than dir and agrees so far
		}
		ok, err := path.Match(p, dir[i])
		if err != nil {
			return true
		}
		if !ok {
			return false
		}
	}
	return false
}
