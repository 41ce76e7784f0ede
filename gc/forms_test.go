package gc

import (
	"bytes"
	"os"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/testutil"
)

// The gzip form made of an uncompressed layer (for a push or an OCI
// archive) lives as long as the layer: a prune keeps it while an image
// holds the layer, counts it nowhere as garbage, and removes both once
// the image is gone; a later request makes it again.
func TestPruneKeepsGzipFormWithItsLayer(t *testing.T) {
	f := newFixture(t)
	tarball := testutil.Tar(t, testutil.TarEntry{Name: "plain", Body: "kept as it came"})
	desc, err := f.st.Content().Ingest(f.ctx, ocispec.MediaTypeImageLayer, bytes.NewReader(tarball))
	if err != nil {
		t.Fatal(err)
	}
	plain := layer{desc, desc.Digest}
	m, _ := f.image("plain:1", plain)
	gz, err := f.st.Content().CompressedLayer(f.ctx, plain.desc, plain.diffID)
	if err != nil {
		t.Fatal(err)
	}

	u, err := f.c.DiskUsage(f.ctx)
	if err != nil || u.Unreferenced != 0 {
		t.Errorf("usage %+v, %v: the gzip form counted as unreferenced", u, err)
	}
	rep, err := f.c.Prune(f.ctx, PruneOptions{All: true})
	if err != nil || rep.Blobs != 0 {
		t.Fatalf("prune removed %d blobs, %v", rep.Blobs, err)
	}
	if !exists(blobPath(f.st, gz.Digest)) {
		t.Fatal("the gzip form of a kept layer was pruned")
	}

	if err := f.st.Content().Remove(f.ctx, m.Digest); err != nil {
		t.Fatal(err)
	}
	rep, err = f.c.Prune(f.ctx, PruneOptions{All: true})
	if err != nil || rep.Blobs != 4 { // manifest, config, layer, gzip form
		t.Fatalf("prune removed %d blobs, %v; want 4", rep.Blobs, err)
	}
	if exists(blobPath(f.st, gz.Digest)) {
		t.Error("the gzip form outlived its layer")
	}
	if forms, err := f.st.Content().GzipForms(f.ctx); err != nil || len(forms) != 0 {
		t.Errorf("GzipForms after the prune = %v, %v: names a removed blob", forms, err)
	}

	// The memory of the pair does not offer the removed blob.
	desc, err = f.st.Content().Ingest(f.ctx, ocispec.MediaTypeImageLayer, bytes.NewReader(tarball))
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.st.Content().CompressedLayer(f.ctx, desc, desc.Digest)
	if err != nil || again.Digest != gz.Digest || !exists(blobPath(f.st, gz.Digest)) {
		t.Errorf("CompressedLayer after the prune = %+v, %v", again, err)
	}
}

// store verify checks a gzip form like any blob: a good one is no damage;
// a corrupt one is reported with no image using it, removed by a repair
// (the image and its uncompressed layer untouched) and made again when
// next asked for.
func TestCheckGzipForm(t *testing.T) {
	f := newFixture(t)
	desc, err := f.st.Content().Ingest(f.ctx, ocispec.MediaTypeImageLayer, bytes.NewReader(testutil.Tar(t, testutil.TarEntry{Name: "f", Body: "form"})))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := f.image("plain:1", layer{desc, desc.Digest})
	gz, err := f.st.Content().CompressedLayer(f.ctx, desc, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if dmg, err := f.c.Check(f.ctx, false); err != nil || !dmg.Clean() {
		t.Fatalf("Check = %+v, %v", dmg, err)
	}
	b, err := os.ReadFile(blobPath(f.st, gz.Digest))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(blobPath(f.st, gz.Digest), b, 0o644); err != nil {
		t.Fatal(err)
	}
	dmg, err := f.c.Check(f.ctx, true)
	if err != nil || len(dmg.Blobs) != 1 || dmg.Blobs[0].Digest != gz.Digest || len(dmg.Blobs[0].Images) != 0 || len(dmg.Images) != 0 {
		t.Fatalf("Check = %+v, %v", dmg, err)
	}
	if exists(blobPath(f.st, gz.Digest)) || !exists(blobPath(f.st, desc.Digest)) || !exists(blobPath(f.st, m.Digest)) {
		t.Error("repair removed the wrong blobs")
	}
	if forms, err := f.st.Content().GzipForms(f.ctx); err != nil || len(forms) != 0 {
		t.Errorf("GzipForms after the repair = %v, %v: names a removed blob", forms, err)
	}
	again, err := f.st.Content().CompressedLayer(f.ctx, desc, desc.Digest)
	if err != nil || again.Digest != gz.Digest {
		t.Fatalf("CompressedLayer after the repair = %+v, %v", again, err)
	}
	if dmg, err := f.c.Check(f.ctx, false); err != nil || !dmg.Clean() {
		t.Errorf("Check after = %+v, %v", dmg, err)
	}
}
