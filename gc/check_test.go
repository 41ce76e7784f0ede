package gc

import (
	"os"
	"slices"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
)

// Check finds a corrupt layer blob, the image using it, the record made of
// it and the one after it, and the unpacked layers from it up; repair
// removes exactly those and leaves a store that checks clean.
func TestCheckRepairsCorruptLayer(t *testing.T) {
	f := newFixture(t)
	base, l1, l2 := f.layer("base", "base"), f.layer("one", "1"), f.layer("two", "2")
	baseM, _ := f.image("base:1", base)
	f.image("app:1", base, l1, l2)
	chains := identity.ChainIDs([]digest.Digest{base.diffID, l1.diffID, l2.diffID})
	r1 := f.record("RUN one", "", l1, t0, t0)
	r2 := f.record("RUN two", r1.Key, l2, t0, t0)
	other := f.record("RUN other", "", f.layer("other", "o"), t0, t0)
	dirs := []string{f.unpacked(chains[0], 10), f.unpacked(chains[1], 10), f.unpacked(chains[2], 10)}

	b, err := os.ReadFile(blobPath(f.st, l1.desc.Digest))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(blobPath(f.st, l1.desc.Digest), b, 0o644); err != nil {
		t.Fatal(err)
	}

	dmg, err := f.c.Check(f.ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(dmg.Blobs) != 1 || dmg.Blobs[0].Digest != l1.desc.Digest || dmg.Blobs[0].Missing || !slices.Equal(dmg.Blobs[0].Images, []string{"app:1"}) {
		t.Errorf("Blobs = %+v", dmg.Blobs)
	}
	if len(dmg.Images) != 1 {
		t.Errorf("Images = %v", dmg.Images)
	}
	var keys []digest.Digest
	for _, r := range dmg.Records {
		keys = append(keys, r.Key)
	}
	if !slices.Equal(keys, sorted(r1.Key, r2.Key)) {
		t.Errorf("Records = %v, want r1 and r2", keys)
	}
	if !slices.Equal(dmg.Chains, sorted(chains[1], chains[2])) {
		t.Errorf("Chains = %v, want %v", dmg.Chains, chains[1:])
	}
	if !exists(blobPath(f.st, l1.desc.Digest)) {
		t.Error("Check without repair removed the blob")
	}

	if _, err := f.c.Check(f.ctx, true); err != nil {
		t.Fatal(err)
	}
	if exists(blobPath(f.st, l1.desc.Digest)) || exists(dirs[1]) || exists(dirs[2]) {
		t.Error("repair left the corrupt blob or its unpacked layers")
	}
	if !exists(dirs[0]) || !exists(blobPath(f.st, l2.desc.Digest)) {
		t.Error("repair removed the base's unpacked layer or a good blob")
	}
	if !slices.Equal(f.keys(), []digest.Digest{other.Key}) {
		t.Errorf("records left: %v, want only the unrelated one", f.keys())
	}
	if _, err := f.st.Content().Resolve(f.ctx, "app:1"); err == nil {
		t.Error("app:1 is still listed")
	}
	if d, err := f.st.Content().Resolve(f.ctx, "base:1"); err != nil || d.Digest != baseM.Digest {
		t.Errorf("base:1: %v", err)
	}
	if dmg, err := f.c.Check(f.ctx, false); err != nil || !dmg.Clean() {
		t.Errorf("Check after repair = %+v, %v", dmg, err)
	}

	// A record whose layer blob is missing is found and removed too.
	if err := os.Remove(blobPath(f.st, other.Layer.Digest)); err != nil {
		t.Fatal(err)
	}
	dmg, err = f.c.Check(f.ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(dmg.Records) != 1 || dmg.Records[0].Key != other.Key {
		t.Errorf("Records = %+v, want the record whose blob is missing", dmg.Records)
	}
	if len(f.keys()) != 0 {
		t.Errorf("records left: %v", f.keys())
	}
}
