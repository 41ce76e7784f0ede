package images

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/container"
	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/store"
)

// RemoveOptions are the knobs of Remove.
type RemoveOptions struct {
	// Force removes an image several names refer to by its ID, or one a
	// container uses.
	Force bool
	// Untagged and Deleted, when set, are told each step once it is done
	// (a name untagged; the image, by its manifest digest, deleted), so
	// that what was done is said even when a later step fails.
	Untagged func(name string)
	Deleted  func(manifest digest.Digest)
}

// Remove follows docker rmi: removing a name untags it, and the image goes
// when no name is left; removing by ID takes every name with it, which
// needs Force when there are several. An image a container uses stays
// unless forced. Layer blobs stay for the cache.
func Remove(ctx context.Context, s *store.Store, ref string, o RemoveOptions) error {
	desc, err := s.Content().Resolve(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no such image: %s", ref)
	}
	if err != nil {
		// A damaged index.json is not "no such image": say what is.
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	imgs, err := s.Content().Images(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, im := range imgs {
		if im.Manifest.Digest == desc.Digest && im.Name != "" {
			names = append(names, im.Name)
		}
	}
	byName := false
	deletes := true // the image goes, not only a name
	if n, err := store.NormalizeName(ref); err == nil && slices.Contains(names, n) {
		byName = true
		deletes = len(names) == 1
		names = []string{n}
	}
	if !byName && len(names) > 1 && !o.Force {
		return fmt.Errorf("unable to delete %s (must be forced): image is referenced in multiple repositories", ref)
	}
	if deletes && !o.Force {
		// As Docker: an image a container uses stays unless forced. Forced,
		// the container keeps working: gc keeps what it holds.
		m, _, err := s.Content().LoadImage(ctx, desc)
		if err != nil {
			return err
		}
		id := m.Config.Digest
		users, err := container.Using(ctx, s.Meta(), desc.Digest, id)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			if byName {
				return fmt.Errorf("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", ref, container.ShortID(users[0].ID), shortID(id))
			}
			return fmt.Errorf("conflict: unable to delete %s (must be forced) - image is being used by container %s", shortID(id), container.ShortID(users[0].ID))
		}
	}
	for _, n := range names {
		if err := s.Content().Untag(ctx, n); err != nil {
			return err
		}
		if o.Untagged != nil {
			o.Untagged(n)
		}
		crashpoint.Hit("rmi.untagged")
	}
	imgs, err = s.Content().Images(ctx)
	if err != nil {
		return err
	}
	for _, im := range imgs {
		if im.Manifest.Digest == desc.Digest && im.Name != "" {
			return nil // still named
		}
	}
	if err := s.Content().Remove(ctx, desc.Digest); err != nil {
		return err
	}
	if o.Deleted != nil {
		o.Deleted(desc.Digest)
	}
	return nil
}

// shortID is an image ID as docker shows it: 12 hex digits.
func shortID(id digest.Digest) string {
	s := strings.TrimPrefix(id.String(), "sha256:")
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
