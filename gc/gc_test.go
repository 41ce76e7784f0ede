package gc

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/builder-dev/builder/internal/du"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
)

type fixture struct {
	t    *testing.T
	ctx  context.Context
	st   *store.Store
	snap *snapshot.Snapshotter
	c    *Collector
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.New(st.SnapshotsDir())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: ctx, st: st, snap: sn, c: &Collector{Store: st, Snap: sn}}
}

// layer is a layer blob in the store.
type layer struct {
	desc   ocispec.Descriptor
	diffID digest.Digest
}

// layer stores a one-file layer.
func (f *fixture) layer(name, content string) layer {
	f.t.Helper()
	return f.ingest(testutil.Tar(f.t, testutil.TarEntry{Name: name, Body: content}))
}

func (f *fixture) ingest(tarball []byte) layer {
	f.t.Helper()
	desc, diffID, err := f.st.Content().IngestLayer(f.ctx, bytes.NewReader(tarball))
	if err != nil {
		f.t.Fatal(err)
	}
	return layer{desc, diffID}
}

// image stores an image over layers and tags it name unless name is "".
func (f *fixture) image(name string, layers ...layer) (ocispec.Descriptor, ocispec.Manifest) {
	f.t.Helper()
	created := t0
	cfg := ocispec.Image{Created: &created, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	cfg.RootFS.Type = "layers"
	var descs []ocispec.Descriptor
	for _, l := range layers {
		descs = append(descs, l.desc)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
	}
	m, _, err := f.st.Content().PutImage(f.ctx, cfg, descs)
	if err != nil {
		f.t.Fatal(err)
	}
	if name != "" {
		if err := f.st.Content().Tag(f.ctx, name, m); err != nil {
			f.t.Fatal(err)
		}
	}
	mf, _, err := f.st.Content().LoadImage(f.ctx, m)
	if err != nil {
		f.t.Fatal(err)
	}
	return m, mf
}

// record stores a cache record of l made by step text over parent.
func (f *fixture) record(text string, parent digest.Digest, l layer, created, lastUsed time.Time) cache.Record {
	f.t.Helper()
	r := cache.Record{
		Key: digest.FromString("key " + text), Layer: l.desc, DiffID: l.diffID, Created: created, LastUsed: lastUsed,
		Step: cache.Step{Dockerfile: "/ctx/Dockerfile", Stage: "stage-0", Text: text, Parent: parent, Kind: "exec"},
	}
	if err := cache.Put(f.ctx, f.st.Meta(), r); err != nil {
		f.t.Fatal(err)
	}
	return r
}

// unpacked makes an unpacked layer directory for chain holding a file of
// size bytes. (Real unpacking needs root; gc only looks at the directory.)
func (f *fixture) unpacked(chain digest.Digest, size int) string {
	f.t.Helper()
	dir := f.snap.LayerDir(chain)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), bytes.Repeat([]byte("x"), size), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return dir
}

// temp writes a file in dir and ages it.
func (f *fixture) temp(dir, name string, age time.Duration) string {
	f.t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte("t"), 5000), 0o644); err != nil {
		f.t.Fatal(err)
	}
	when := time.Now().Add(-age)
	if err := os.Chtimes(p, when, when); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func (f *fixture) keys() []digest.Digest {
	f.t.Helper()
	recs, err := cache.List(f.ctx, f.st.Meta())
	if err != nil {
		f.t.Fatal(err)
	}
	var out []digest.Digest
	for _, r := range recs {
		out = append(out, r.Key)
	}
	slices.Sort(out)
	return out
}

func sorted(ks ...digest.Digest) []digest.Digest {
	slices.Sort(ks)
	return ks
}

// world is a store with a base image, an app image built on it by two
// records (one more record on top that no image uses), an abandoned
// branch of two records, a record after a config-only step, and garbage.
type world struct {
	*fixture
	base, l1, l2, l3, l4, l5 layer
	baseM, appM              ocispec.Manifest
	r1, r2, r3, r4, r5       cache.Record
	// Unpacked layers, by whose they are.
	dirBase, dirR1, dirR2, dirR3, dirR5, dirOrphan string
	active                                         string
	junk                                           digest.Digest
	tmpOld, tmpNew, snapTmpOld                     string
}

