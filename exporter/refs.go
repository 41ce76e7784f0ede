package exporter

import (
	"context"
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/store"
)

// target is one image to save: its tag, or "" when it was named by ID or
// digest (then the archive carries it untagged, as docker save does).
type target struct {
	name     string
	manifest ocispec.Descriptor
}

// shownAs names t in errors: its tag, or its manifest digest.
func (t target) shownAs() string {
	if t.name != "" {
		return t.name
	}
	return t.manifest.Digest.String()
}

// resolveRefs resolves each ref in the store.
func resolveRefs(ctx context.Context, s *store.Store, refs []string) ([]target, error) {
	if len(refs) == 0 {
		return nil, fmt.Errorf("no image to save: %w", store.ErrInvalid)
	}
	imgs, err := s.Content().Images(ctx)
	if err != nil {
		return nil, err
	}
	tags := map[string]ocispec.Descriptor{}
	for _, im := range imgs {
		if im.Name != "" {
			tags[im.Name] = im.Manifest
		}
	}
	var out []target
	seen := map[string]bool{}
	for _, ref := range refs {
		desc, err := s.Content().Resolve(ctx, ref)
		if err != nil {
			return nil, err
		}
		t := target{manifest: desc}
		// Resolve prefers a tag over an ID prefix; so does this.
		if n, err := store.NormalizeName(ref); err == nil && !strings.Contains(n, "@") {
			if d, ok := tags[n]; ok && d.Digest == desc.Digest {
				t.name = n
			}
		}
		key := t.name + "@" + desc.Digest.String()
		if !seen[key] {
			seen[key] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// qualifiedName is n with Docker Hub's implicit parts spelled out
// ("app:1" -> "docker.io/library/app:1"), as containerd and Docker expect in
// io.containerd.image.name.
func qualifiedName(n string) string {
	first, _, hasSlash := strings.Cut(n, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return n
	}
	if !hasSlash {
		return "docker.io/library/" + n
	}
	return "docker.io/" + n
}
