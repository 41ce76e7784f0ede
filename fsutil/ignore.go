package fsutil

import (
	"fmt"
	"io"
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
	// exceptions are the "!" patterns as written (cleaned), each with a
	// trailing "/": see Descend.
	exceptions []string
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
			m.exceptions = append(m.exceptions, filepath.ToSlash(p.String())+"/")
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

// Descend reports whether the excluded directory rel is walked anyway, for
// the exceptions below it, and so is sent with the context even if none of
// them matches anything. It is BuildKit's rule for the context it sends
// (Docker 20.10): an exception pattern, as written, must start with rel
// and a slash. Wildcards do not count, so "!*/keep" brings back no a/keep
// under "*", and "!src/**/*.go" reaches src/a.go but not src/sub/b.go.
func (m *IgnoreMatcher) Descend(rel string) bool {
	dir := rel + "/"
	for _, p := range m.exceptions {
		if strings.HasPrefix(p, dir) {
			return true
		}
	}
	return false
}
