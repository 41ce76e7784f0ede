package store

import (
	"fmt"
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

// validTagName reports whether a normalized name can be a tag: it must not
// carry a digest.
func validTagName(n string) bool { return !strings.Contains(n, "@") }
