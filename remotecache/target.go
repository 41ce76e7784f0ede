package remotecache

import (
	"context"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Target is where a cache is kept: a registry repository's tag or an OCI
// layout directory; fakes in tests.
type Target interface {
	// Manifest returns the cache manifest's bytes, ErrNotFound when the
	// target holds none.
	Manifest(ctx context.Context) ([]byte, error)
	// HasBlob reports whether the target holds the blob d.
	HasBlob(ctx context.Context, d ocispec.Descriptor) (bool, error)
	// OpenBlob reads the blob d.
	OpenBlob(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error)
	// WriteBlob uploads the blob d, read from open.
	WriteBlob(ctx context.Context, d ocispec.Descriptor, open func() (io.ReadCloser, error)) error
	// WriteManifest makes raw, whose descriptor is d, the cache manifest;
	// every blob it names is in the target already.
	WriteManifest(ctx context.Context, raw []byte, d ocispec.Descriptor) error
	// String names the target in errors: the reference or the directory.
	String() string
}
