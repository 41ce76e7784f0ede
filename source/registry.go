package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/builder-dev/builder/internal/ctxio"
	"github.com/builder-dev/builder/internal/registry"
	"github.com/builder-dev/builder/store"
)

// Puller fetches images from registries into a store.
type Puller struct {
	Registry *registry.Options
	// Platform picks the manifest of an index; zero is linux and the
	// host's architecture.
	Platform ocispec.Platform
	// Log, if set, is told what is fetched, a line at a time.
	Log func(string)
}

// HostPlatform is the platform images are pulled for by default.
func HostPlatform() ocispec.Platform {
	return ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// ParsePlatform parses os/arch[/variant].
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]: %w", s, store.ErrInvalid)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func (p *Puller) platform() ocispec.Platform {
	if p.Platform.OS == "" {
		return HostPlatform()
	}
	return p.Platform
}

func (p *Puller) log(format string, args ...any) {
	if p.Log != nil {
		p.Log(fmt.Sprintf(format, args...))
	}
}

// Pull fetches the image ref names (Docker Hub's shorthand allowed) into
// st: the manifest stored as the registry serves it (so its digest is the
// registry's), its config and each layer blob the store lacks, downloaded
// concurrently and checked against their digests and the config's
// diff_ids as they stream. Nothing is stored unless all of it checks. A
// tag reference tags the image; an index's blob is kept too, so that a
// reference by the index's digest resolves in the store (see Lookup).
func (p *Puller) Pull(ctx context.Context, st *store.Store, ref string) (Image, error) {
	r, err := p.Registry.ParseReference(ref)
	if err != nil {
		return Image{}, fmt.Errorf("pull: %w: %w", store.ErrInvalid, err)
	}
	var lastErr error
	for _, c := range p.Registry.Candidates(r) {
		img, err := p.pullFrom(ctx, st, ref, c)
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil || errors.Is(err, store.ErrDigest) || errors.Is(err, store.ErrInvalid) {
			return Image{}, err
		}
		lastErr = err
	}
	return Image{}, lastErr
}

func (p *Puller) pullFrom(ctx context.Context, st *store.Store, ref string, r name.Reference) (Image, error) {
	reg := r.Context().RegistryStr()
	wrap := func(err error) error { return registry.Wrap("pull", r.String(), reg, err) }
	opts, err := p.Registry.Remote(ctx, r.Context().Registry)
	if err != nil {
		return Image{}, err
	}
	p.log("pulling %s", r)
	c := st.Content()
	mdesc, raw, err := p.top(ctx, c, r, opts)
	if err != nil {
		return Image{}, wrap(err)
	}
	var index *v1.Descriptor
	var indexRaw []byte
	if mdesc.MediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return Image{}, wrap(fmt.Errorf("index %s: %w", mdesc.Digest, err))
		}
		pick, err := pickPlatform(idx.Manifests, p.platform())
		if err != nil {
			return Image{}, wrap(fmt.Errorf("index %s: %w", mdesc.Digest, err))
		}
		index, indexRaw = &mdesc, raw
		if raw, err = p.manifest(ctx, c, r, pick, opts); err != nil {
			return Image{}, wrap(err)
		}
		mdesc = pick
	}
	if !mdesc.MediaType.IsImage() || mdesc.MediaType == types.DockerManifestSchema1 || mdesc.MediaType == types.DockerManifestSchema1Signed {
		return Image{}, wrap(fmt.Errorf("manifest %s of type %s: %w (only OCI and Docker schema2 images)", mdesc.Digest, mdesc.MediaType, store.ErrInvalid))
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return Image{}, wrap(fmt.Errorf("manifest %s: %w", mdesc.Digest, err))
	}
	if err := p.fetchBlobs(ctx, c, r, m, opts); err != nil {
		return Image{}, wrap(err)
	}
	md := ocispec.Descriptor{MediaType: string(mdesc.MediaType), Digest: digest.Digest(mdesc.Digest.String()), Size: mdesc.Size}
	got, err := c.Ingest(ctx, md.MediaType, bytes.NewReader(raw))
	if err != nil {
		return Image{}, err
	}
	if got.Digest != md.Digest {
		return Image{}, wrap(digestMismatch(md.Digest, got.Digest))
	}
	if index != nil {
		// Last, with the image: a failed pull leaves nothing behind.
		if _, err := c.Ingest(ctx, string(index.MediaType), bytes.NewReader(indexRaw)); err != nil {
			return Image{}, err
		}
	}
	if err := c.AddManifest(ctx, md); err != nil {
		return Image{}, err
	}
	if _, isTag := r.(name.Tag); isTag {
		if err := c.Tag(ctx, ref, md); err != nil {
			return Image{}, err
		}
	}
	if index != nil {
		p.log("%s: index %s, %s", r, index.Digest, formatPlatform(p.platform()))
	}
	p.log("%s: digest: %s", r, md.Digest)
	return Lookup(ctx, st, md.Digest.String())
}

