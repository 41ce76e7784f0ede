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
)

// Registry is a cache kept under a tag of a registry repository.
type Registry struct {
	ref  name.Tag
	opts []remote.Option
}

var _ Target = (*Registry)(nil)

// NewRegistry returns the cache at ref (a tag; "latest" when it has none),
// reached with opts (auth, transport); ggcr's default for names is kept,
// so plain HTTP only for localhost and 127.0.0.1 unless nameOpts say more.
func NewRegistry(ref string, nameOpts []name.Option, opts ...remote.Option) (*Registry, error) {
	t, err := name.NewTag(ref, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("cache reference %q: %w", ref, err)
	}
	return &Registry{ref: t, opts: opts}, nil
}

func (r *Registry) String() string { return r.ref.String() }

func (r *Registry) options(ctx context.Context) []remote.Option {
	return append([]remote.Option{remote.WithContext(ctx)}, r.opts...)
}

// where names the registry in errors.
func (r *Registry) where() string {
	return fmt.Sprintf("%s (registry %s)", r.ref, r.ref.RegistryStr())
}

func (r *Registry) Manifest(ctx context.Context) ([]byte, error) {
	d, err := remote.Get(r.ref, r.options(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("cache %s: %w", r.where(), ErrNotFound)
		}
		return nil, fmt.Errorf("read cache manifest %s: %w", r.where(), err)
	}
	return d.Manifest, nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

func (r *Registry) blob(ctx context.Context, d ocispec.Descriptor) (v1.Layer, error) {
	l, err := remote.Layer(r.ref.Context().Digest(d.Digest.String()), r.options(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("blob %s of %s: %w", d.Digest, r.where(), err)
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
		return false, fmt.Errorf("check blob %s in %s: %w", d.Digest, r.where(), err)
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
		return nil, fmt.Errorf("fetch blob %s from %s: %w", d.Digest, r.where(), err)
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
	if err := remote.WriteLayer(r.ref.Context(), l, r.options(ctx)...); err != nil {
		return fmt.Errorf("upload blob %s to %s: %w", d.Digest, r.where(), err)
	}
	return nil
}

func (r *Registry) WriteManifest(ctx context.Context, raw []byte, d ocispec.Descriptor) error {
	if err := remote.Put(r.ref, rawManifest(raw), r.options(ctx)...); err != nil {
		return fmt.Errorf("write cache manifest %s: %w", r.where(), err)
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
