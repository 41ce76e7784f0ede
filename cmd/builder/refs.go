package main

import (
	"fmt"
	"strings"

	"github.com/builder-dev/builder/store"
)

// checkTagTarget refuses, as a usage error and before anything is looked
// up, a name an image cannot be given: one the registry library's parser
// refuses, or a digest reference (docker: "refusing to create a tag with a
// digest reference").
func checkTagTarget(ref string) error {
	if _, err := store.NormalizeName(ref); err != nil {
		return usageError{fmt.Errorf("invalid target reference: %w", err)}
	}
	if strings.Contains(ref, "@") {
		return usageError{fmt.Errorf("invalid target reference %q: refusing to create a tag with a digest reference", ref)}
	}
	return nil
}