func newWorld(t *testing.T) *world {
	f := newFixture(t)
	w := &world{fixture: f}
	now := time.Now().UTC()
	w.base = f.layer("etc/base", "base")
	w.l1 = f.layer("one", strings.Repeat("1", 3000))
	w.l2 = f.layer("two", strings.Repeat("2", 3000))
	w.l3 = f.layer("three", "3")
	w.l4 = f.layer("four", "4")
	w.l5 = f.layer("five", "5")
	_, w.baseM = f.image("base:1", w.base)
	_, w.appM = f.image("app:latest", w.base, w.l1)

	baseKey := digest.FromString("FROM base:1")
	w.r1 = f.record("RUN one", baseKey, w.l1, now.Add(-3*time.Hour), now.Add(-time.Hour))
	w.r2 = f.record("RUN two", w.r1.Key, w.l2, now.Add(-3*time.Hour+time.Minute), now.Add(-time.Hour))
	w.r3 = f.record("RUN three", baseKey, w.l3, now.Add(-5*time.Hour), now.Add(-5*time.Hour))
	w.r4 = f.record("RUN four", w.r3.Key, w.l4, now.Add(-5*time.Hour+time.Minute), now.Add(-5*time.Hour))
	// r5 follows an ENV after r1: its parent key is no record.
	w.r5 = f.record("RUN five", digest.FromString("ENV after one"), w.l5, now.Add(-2*time.Hour), now.Add(-2*time.Hour))

	chainBase := w.base.diffID
	chainR1 := identity.ChainID([]digest.Digest{chainBase, w.l1.diffID})
	w.dirBase = f.unpacked(chainBase, 10000)
	w.dirR1 = f.unpacked(chainR1, 20000)
	w.dirR2 = f.unpacked(identity.ChainID([]digest.Digest{chainR1, w.l2.diffID}), 30000)
	w.dirR3 = f.unpacked(identity.ChainID([]digest.Digest{chainBase, w.l3.diffID}), 40000)
	w.dirR5 = f.unpacked(identity.ChainID([]digest.Digest{chainR1, w.l5.diffID}), 50000)
	w.dirOrphan = f.unpacked(digest.FromString("orphan"), 60000)

	a, err := f.snap.Prepare(f.ctx, snapshot.Committed{Chain: []digest.Digest{chainBase}})
	if err != nil {
		t.Fatal(err)
	}
	w.active = a.UpperDir()

	d, err := f.st.Content().Ingest(f.ctx, "application/octet-stream", strings.NewReader("junk"))
	if err != nil {
		t.Fatal(err)
	}
	w.junk = d.Digest
	w.tmpOld = f.temp(f.st.TmpDir(), "ingest-old", 2*time.Hour)
	w.tmpNew = f.temp(f.st.TmpDir(), "ingest-new", time.Minute)
	w.snapTmpOld = f.temp(filepath.Join(f.st.SnapshotsDir(), "tmp"), "unpack-old", 2*time.Hour)
	return w
}

// imageBlobs are the blobs of both images.
func (w *world) imageBlobs() []digest.Digest {
	var out []digest.Digest
	for _, m := range []ocispec.Manifest{w.baseM, w.appM} {
		out = append(out, m.Config.Digest)
		for _, l := range m.Layers {
			out = append(out, l.Digest)
		}
	}
	return out
}

func (w *world) checkImagesIntact() {
	w.t.Helper()
	for _, ref := range []string{"base:1", "app:latest"} {
		desc, err := w.st.Content().Resolve(w.ctx, ref)
		if err != nil {
			w.t.Fatalf("%s: %v", ref, err)
		}
		if !w.st.Content().HasBlob(desc.Digest) {
			w.t.Errorf("%s: manifest blob gone", ref)
		}
	}
	for _, d := range w.imageBlobs() {
		if !w.st.Content().HasBlob(d) {
			w.t.Errorf("image blob %s gone", d)
		}
	}
	for _, d := range []string{w.dirBase, w.dirR1, w.active} {
		if !exists(d) {
			w.t.Errorf("%s gone", d)
		}
	}
}

