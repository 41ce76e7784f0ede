package source

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/storetest"
)

// A single image (no index) of another platform than the one asked for
// is refused, as docker refuses it, and stores nothing; asked for no
// platform, it is pulled.
func TestPullSingleImageOfAnotherPlatform(t *testing.T) {
	ctx := context.Background()
	host, _ := memRegistry(t)
	ref := host + "/arm/app:1"
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, variant(t, "arm64", "arm")); err != nil {
		t.Fatal(err)
	}
	st := storetest.NewStore(t)
	_, err := puller().Pull(ctx, st, ref)
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "linux/arm64") || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("pull for linux/amd64 of a linux/arm64 image: %v", err)
	}
	if imgs, err := st.Content().Images(ctx); err != nil || len(imgs) != 0 {
		t.Errorf("a refused pull stored %d images (%v)", len(imgs), err)
	}
	p := puller()
	p.Platform = ocispec.Platform{}
	img, err := p.Pull(ctx, st, ref)
	if err != nil || img.Config.Architecture != "arm64" {
		t.Errorf("pull with no platform asked for: %v, %q", err, img.Config.Architecture)
	}
}
