package store

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// NormalizeName returns the familiar, complete form of an image reference:
// a missing tag becomes ":latest" ("app" -> "app:latest"); references with a
// registry, a port, a path or a digest are kept ("reg:5000/x/y:t",
// "name@sha256:..."); Docker Hub's implicit parts are dropped
// ("docker.io/library/app:1" -> "app:1"), so the two spellings name the same
// tag. A reference that is not valid is ErrInvalid.
func NormalizeName(ref string) (string, error) {
	if _, err := name.ParseReference(ref); err != nil {
		return "", fmt.Errorf("image name %q: %w: %v", ref, ErrInvalid, err)
	}
	repo, rest := ref, ""
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		repo, rest = ref[:i], ref[i:]
	}
	// A tag is a colon after the last slash; a colon before it is a port.
	hasTag := strings.LastIndexByte(repo, ':') > strings.LastIndexByte(repo, '/')
	if !validPath(repo, hasTag) {
		return "", fmt.Errorf("image name %q: %w: path components must be lowercase letters and digits, joined by '.', '_', '__' or dashes", ref, ErrInvalid)
	}
	if !hasTag && rest == "" {
		repo += ":" + name.DefaultTag
	}
	return familiar(repo) + rest, nil
}

// familiar drops Docker Hub's registry and "library/" namespace, which
// Docker leaves implicit.
func familiar(ref string) string {
	for _, reg := range []string{"docker.io/", "index.docker.io/"} {
		if rest, ok := strings.CutPrefix(ref, reg); ok {
			// Keep the registry if what follows would read as one.
			if first, _, ok := strings.Cut(rest, "/"); ok && isRegistry(first) {
				return ref
			}
			ref = rest
			break
		}
	}
	if rest, ok := strings.CutPrefix(ref, "library/"); ok && !strings.Contains(rest, "/") {
		return rest
	}
	return ref
}

// isRegistry applies Docker's rule to a name's first component: a registry
// has a dot or a port, or is localhost.
func isRegistry(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

// pathComponent is the distribution reference grammar for one path
// component; go-containerregistry only checks the characters, and skopeo
// rejects a ref.name that does not follow the grammar.
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// validPath checks the path components of repo (the reference without its
// digest), skipping a registry and the tag.
func validPath(repo string, hasTag bool) bool {
	if hasTag {
		repo = repo[:strings.LastIndexByte(repo, ':')]
	}
	parts := strings.Split(repo, "/")
	if len(parts) > 1 && isRegistry(parts[0]) {
		parts = parts[1:]
	}
	for _, p := range parts {
		if !pathComponent.MatchString(p) {
			return false
		}
	}
	return true
}

// validTagName reports whether a normalized name can be a tag: it must not
// carry a digest.
func validTagName(n string) bool { return !strings.Contains(n, "@") }