func TestPruneDefault(t *testing.T) {
	w := newWorld(t)
	var wantReclaimed int64
	for _, l := range []layer{w.l2, w.l3, w.l4, w.l5} {
		wantReclaimed += l.desc.Size
	}
	wantReclaimed += int64(len("junk"))
	for _, p := range []string{w.dirR2, w.dirR3, w.dirR5, w.dirOrphan, w.tmpOld, w.tmpNew, w.snapTmpOld} {
		wantReclaimed += du.Size(p)
	}

	rep, err := w.c.Prune(w.ctx, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// r1 is in app; r2 on top of it, r3 and r4, r5 are in no image.
	if got := w.keys(); !slices.Equal(got, []digest.Digest{w.r1.Key}) {
		t.Errorf("records left %v, want r1 only", got)
	}
	var gone []string
	for _, r := range rep.Records {
		gone = append(gone, r.Step.Text)
	}
	if !sameSet(gone, []string{"RUN two", "RUN three", "RUN four", "RUN five"}) ||
		slices.Index(gone, "RUN four") > slices.Index(gone, "RUN three") {
		t.Errorf("removed %v", gone)
	}
	w.checkImagesIntact()
	for _, l := range []layer{w.l2, w.l3, w.l4, w.l5} {
		if w.st.Content().HasBlob(l.desc.Digest) {
			t.Errorf("blob of an unused record %s kept", l.desc.Digest)
		}
	}
	if w.st.Content().HasBlob(w.junk) {
		t.Error("unreferenced blob kept")
	}
	// Temporary files go, however fresh: under the GC lock no process
	// that writes them runs.
	for _, d := range []string{w.dirR2, w.dirR3, w.dirR5, w.dirOrphan, w.tmpOld, w.tmpNew, w.snapTmpOld} {
		if exists(d) {
			t.Errorf("%s kept", d)
		}
	}
	if rep.Blobs != 5 || rep.Layers != 4 || rep.TempFiles != 3 || rep.Reclaimed != wantReclaimed {
		t.Errorf("report: %d blobs, %d layers, %d temp, %d bytes; want 5, 4, 3, %d", rep.Blobs, rep.Layers, rep.TempFiles, rep.Reclaimed, wantReclaimed)
	}

	// A second prune finds nothing.
	rep, err = w.c.Prune(w.ctx, PruneOptions{})
	if err != nil || len(rep.Records) != 0 || rep.Reclaimed != 0 {
		t.Errorf("second prune: %+v, %v", rep, err)
	}
}

func TestPruneAllKeepsImages(t *testing.T) {
	w := newWorld(t)
	if _, err := w.c.Prune(w.ctx, PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if got := w.keys(); len(got) != 0 {
		t.Errorf("records left: %v", got)
	}
	// r1's layer and unpacked layer stay for app.
	w.checkImagesIntact()
	if w.st.Content().HasBlob(w.l2.desc.Digest) || exists(w.dirR2) {
		t.Error("r2's data kept")
	}
	// Untagging app leaves it listed untagged: still kept.
	if err := w.st.Content().Untag(w.ctx, "app:latest"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.Prune(w.ctx, PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if !w.st.Content().HasBlob(w.l1.desc.Digest) || !exists(w.dirR1) {
		t.Error("an untagged listed image lost its data")
	}
	// Removed from the index, it goes, but the base stays.
	app, err := w.st.Content().Resolve(w.ctx, w.appM.Config.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.st.Content().Remove(w.ctx, app.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.Prune(w.ctx, PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if w.st.Content().HasBlob(w.l1.desc.Digest) || w.st.Content().HasBlob(app.Digest) || w.st.Content().HasBlob(w.appM.Config.Digest) || exists(w.dirR1) {
		t.Error("a removed image's data kept")
	}
	if !w.st.Content().HasBlob(w.base.desc.Digest) || !exists(w.dirBase) || !exists(w.active) {
		t.Error("base image data or active snapshot gone")
	}
}

func TestPruneUntil(t *testing.T) {
	w := newWorld(t)
	// r3 and r4 were last used 5h ago, r5 2h ago, r2 1h ago.
	rep, err := w.c.Prune(w.ctx, PruneOptions{Until: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Records) != 2 {
		t.Errorf("removed %d records, want 2", len(rep.Records))
	}
	if got := w.keys(); !slices.Equal(got, sorted(w.r1.Key, w.r2.Key, w.r5.Key)) {
		t.Errorf("records left %v", got)
	}
	if w.st.Content().HasBlob(w.l3.desc.Digest) || !w.st.Content().HasBlob(w.l5.desc.Digest) || !w.st.Content().HasBlob(w.l2.desc.Digest) {
		t.Error("wrong blobs removed")
	}
	// r5's unpacked layer was found by matching and is kept with it.
	if !exists(w.dirR5) || !exists(w.dirR2) || exists(w.dirR3) {
		t.Error("wrong unpacked layers removed")
	}
	// An ancestor used long ago stays while a descendant was used since.
	now := time.Now().UTC()
	old := w.record("RUN old", digest.FromString("FROM x"), w.layer("old", "o"), now.Add(-9*time.Hour), now.Add(-9*time.Hour))
	young := w.record("RUN young", old.Key, w.layer("young", "y"), now.Add(-9*time.Hour), now)
	if _, err := w.c.Prune(w.ctx, PruneOptions{Until: 3 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := w.keys(); !slices.Contains(got, old.Key) || !slices.Contains(got, young.Key) {
		t.Errorf("records left %v: the old parent of a young record went", got)
	}
}

func TestPruneKeepStorage(t *testing.T) {
	f := newFixture(t)
	now := time.Now().UTC()
	var recs []cache.Record
	var sizes []int64
	// Incompressible-ish contents of distinct sizes, used 4h, 3h, 2h, 1h ago.
	for i, n := range []int{5000, 6000, 7000, 8000} {
		body := make([]byte, n)
		for j := range body {
			body[j] = byte((j*7919 + i*31) % 251)
		}
		l := f.layer("f", string(body))
		ago := time.Duration(4-i) * time.Hour
		recs = append(recs, f.record("RUN "+string(rune('a'+i)), digest.FromString("base"), l, now.Add(-ago), now.Add(-ago)))
		sizes = append(sizes, l.desc.Size)
	}
	u, err := f.c.DiskUsage(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.Total != sizes[0]+sizes[1]+sizes[2]+sizes[3] {
		t.Fatalf("total %d, sizes %v", u.Total, sizes)
	}
	// Room for the two newest: the two oldest go.
	rep, err := f.c.Prune(f.ctx, PruneOptions{KeepStorage: sizes[2] + sizes[3]})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.keys(); !slices.Equal(got, sorted(recs[2].Key, recs[3].Key)) {
		t.Errorf("records left %v", got)
	}
	if len(rep.Records) != 2 || rep.Records[0].Key != recs[0].Key || rep.Records[1].Key != recs[1].Key {
		t.Errorf("removed %+v, want the oldest first", rep.Records)
	}
	if rep.Reclaimed != sizes[0]+sizes[1] {
		t.Errorf("reclaimed %d, want %d", rep.Reclaimed, sizes[0]+sizes[1])
	}
	// One byte less than the newest alone: everything goes.
	if _, err := f.c.Prune(f.ctx, PruneOptions{KeepStorage: sizes[3] - 1}); err != nil {
		t.Fatal(err)
	}
	if got := f.keys(); len(got) != 0 {
		t.Errorf("records left %v", got)
	}
}

// TestPruneKeepStorageSparesUsed: records whose layers an image holds free
// nothing, so a prune to a tiny size removes only the others, and what it
// reports freed is what du stops counting.
func TestPruneKeepStorageSparesUsed(t *testing.T) {
	w := newWorld(t)
	before, err := w.c.DiskUsage(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := w.c.Prune(w.ctx, PruneOptions{KeepStorage: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.keys(); !slices.Equal(got, []digest.Digest{w.r1.Key}) {
		t.Errorf("records left %v, want r1 (app's) only", got)
	}
	if len(rep.Records) != 4 {
		t.Errorf("removed %d records, want 4", len(rep.Records))
	}
	w.checkImagesIntact()
	after, err := w.c.DiskUsage(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	freed := before.Reclaimable + before.Unreferenced - after.Reclaimable - after.Unreferenced
	if rep.Reclaimed != freed || after.Shared != before.Shared || after.Reclaimable != 0 {
		t.Errorf("reclaimed %d; du before %+v, after %+v", rep.Reclaimed, before, after)
	}
	// All that is left is app's: nothing more to free, nothing removed.
	for _, all := range []bool{false, true} {
		rep, err = w.c.Prune(w.ctx, PruneOptions{KeepStorage: 1, All: all})
		if err != nil || len(rep.Records) != 0 || rep.Reclaimed != 0 {
			t.Errorf("prune again (all %v): %d records, %d bytes, %v", all, len(rep.Records), rep.Reclaimed, err)
		}
	}
	if got := w.keys(); !slices.Equal(got, []digest.Digest{w.r1.Key}) {
		t.Errorf("records left %v", got)
	}
}

// TestPruneSparesContainerLayers: a record whose layer only a container
// (a root) holds is in use, as one an image holds.
func TestPruneSparesContainerLayers(t *testing.T) {
	w := newWorld(t)
	chainR3 := identity.ChainID([]digest.Digest{w.base.diffID, w.l3.diffID})
	w.c.Roots = func(context.Context) (Roots, error) {
		return Roots{Blobs: []digest.Digest{w.l3.desc.Digest}, Chains: []digest.Digest{chainR3}}, nil
	}
	for _, opt := range []PruneOptions{{}, {KeepStorage: 1}} {
		if _, err := w.c.Prune(w.ctx, opt); err != nil {
			t.Fatal(err)
		}
		// r4 on top of r3 is in nothing and goes.
		if got := w.keys(); !slices.Equal(got, sorted(w.r1.Key, w.r3.Key)) {
			t.Errorf("%+v: records left %v, want r1 and r3", opt, got)
		}
	}
	if !w.st.Content().HasBlob(w.l3.desc.Digest) || !exists(w.dirR3) {
		t.Error("the container's layer went")
	}
}

func TestPruneWaitsForRunningBuild(t *testing.T) {
	w := newWorld(t)
	lock, err := w.st.LockBuild(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	waiting := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := w.c.Prune(w.ctx, PruneOptions{All: true, Waiting: func() { close(waiting) }})
		done <- err
	}()
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("prune ran while a build held the lock: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("prune finished while a build held the lock: %v", err)
	default:
	}
	if got := w.keys(); len(got) != 5 {
		t.Fatalf("records changed while waiting: %v", got)
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := w.keys(); len(got) != 0 {
		t.Errorf("records left after prune: %v", got)
	}
	// A cancelled wait gives up.
	lock2, err := w.st.LockBuild(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock2.Release()
	ctx, cancel := context.WithCancel(w.ctx)
	_, err = w.c.Prune(ctx, PruneOptions{Waiting: cancel})
	if err == nil {
		t.Error("prune with a cancelled wait succeeded")
	}
}

func TestDiskUsage(t *testing.T) {
	w := newWorld(t)
	u, err := w.c.DiskUsage(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, l := range []layer{w.l1, w.l2, w.l3, w.l4, w.l5} {
		total += l.desc.Size
	}
	// r4's layer was never unpacked.
	for _, d := range []string{w.dirR1, w.dirR2, w.dirR3, w.dirR5} {
		total += du.Size(d)
	}
	shared := w.l1.desc.Size + du.Size(w.dirR1)
	unref := int64(len("junk")) + du.Size(w.dirOrphan) + du.Size(w.tmpOld) + du.Size(w.tmpNew) + du.Size(w.snapTmpOld)
	want := Usage{Records: 5, Total: total, Shared: shared, Reclaimable: total - shared, Unreferenced: unref}
	if u != want {
		t.Errorf("usage %+v, want %+v", u, want)
	}
	if u.Total != u.Shared+u.Reclaimable {
		t.Error("total is not shared + reclaimable")
	}
	// prune --all frees what du said.
	rep, err := w.c.Prune(w.ctx, PruneOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reclaimed != u.Reclaimable+u.Unreferenced {
		t.Errorf("prune --all reclaimed %d, du said %d + %d", rep.Reclaimed, u.Reclaimable, u.Unreferenced)
	}
	u, err = w.c.DiskUsage(w.ctx)
	if err != nil || u != (Usage{}) {
		t.Errorf("usage after prune --all: %+v, %v", u, err)
	}
}

func TestList(t *testing.T) {
	w := newWorld(t)
	if err := w.st.Content().Tag(w.ctx, "other:2", mustResolve(t, w, "app:latest")); err != nil {
		t.Fatal(err)
	}
	// A record whose layer blob is gone.
	gone := w.record("RUN gone", digest.FromString("FROM y"), layer{desc: ocispec.Descriptor{Digest: digest.FromString("no blob"), Size: 9}, diffID: digest.FromString("d")}, t0, t0)
	entries, err := w.c.List(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	byText := map[string]Entry{}
	var order []string
	for _, e := range entries {
		byText[e.Step.Text] = e
		order = append(order, e.Step.Text)
	}
	if len(entries) != 6 {
		t.Fatalf("entries: %v", order)
	}
	// Most recently used first; one build's records in the order made.
	if !slices.Equal(order, []string{"RUN one", "RUN two", "RUN five", "RUN three", "RUN four", "RUN gone"}) {
		t.Errorf("order %v", order)
	}
	for text, want := range map[string]struct {
		size   int64
		images []string
	}{
		"RUN one":   {w.l1.desc.Size + du.Size(w.dirR1), []string{"app:latest", "other:2"}},
		"RUN two":   {w.l2.desc.Size + du.Size(w.dirR2), nil},
		"RUN three": {w.l3.desc.Size + du.Size(w.dirR3), nil},
		"RUN four":  {w.l4.desc.Size, nil},
		"RUN five":  {w.l5.desc.Size + du.Size(w.dirR5), nil},
		"RUN gone":  {0, nil},
	} {
		e := byText[text]
		if e.Size != want.size || !slices.Equal(e.Images, want.images) || e.Missing != (text == "RUN gone") {
			t.Errorf("%s: size %d images %v missing %v; want %d %v", text, e.Size, e.Images, e.Missing, want.size, want.images)
		}
	}
	// An untagged image shows as its short ID.
	if err := w.st.Content().Untag(w.ctx, "app:latest"); err != nil {
		t.Fatal(err)
	}
	if err := w.st.Content().Untag(w.ctx, "other:2"); err != nil {
		t.Fatal(err)
	}
	entries, err = w.c.List(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Key == w.r1.Key && !slices.Equal(e.Images, []string{store.ShortID(w.appM.Config.Digest)}) {
			t.Errorf("untagged user shown as %v", e.Images)
		}
	}
	// Any prune drops the dead record.
	if _, err := w.c.Prune(w.ctx, PruneOptions{Until: 1000 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(w.keys(), gone.Key) {
		t.Error("a record without its blob survived a prune")
	}
}

func mustResolve(t *testing.T, w *world, ref string) ocispec.Descriptor {
	t.Helper()
	d, err := w.st.Content().Resolve(w.ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPruneRealUnpackedLayers(t *testing.T) {
	testutil.RequiresRoot(t)
	f := newFixture(t)
	base := f.ingest(testutil.BusyboxLayer(t))
	f.image("busybox:1", base)
	extra := f.layer("extra", "x")
	now := time.Now().UTC()
	r := f.record("RUN extra", digest.FromString("FROM busybox:1"), extra, now, now)
	// Unpack both as a build would: the base, then r's layer on it.
	c, err := unpack(f, snapshot.Committed{}, base)
	if err != nil {
		t.Fatal(err)
	}
	c, err = unpack(f, c, extra)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := f.c.List(f.ctx)
	if err != nil || len(entries) != 1 || entries[0].Size <= extra.desc.Size {
		t.Fatalf("entries %+v, %v: want r with its unpacked layer", entries, err)
	}
	if _, err := f.c.Prune(f.ctx, PruneOptions{Until: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if !f.snap.Has(c.Chain[0]) || !f.snap.Has(c.Chain[1]) {
		t.Error("unpacked layers of a kept image and record removed")
	}
	if _, err := f.c.Prune(f.ctx, PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if !f.snap.Has(c.Chain[0]) || f.snap.Has(c.Chain[1]) || f.st.Content().HasBlob(r.Layer.Digest) {
		t.Error("after prune: want the base unpacked and r's layer gone")
	}
}

func unpack(f *fixture, parent snapshot.Committed, l layer) (snapshot.Committed, error) {
	rc, err := f.st.Content().OpenLayer(f.ctx, l.desc.Digest)
	if err != nil {
		return snapshot.Committed{}, err
	}
	defer rc.Close()
	ch := l.diffID
	if len(parent.Chain) > 0 {
		ch = identity.ChainID([]digest.Digest{parent.Top(), l.diffID})
	}
	return f.snap.Unpack(f.ctx, parent, ch, rc)
}

// blobPath is where the store keeps the blob d, for tests that damage it
// (gc itself never computes it: it asks the store).
func blobPath(st *store.Store, d digest.Digest) string {
	return filepath.Join(st.Content().ContentDir(), "blobs", d.Algorithm().String(), d.Encoded())
}
