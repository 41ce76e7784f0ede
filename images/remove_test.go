package images

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store"
)

// putImage stores a one-layer image (an empty tar) tagged with names.
func putImage(t *testing.T, s *store.Store, names ...string) (ocispec.Descriptor, digest.Digest) {
	t.Helper()
	ctx := context.Background()
	emptyTar := make([]byte, 1024)
	l, err := s.Content().Ingest(ctx, ocispec.MediaTypeImageLayerGzip, bytes.NewReader(testutil.Gzip(t, emptyTar)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(emptyTar)}}
	m, c, err := s.Content().PutImage(ctx, cfg, []ocispec.Descriptor{l})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := s.Content().Tag(ctx, n, m); err != nil {
			t.Fatal(err)
		}
	}
	return m, c.Digest
}

// steps records what Remove reported.
type steps struct{ untagged, deleted []string }

func (st *steps) options(force bool) RemoveOptions {
	return RemoveOptions{
		Force:    force,
		Untagged: func(n string) { st.untagged = append(st.untagged, n) },
		Deleted:  func(d digest.Digest) { st.deleted = append(st.deleted, d.String()) },
	}
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, id := putImage(t, s, "app:1", "app:2")

	// By name, with another name left: untagged only.
	var st steps
	if err := Remove(ctx, s, "app:1", st.options(false)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.untagged, []string{"app:1"}) || len(st.deleted) != 0 {
		t.Errorf("app:1: %+v", st)
	}

	// By ID with several names: must be forced.
	if err := s.Content().Tag(ctx, "app:3", m); err != nil {
		t.Fatal(err)
	}
	err = Remove(ctx, s, id.Encoded()[:12], st.options(false))
	if err == nil || !strings.Contains(err.Error(), "must be forced") {
		t.Fatalf("by ID, two names: %v", err)
	}
	st = steps{}
	if err := Remove(ctx, s, id.Encoded()[:12], st.options(true)); err != nil {
		t.Fatal(err)
	}
	slices.Sort(st.untagged)
	if !slices.Equal(st.untagged, []string{"app:2", "app:3"}) || !slices.Equal(st.deleted, []string{m.Digest.String()}) {
		t.Errorf("forced by ID: %+v", st)
	}

	err = Remove(ctx, s, "app:2", st.options(false))
	if err == nil || err.Error() != "no such image: app:2" {
		t.Errorf("removed again: %v", err)
	}
	if imgs, err := s.Content().Images(ctx); err != nil || len(imgs) != 0 {
		t.Errorf("images left: %+v, %v", imgs, err)
	}
}