// top returns the descriptor and bytes of what r names, a manifest or an
// index: a HEAD first, and the bytes from the store when it has that
// digest (a --pull of an unchanged image downloads nothing more), else a
// GET.
func (p *Puller) top(ctx context.Context, c *store.Content, r name.Reference, opts []remote.Option) (v1.Descriptor, []byte, error) {
	if head, err := remote.Head(r, opts...); err == nil {
		dg := digest.Digest(head.Digest.String())
		if c.HasBlob(dg) {
			if b, err := c.ReadBlob(ctx, dg); err == nil {
				return *head, b, nil
			}
		}
	}
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	return desc.Descriptor, desc.Manifest, nil
}

// manifest returns the bytes of the manifest d of r's repository: from the
// store when it has them (a --pull of an unchanged index fetches only the
// index), else from the registry.
func (p *Puller) manifest(ctx context.Context, c *store.Content, r name.Reference, d v1.Descriptor, opts []remote.Option) ([]byte, error) {
	dg := digest.Digest(d.Digest.String())
	if c.HasBlob(dg) {
		if b, err := c.ReadBlob(ctx, dg); err == nil {
			return b, nil
		}
	}
	desc, err := remote.Get(r.Context().Digest(d.Digest.String()), opts...)
	if err != nil {
		return nil, err
	}
	if desc.Digest != d.Digest {
		return nil, digestMismatch(dg, digest.Digest(desc.Digest.String()))
	}
	return desc.Manifest, nil
}

