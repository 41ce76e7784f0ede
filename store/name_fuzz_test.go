package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// FuzzReference checks NormalizeName, the reference parsing and
// normalisation every command uses for image names and -t: it never
// panics, fails only with ErrInvalid, and what it accepts is a reference
// go-containerregistry parses, normalised once and for all (normalising
// it again changes nothing), with a tag or a digest.
//
// The seed corpus is testdata/fuzz/FuzzReference.
func FuzzReference(f *testing.F) {
	f.Fuzz(func(t *testing.T, ref string) {
		n, err := NormalizeName(ref)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("NormalizeName(%q): %v, not ErrInvalid", ref, err)
			}
			return
		}
		if _, err := name.ParseReference(n); err != nil {
			t.Fatalf("NormalizeName(%q) = %q, which does not parse: %v", ref, n, err)
		}
		again, err := NormalizeName(n)
		if err != nil || again != n {
			t.Fatalf("NormalizeName(%q) = %q, but NormalizeName(%q) = %q, %v", ref, n, n, again, err)
		}
		repo, _, hasDigest := strings.Cut(n, "@")
		if !hasDigest && strings.LastIndexByte(repo, ':') <= strings.LastIndexByte(repo, '/') {
			t.Fatalf("NormalizeName(%q) = %q has neither tag nor digest", ref, n)
		}
	})
}
