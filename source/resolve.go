package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/store"
)

// Resolver finds the images a build names: in the store, pulled when
// missing (or always, with Pull), each reference once per build.
type Resolver struct {
	Store *store.Store
	// Puller, if set, fetches what the store lacks; nil: the store only.
	Puller *Puller
	// Pull fetches every reference from its registry even when the
	// store has it (only the manifest is downloaded if nothing changed).
	Pull bool

	mu   sync.Mutex
	done map[string]*resolved
}

type resolved struct {
	once sync.Once
	img  Image
	err  error
}

// Lookup returns the image ref names, pulling it as the Resolver says.
// Concurrent and repeated calls for one reference share one lookup.
func (r *Resolver) Lookup(ctx context.Context, ref string) (Image, error) {
	r.mu.Lock()
	if r.done == nil {
		r.done = map[string]*resolved{}
	}
	e := r.done[ref]
	if e == nil {
		e = &resolved{}
		r.done[ref] = e
	}
	r.mu.Unlock()
	e.once.Do(func() { e.img, e.err = r.lookup(ctx, ref) })
	return e.img, e.err
}

func (r *Resolver) lookup(ctx context.Context, ref string) (Image, error) {
	platform := HostPlatform()
	if r.Puller != nil {
		platform = r.Puller.platform()
	}
	// A digest names the same image for ever: even Pull need not ask the
	// registry again once the store has it.
	if !r.Pull || r.Puller == nil || strings.Contains(ref, "@") {
		img, err := lookupFor(ctx, r.Store, ref, platform)
		if err == nil || r.Puller == nil || !errors.Is(err, store.ErrNotFound) || !pullable(ref) {
			return img, err
		}
	}
	img, err := r.Puller.Pull(ctx, r.Store, ref)
	if err != nil && !r.Pull {
		return Image{}, fmt.Errorf("image %q is not in the store: %w", ref, err)
	}
	if err != nil {
		return Image{}, fmt.Errorf("image %q (--pull): %w", ref, err)
	}
	return img, nil
}

// pullable tells a reference a registry could have from an image ID or a
// bare digest, which only the store knows.
func pullable(ref string) bool {
	if _, err := digest.Parse(ref); err == nil {
		return false
	}
	if len(ref) >= 4 && strings.Trim(ref, "0123456789abcdef") == "" {
		return false
	}
	return true
}

// lookupFor finds ref in the store, and for "name@sha256:<index digest>"
// the manifest for platform of that index if the store holds it (a pull
// keeps the index's blob for this).
func lookupFor(ctx context.Context, st *store.Store, ref string, platform ocispec.Platform) (Image, error) {
	img, err := lookupStore(ctx, st, ref)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return img, err
	}
	_, dg, ok := strings.Cut(ref, "@")
	d, perr := digest.Parse(dg)
	if !ok || perr != nil || !st.Content().HasBlob(d) {
		return img, err
	}
	var idx ocispec.Index
	if st.Content().ReadJSON(ctx, d, &idx) != nil || len(idx.Manifests) == 0 || idx.Manifests[0].Digest == "" {
		return img, err
	}
	for _, m := range idx.Manifests {
		if m.Platform == nil || m.Platform.OS != platform.OS || m.Platform.Architecture != platform.Architecture {
			continue
		}
		if platform.Variant != "" && m.Platform.Variant != platform.Variant {
			continue
		}
		if st.Content().HasBlob(m.Digest) {
			return lookupStore(ctx, st, m.Digest.String())
		}
	}
	return img, err
}