// fetchBlobs downloads the config and the layers of m the store lacks,
// concurrently, and commits them once every one has checked.
func (p *Puller) fetchBlobs(ctx context.Context, c *store.Content, r name.Reference, m ocispec.Manifest, opts []remote.Option) error {
	var cfgBytes []byte
	if c.HasBlob(m.Config.Digest) {
		b, err := c.ReadBlob(ctx, m.Config.Digest)
		if err != nil {
			return err
		}
		cfgBytes = b
	} else {
		rc, err := p.blob(r, m.Config.Digest, opts)
		if err != nil {
			return err
		}
		cfgBytes, err = io.ReadAll(io.LimitReader(ctxio.Reader(ctx, rc), 64<<20))
		rc.Close()
		if err != nil {
			return fmt.Errorf("config %s: %w", m.Config.Digest, err)
		}
		if got := digest.FromBytes(cfgBytes); got != m.Config.Digest {
			return digestMismatch(m.Config.Digest, got)
		}
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		return fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	// A platform asked for (--platform) must be the image's, also when
	// the reference is a single image rather than an index, as docker
	// refuses it; a config that names no platform passes.
	if want := p.Platform; want.OS != "" && cfg.Architecture != "" &&
		(cfg.OS != want.OS || cfg.Architecture != want.Architecture || (want.Variant != "" && cfg.Variant != want.Variant)) {
		return fmt.Errorf("image %s is for %s, not the platform asked for, %s: %w", m.Config.Digest,
			formatPlatform(ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}), formatPlatform(want), store.ErrNotFound)
	}
	if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("config %s: %d diff_ids for %d layers: %w", m.Config.Digest, len(cfg.RootFS.DiffIDs), len(m.Layers), store.ErrInvalid)
	}
	var mu sync.Mutex
	var staged []*store.StagedBlob
	defer func() {
		for _, b := range staged {
			b.Discard() // no-op once committed
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	jobs := p.Registry.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	g.SetLimit(jobs)
	seen := map[digest.Digest]bool{}
	for i, l := range m.Layers {
		if c.HasBlob(l.Digest) || seen[l.Digest] {
			continue
		}
		seen[l.Digest] = true
		diffID := cfg.RootFS.DiffIDs[i]
		g.Go(func() error {
			b, err := p.fetchLayer(gctx, c, r, l, diffID, opts)
			if err != nil {
				return err
			}
			mu.Lock()
			staged = append(staged, b)
			mu.Unlock()
			p.log("%s: downloaded %d bytes", l.Digest, l.Size)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if !c.HasBlob(m.Config.Digest) {
		if _, err := c.Ingest(ctx, m.Config.MediaType, bytes.NewReader(cfgBytes)); err != nil {
			return err
		}
	}
	for _, b := range staged {
		if err := b.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// blob opens the blob d of r's repository; go-containerregistry checks
// its digest at the end of the stream.
func (p *Puller) blob(r name.Reference, d digest.Digest, opts []remote.Option) (io.ReadCloser, error) {
	l, err := remote.Layer(r.Context().Digest(d.String()), opts...)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

// fetchLayer streams the layer l into a staged blob, checking its digest
// and, through a decompressor reading the same bytes, its diff_id, and
// counting its content sizes for the store.
func (p *Puller) fetchLayer(ctx context.Context, c *store.Content, r name.Reference, l ocispec.Descriptor, diffID digest.Digest, opts []remote.Option) (*store.StagedBlob, error) {
	rc, err := p.blob(r, l.Digest, opts)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	type result struct {
		info store.LayerInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		info, err := countLayer(pr, diffID)
		pr.CloseWithError(errors.New("layer check stopped")) // unblocks the tee
		done <- result{info, err}
	}()
	b, err := c.Stage(ctx, l.MediaType, io.TeeReader(rc, pw))
	pw.CloseWithError(err) // nil: EOF for the checker
	res := <-done
	if err != nil && strings.Contains(err.Error(), "error verifying") {
		// go-containerregistry's check at the end of the stream, which
		// has no type of its own.
		return nil, fmt.Errorf("layer %s: %w: %v", l.Digest, store.ErrDigest, err)
	}
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if b.Desc.Digest != l.Digest || b.Desc.Size != l.Size {
		b.Discard()
		return nil, digestMismatch(l.Digest, b.Desc.Digest)
	}
	if res.err != nil {
		b.Discard()
		return nil, fmt.Errorf("layer %s: %w", l.Digest, res.err)
	}
	b.Layer = &res.info
	b.DiffID = diffID // a gzip layer is then also the layer's remembered gzip form
	return b, nil
}

// countLayer reads a layer blob's stream, whatever its compression, and
// checks its uncompressed digest against diffID.
func countLayer(r io.Reader, diffID digest.Digest) (store.LayerInfo, error) {
	zr, err := store.Decompress(r)
	if err != nil {
		return store.LayerInfo{}, err
	}
	defer zr.Close()
	dg := digest.Canonical.Digester()
	info, err := store.CountTar(io.TeeReader(zr, dg.Hash()))
	if err != nil {
		return store.LayerInfo{}, err
	}
	// Whatever follows the tar's end is part of the diff ID.
	if _, err := io.Copy(dg.Hash(), zr); err != nil {
		return store.LayerInfo{}, err
	}
	if dg.Digest() != diffID {
		return store.LayerInfo{}, diffIDMismatch(dg.Digest(), diffID)
	}
	// Drain what the decompressor left (a gzip trailer), so the tee never
	// blocks.
	_, _ = io.Copy(io.Discard, r)
	return info, nil
}

// pickPlatform chooses the manifest of an index for want: the same OS and
// architecture, and the same variant if want has one (an exact variant
// match preferred).
func pickPlatform(list []v1.Descriptor, want ocispec.Platform) (v1.Descriptor, error) {
	var found *v1.Descriptor
	var have []string
	for i, d := range list {
		if d.Platform == nil {
			continue
		}
		have = append(have, d.Platform.String())
		if d.Platform.OS != want.OS || d.Platform.Architecture != want.Architecture {
			continue
		}
		if d.Platform.Variant == want.Variant {
			return list[i], nil
		}
		if want.Variant == "" && found == nil {
			found = &list[i]
		}
	}
	if found != nil {
		return *found, nil
	}
	return v1.Descriptor{}, fmt.Errorf("no manifest for platform %s (the index has %s): %w", formatPlatform(want), strings.Join(have, ", "), store.ErrNotFound)
}

func formatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// digestMismatch is a blob the registry sent that is not what its digest
// says.
func digestMismatch(want, got digest.Digest) error {
	return fmt.Errorf("blob %s: the registry sent content hashing to %s: %w", want, got, store.ErrDigest)
}
