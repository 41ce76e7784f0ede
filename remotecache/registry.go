package remotecache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/registry"
)

// Registry is a cache kept under a tag of a registry repository, reached
// with the transport options every registry command uses (auth from the
// docker keychain, plain HTTP for loopback and --insecure-registry hosts,
// --registry-ca, retries).
type Registry struct {
	ref  name.Tag
	opts *registry.Options
	// mountFrom is a repository of the same registry that likely holds
	// the layers (the image just pushed): a blob missing here is mounted
	// from it rather than uploaded, when it is there.
	mountFrom *name.Repository
}

var _ Target = (*Registry)(nil)

// NewRegistry returns the cache at ref, a tag ("latest" when it names
// none), parsed as docker does.
func NewRegistry(ref string, opts *registry.Options) (*Registry, error) {
	if opts == nil {
		opts = &registry.Options{}
	}
	r, err := opts.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("cache reference: %w", err)
	}
	t, ok := r.(name.Tag)
	if !ok {
		return nil, fmt.Errorf("cache reference %q: a tag, not a digest: an export moves it", ref)
	}
	return &Registry{ref: t, opts: opts}, nil
}

func (r *Registry) String() string { return r.ref.String() }

// MountFrom names images just pushed (references): the first one in
// another repository of the cache's registry is where missing blobs are
// mounted from, so that layers shared with the image are not uploaded
// twice.
func (r *Registry) MountFrom(refs ...string) {
	for _, ref := range refs {
		p, err := r.opts.ParseReference(ref)
		if err != nil {
			continue
		}
		repo := p.Context()
		if repo.RegistryStr() == r.ref.RegistryStr() && repo.RepositoryStr() != r.ref.RepositoryStr() {
			r.mountFrom = &repo
			return
		}
	}
}

func (r *Registry) options(ctx context.Context) ([]remote.Option, error) {
	o, err := r.opts.Remote(ctx, r.ref.Context().Registry)
	if err != nil {
		return nil, r.wrap("cache", err)
	}
	return o, nil
}

// wrap names the reference and the registry in err.
func (r *Registry) wrap(op string, err error) error {
	return registry.Wrap(op, r.ref.String(), r.ref.RegistryStr(), err)
}

func (r *Registry) Manifest(ctx context.Context) ([]byte, error) {
	opts, err := r.options(ctx)
	if err != nil {
		return nil, err
	}
	d, err := remote.Get(r.ref, opts...)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, r.wrap("read cache manifest", err))
		}
		return nil, r.wrap("read cache manifest", err)
	}
	return d.Manifest, nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

func (r *Registry) blob(ctx context.Context, d ocispec.Descriptor) (v1.Layer, error) {
	opts, err := r.options(ctx)
	if err != nil {
		return nil, err
	}
	l, err := remote.Layer(r.ref.Context().Digest(d.Digest.String()), opts...)
	if err != nil {
		return nil, r.wrap("blob "+d.Digest.String()+" of cache", err)
	}
	return l, nil
}

func (r *Registry) HasBlob(ctx context.Context, d ocispec.Descriptor) (bool, error) {
	l, err := r.blob(ctx, d)
	if err != nil {
		return false, err
	}
	ok, err := partial.Exists(l)
	if err != nil {
		return false, r.wrap("check blob "+d.Digest.String()+" of cache", err)
	}
	return ok, nil
}

// OpenBlob streams the blob; ggcr checks its digest as it is read.
func (r *Registry) OpenBlob(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	l, err := r.blob(ctx, d)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, r.wrap("fetch blob "+d.Digest.String()+" of cache", err)
	}
	return rc, nil
}

func (r *Registry) WriteBlob(ctx context.Context, d ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	h, err := v1.NewHash(d.Digest.String())
	if err != nil {
		return err
	}
	l, err := partial.CompressedToLayer(&storeBlob{desc: d, hash: h, open: open})
	if err != nil {
		return err
	}
	if r.mountFrom != nil {
		// A failed mount is answered with an upload session: no cost.
		l = &remote.MountableLayer{Layer: l, Reference: r.mountFrom.Digest(d.Digest.String())}
	}
	opts, err := r.options(ctx)
	if err != nil {
		return err
	}
	if err := remote.WriteLayer(r.ref.Context(), l, opts...); err != nil {
		return r.wrap("upload blob "+d.Digest.String()+" of cache", err)
	}
	return nil
}

func (r *Registry) WriteManifest(ctx context.Context, raw []byte, d ocispec.Descriptor) error {
	opts, err := r.options(ctx)
	if err != nil {
		return err
	}
	if err := remote.Put(r.ref, rawManifest(raw), opts...); err != nil {
		return r.wrap("write cache manifest", err)
	}
	return nil
}

// storeBlob is a blob to upload as ggcr sees it.
type storeBlob struct {
	desc ocispec.Descriptor
	hash v1.Hash
	open func() (io.ReadCloser, error)
}

func (b *storeBlob) Digest() (v1.Hash, error)           { return b.hash, nil }
func (b *storeBlob) Compressed() (io.ReadCloser, error) { return b.open() }
func (b *storeBlob) Size() (int64, error)               { return b.desc.Size, nil }
func (b *storeBlob) MediaType() (types.MediaType, error) {
	return types.MediaType(b.desc.MediaType), nil
}

// rawManifest is a cache manifest as ggcr's Put takes it.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error) { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
