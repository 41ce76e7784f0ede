package source

import (
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/storetest"
)

// validateStoreImage runs go-containerregistry's validator over the store's
// image m: digests, sizes and diff_ids all checked against the blobs.
func validateStoreImage(t *testing.T, s *store.Store, m ocispec.Descriptor) {
	t.Helper()
	storetest.ValidateLayout(t, s.Content().ContentDir(), m.Digest)
}
