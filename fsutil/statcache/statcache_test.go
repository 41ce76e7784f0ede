package statcache

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/fsutil"
	"github.com/builder-dev/builder/store/meta"
)

// countingDB counts the transactions of a store.
type countingDB struct {
	*meta.File
	views, updates atomic.Int64
}

func (d *countingDB) View(ctx context.Context, fn func(*bbolt.Tx) error) error {
	d.views.Add(1)
	return d.File.View(ctx, fn)
}

func (d *countingDB) Update(ctx context.Context, fn func(*bbolt.Tx) error) error {
	d.updates.Add(1)
	return d.File.Update(ctx, fn)
}

func newDB(t testing.TB) *countingDB {
	t.Helper()
	f, err := meta.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	return &countingDB{File: f}
}

// open opens the cache of dir with no racy window: tests write files and
// read them back at once, and would otherwise never see a record kept.
func open(t testing.TB, db meta.DB, dir string) *Cache {
	t.Helper()
	c, err := Open(context.Background(), db, dir)
	if err != nil {
		t.Fatal(err)
	}
	c.racyWindow = 0
	if err := c.wait(context.Background()); err != nil { // tests look at c.loaded
		t.Fatal(err)
	}
	return c
}

func write(t testing.TB, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sums digests all of dir as COPY . / would, through c when not nil.
func sums(t testing.TB, dir string, c *Cache) (digest.Digest, []fsutil.Entry) {
	t.Helper()
	req := fsutil.CopyRequest{SrcRoot: dir, Sources: []string{"."}, Dest: "/"}
	if c != nil {
		req.ReadSums = c.ReadSums
	}
	d, entries, err := fsutil.DigestEntries(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return d, entries()
}

func flush(t testing.TB, c *Cache) {
	t.Helper()
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func lstat(t testing.TB, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func sampleTree(t testing.TB) string {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a"), "alpha\n")
	write(t, filepath.Join(dir, "sub/b"), "beta\n")
	write(t, filepath.Join(dir, "sub/deeper/c"), "")
	if err := os.Symlink("sub/b", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(dir, "a"), "user.note", []byte("kept"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	return dir
}

func TestSameAsReading(t *testing.T) {
	dir := sampleTree(t)
	db := newDB(t)
	want, wantEntries := sums(t, dir, nil)

	c := open(t, db, dir)
	if d, _ := sums(t, dir, c); d != want {
		t.Fatalf("cold: digest %s, want %s", d, want)
	}
	if s := c.Stats(); s.Hits != 0 || s.Misses != int64(len(wantEntries)) {
		t.Errorf("cold: %+v, want %d misses", s, len(wantEntries))
	}
	// The same cache answers a second copy of the same files itself.
	if d, _ := sums(t, dir, c); d != want {
		t.Fatalf("again: digest %s, want %s", d, want)
	}
	if s := c.Stats(); s.Hits != int64(len(wantEntries)) {
		t.Errorf("again: %+v, want %d hits", s, len(wantEntries))
	}
	flush(t, c)

	// Reopened: every answer comes from a record, and is the same.
	c = open(t, db, dir)
	d, entries := sums(t, dir, c)
	if d != want {
		t.Fatalf("warm: digest %s, want %s", d, want)
	}
	if fmt.Sprint(entries) != fmt.Sprint(wantEntries) {
		t.Errorf("warm entries:\n%v\nwant\n%v", entries, wantEntries)
	}
	if s := c.Stats(); s.Misses != 0 || s.Hits != int64(len(wantEntries)) {
		t.Errorf("warm: %+v, want %d hits", s, len(wantEntries))
	}
	// A build that changed nothing writes nothing.
	before := db.updates.Load()
	flush(t, c)
	if db.updates.Load() != before {
		t.Error("Flush wrote with nothing to write")
	}
}

// warmCache returns a cache of dir that has every file of it recorded.
func warmCache(t *testing.T, db meta.DB, dir string) *Cache {
	t.Helper()
	c := open(t, db, dir)
	sums(t, dir, c)
	flush(t, c)
	return open(t, db, dir)
}

func TestChanges(t *testing.T) {
	for _, tc := range []struct {
		name       string
		change     func(t *testing.T, dir string)
		sameDigest bool
		misses     int64 // files read again
	}{{
		name:       "nothing",
		change:     func(*testing.T, string) {},
		sameDigest: true,
	}, {
		name: "content and size",
		change: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "sub/b"), "beta, longer\n")
		},
		misses: 1,
	}, {
		// The one Docker misses: same size, same inode, mtime put back.
		// The ctime moved, and that is enough.
		name: "same size, mtime restored",
		change: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "sub/b")
			old := lstat(t, p)
			mtime := time.Unix(old.Mtim.Unix())
			for {
				f, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt([]byte("B"), 0); err != nil {
					t.Fatal(err)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, mtime, mtime); err != nil {
					t.Fatal(err)
				}
				st := lstat(t, p)
				if st.Ino != old.Ino || st.Size != old.Size || st.Mtim != old.Mtim {
					t.Fatal("the edit changed more than the content")
				}
				// Within one clock tick of the record the ctime can
				// stay the same: that is the racy window, which this
				// test turned off. Write again once the clock moved.
				if st.Ctim != old.Ctim {
					break
				}
				time.Sleep(time.Millisecond)
			}
		},
		misses: 1,
	}, {
		name: "mtime only",
		change: func(t *testing.T, dir string) {
			tm := time.Unix(1500000000, 0)
			if err := os.Chtimes(filepath.Join(dir, "a"), tm, tm); err != nil {
				t.Fatal(err)
			}
		},
		sameDigest: true,
		misses:     1, // read again; what is read is the same
	}, {
		name: "replaced by a file with the same content",
		change: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "a")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			write(t, p, "alpha\n")
		},
		misses: 2, // and its directory; the xattr went with the old file
	}, {
		name: "xattr",
		change: func(t *testing.T, dir string) {
			if err := unix.Lsetxattr(filepath.Join(dir, "a"), "user.note", []byte("new"), 0); err != nil {
				t.Fatal(err)
			}
		},
		misses: 1,
	}, {
		name: "symlink target",
		change: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "link")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("sub/deeper/c", p); err != nil {
				t.Fatal(err)
			}
		},
		misses: 2, // the link and its directory (new mtime)
	}, {
		name: "chmod",
		change: func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "sub/deeper/c"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		misses: 1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := sampleTree(t)
			db := newDB(t)
			before, _ := sums(t, dir, nil)
			c := warmCache(t, db, dir)
			tc.change(t, dir)
			want, _ := sums(t, dir, nil)
			if (want == before) != tc.sameDigest {
				t.Fatalf("uncached digest same=%v, want %v", want == before, tc.sameDigest)
			}
			if got, _ := sums(t, dir, c); got != want {
				t.Fatalf("cached digest %s, reading gives %s", got, want)
			}
			if got := c.Stats().Misses; got != tc.misses {
				t.Errorf("%d files read, want %d", got, tc.misses)
			}
		})
	}
}

func TestRacyNotKept(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	write(t, p, "x")
	st := lstat(t, p)
	ctime := time.Unix(st.Ctim.Unix())
	for _, tc := range []struct {
		readAt time.Time
		kept   bool
	}{
		{ctime, false},
		{ctime.Add(racyWindow - time.Millisecond), false},
		{ctime.Add(racyWindow + time.Millisecond), true},
	} {
		db := newDB(t)
		c, err := Open(context.Background(), db, dir)
		if err != nil {
			t.Fatal(err)
		}
		c.now = func() time.Time { return tc.readAt }
		sums(t, dir, c)
		flush(t, c)
		c = open(t, db, dir)
		kept := c.has("f")
		if kept != tc.kept {
			t.Errorf("read %v after the ctime: kept %v, want %v", tc.readAt.Sub(ctime), kept, tc.kept)
		}
	}
}

func TestFlushPrunes(t *testing.T) {
	dir, other := sampleTree(t), sampleTree(t)
	db := newDB(t)
	c := warmCache(t, db, dir)
	warmCache(t, db, other)
	if !c.has("sub/deeper/c") {
		t.Fatal("no record of sub/deeper/c")
	}
	if err := os.RemoveAll(filepath.Join(dir, "sub/deeper")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(other); err != nil {
		t.Fatal(err)
	}
	// A copy of "a" alone asks nothing of sub/deeper; "a" changed, so
	// Flush writes, and drops what is gone.
	write(t, filepath.Join(dir, "a"), "changed")
	req := fsutil.CopyRequest{SrcRoot: dir, Sources: []string{"a"}, Dest: "/", ReadSums: c.ReadSums}
	if _, err := fsutil.Digest(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	c = open(t, db, dir)
	for rel, want := range map[string]bool{"a": true, "sub/b": true, "sub/deeper": false, "sub/deeper/c": false} {
		if ok := c.has(rel); ok != want {
			t.Errorf("record of %s kept %v, want %v", rel, ok, want)
		}
	}
	err := db.View(context.Background(), func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketName).Bucket([]byte(other)) != nil {
			t.Error("the bucket of a removed context is still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOutsideDir(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	p := filepath.Join(elsewhere, "f")
	write(t, p, "x")
	db := newDB(t)
	c := open(t, db, dir)
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.ReadSums(context.Background(), p, fi)
	if err != nil {
		t.Fatal(err)
	}
	if s.Content != digest.FromString("x") {
		t.Errorf("content %s", s.Content)
	}
	flush(t, c)
	if db.updates.Load() != 0 {
		t.Error("a path outside the directory was remembered")
	}
}

func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	const files = 64
	for i := range files {
		write(t, filepath.Join(dir, fmt.Sprint(i)), fmt.Sprint("content ", i))
	}
	db := newDB(t)
	for round := range 2 { // cold, then warm
		c := open(t, db, dir)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range files {
					p := filepath.Join(dir, fmt.Sprint((i+g)%files))
					fi, err := os.Lstat(p)
					if err != nil {
						t.Error(err)
						return
					}
					got, err := c.ReadSums(context.Background(), p, fi)
					if err != nil {
						t.Error(err)
						return
					}
					want, _ := fsutil.ReadFileSums(context.Background(), p, fi)
					if got.Content != want.Content {
						t.Errorf("round %d, %s: %s, want %s", round, p, got.Content, want.Content)
					}
				}
			}()
		}
		wg.Wait()
		s := c.Stats()
		if s.Hits+s.Misses != 8*files {
			t.Errorf("round %d: %+v, want %d answers", round, s, 8*files)
		}
		if round == 1 && s.Misses != 0 {
			t.Errorf("warm round read %d files", s.Misses)
		}
		flush(t, c)
	}
}

func TestRecordEncoding(t *testing.T) {
	k := keyOf(&syscall.Stat_t{Size: 5, Ino: 7, Mode: 0o100644})
	for _, s := range []fsutil.FileSums{
		{},
		{Content: digest.FromString("x")},
		{Link: "../target"},
		{Content: digest.FromString("y"), Xattrs: []fsutil.Xattr{{Name: "user.a", Value: []byte{0, 1}}, {Name: "security.capability", Value: nil}}},
	} {
		v := encode(k, s)
		got, ok := decode(v, k)
		if !ok || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", normalize(s)) {
			t.Errorf("round trip of %+v: %+v, %v", s, got, ok)
		}
		if _, ok := decode(v, keyOf(&syscall.Stat_t{Size: 6, Ino: 7, Mode: 0o100644})); ok {
			t.Errorf("%+v: decoded for another stat", s)
		}
		for n := range len(v) {
			if _, ok := decode(v[:n], k); ok {
				t.Errorf("%+v: decoded from %d of %d bytes", s, n, len(v))
			}
		}
	}
}

// normalize gives xattr values as decode does (never nil).
func normalize(s fsutil.FileSums) fsutil.FileSums {
	for i := range s.Xattrs {
		if s.Xattrs[i].Value == nil {
			s.Xattrs[i].Value = []byte{}
		}
	}
	return s
}

// has reports whether Open loaded a record of rel.
func (c *Cache) has(rel string) bool {
	_, ok := c.loaded.find(rel)
	return ok
}

// chunkContents returns the bucket of dir as key -> paths in the chunk.
func chunkContents(t *testing.T, db meta.DB, dir string) map[string][]string {
	t.Helper()
	abs, _ := filepath.Abs(dir)
	out := map[string][]string{}
	err := db.View(context.Background(), func(tx *bbolt.Tx) error {
		top := tx.Bucket(bucketName)
		if top == nil {
			return nil
		}
		b := top.Bucket([]byte(abs))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			r, ok := indexRun(bytes.Clone(v))
			if !ok {
				t.Errorf("chunk %q does not decode", k)
				return nil
			}
			var rels []string
			for i := range r.len() {
				rels = append(rels, r.rel(i))
			}
			if len(rels) == 0 || rels[0] != string(k) {
				t.Errorf("chunk %q starts with %q", k, rels)
			}
			out[string(k)] = rels
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestApplyChanges(t *testing.T) {
	rec := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000) }
	name := func(i int) string { return fmt.Sprintf("d/f%05d", i) }
	db := newDB(t)
	dir := "/ctx"
	apply := func(changes ...change) {
		t.Helper()
		slices.SortFunc(changes, func(a, b change) int { return strings.Compare(a.rel, b.rel) })
		err := db.Update(context.Background(), func(tx *bbolt.Tx) error {
			top, err := tx.CreateBucketIfNotExists(bucketName)
			if err != nil {
				return err
			}
			b, err := top.CreateBucketIfNotExists([]byte(dir))
			if err != nil {
				return err
			}
			return applyChanges(b, changes)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// all returns every path in key order, checking the run is sorted and
	// the chunks are about chunkSize.
	all := func() []string {
		t.Helper()
		chunks := chunkContents(t, db, dir)
		var out []string
		for _, k := range slices.Sorted(maps.Keys(chunks)) {
			out = append(out, chunks[k]...)
		}
		if !slices.IsSorted(out) {
			t.Errorf("chunks out of order: %v", out)
		}
		if n := len(out); n > 0 && len(chunks) > (n*1010)/chunkSize+2 {
			t.Errorf("%d entries in %d chunks", n, len(chunks))
		}
		return out
	}
	want := map[string]bool{}
	check := func(what string) {
		t.Helper()
		got := all()
		if !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
			t.Errorf("%s: %d entries, want %d", what, len(got), len(want))
		}
	}

	// A first build: many entries, cut into chunks.
	var changes []change
	for i := 100; i < 400; i++ {
		changes = append(changes, change{rel: name(i), val: rec(i)})
		want[name(i)] = true
	}
	apply(changes...)
	check("first")
	if n := len(chunkContents(t, db, dir)); n < 4 {
		t.Fatalf("%d chunks for 300 KB", n)
	}
	// Before the first chunk, after the last, in the middle; a replaced
	// record; a chunk's first entry deleted.
	firstKeys := slices.Sorted(maps.Keys(chunkContents(t, db, dir)))
	apply(
		change{rel: name(1), val: rec(1)},
		change{rel: name(999), val: rec(9)},
		change{rel: name(250) + "x", val: rec(2)},
		change{rel: name(300), val: rec(3)},
		change{rel: firstKeys[2]},
	)
	want[name(1)], want[name(999)], want[name(250)+"x"] = true, true, true
	delete(want, firstKeys[2])
	check("edits")
	// A run of deletions empties chunks.
	changes = nil
	for i := 100; i < 380; i++ {
		changes = append(changes, change{rel: name(i)})
		delete(want, name(i))
	}
	apply(changes...)
	check("deletions")
	// Replaced values are the new ones.
	chunks := chunkContents(t, db, dir)
	err := db.View(context.Background(), func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketName).Bucket([]byte(dir))
		for k := range chunks {
			r, _ := indexRun(bytes.Clone(b.Get([]byte(k))))
			for i := range r.len() {
				if r.rel(i) == name(999) && r.val(i)[0] != 9 {
					t.Errorf("%s: record %d, want the new one", r.rel(i), r.val(i)[0])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestChunkCorruptionRecovers(t *testing.T) {
	dir := sampleTree(t)
	db := newDB(t)
	want, entries := sums(t, dir, nil)
	warmCache(t, db, dir)
	// Garbage in the bucket: the cache reads everything again, gives the
	// same answers, and Flush writes the bucket anew.
	abs, _ := filepath.Abs(dir)
	err := db.Update(context.Background(), func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketName).Bucket([]byte(abs)).Put([]byte("zzz"), []byte{0xff, 0xff, 0xff})
	})
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, db, dir)
	if d, _ := sums(t, dir, c); d != want {
		t.Fatalf("digest %s, want %s", d, want)
	}
	if s := c.Stats(); s.Misses != int64(len(entries)) {
		t.Errorf("%+v: want everything read again", s)
	}
	flush(t, c)
	if _, ok := chunkContents(t, db, dir)["zzz"]; ok {
		t.Error("the bad chunk is still there")
	}
	c = open(t, db, dir)
	sums(t, dir, c)
	if s := c.Stats(); s.Misses != 0 {
		t.Errorf("after the rewrite: %+v", s)
	}
}

// TestFlushMergesWithOtherBuilds: two caches of one context opened at the
// same time (two builds) each flush what they read; neither loses the
// other's records.
func TestFlushMergesWithOtherBuilds(t *testing.T) {
	dir := t.TempDir()
	for i := range 40 {
		write(t, filepath.Join(dir, fmt.Sprintf("f%02d", i)), fmt.Sprint(i))
	}
	db := newDB(t)
	a, b := open(t, db, dir), open(t, db, dir)
	read := func(c *Cache, from, to int) {
		for i := from; i < to; i++ {
			p := filepath.Join(dir, fmt.Sprintf("f%02d", i))
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.ReadSums(context.Background(), p, fi); err != nil {
				t.Fatal(err)
			}
		}
	}
	read(a, 0, 25)
	read(b, 15, 40)
	flush(t, a)
	flush(t, b)
	c := open(t, db, dir)
	read(c, 0, 40)
	if s := c.Stats(); s.Misses != 0 {
		t.Errorf("%+v: records lost between the two flushes", s)
	}
}

func TestOldBucketDropped(t *testing.T) {
	dir := sampleTree(t)
	db := newDB(t)
	err := db.Update(context.Background(), func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(oldBuckets[0])
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	warmCache(t, db, dir)
	err = db.View(context.Background(), func(tx *bbolt.Tx) error {
		if tx.Bucket(oldBuckets[0]) != nil {
			t.Error("the old encoding's bucket is still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBigBuffer(t *testing.T) {
	for _, n := range []int{0, 1, hugePage - 1, hugePage, hugePage + 1, 3*hugePage + 12345} {
		b := bigBuffer(n)
		if len(b) != 0 || cap(b) < n {
			t.Errorf("bigBuffer(%d): len %d cap %d", n, len(b), cap(b))
		}
		b = append(b, make([]byte, n)...) // no reallocation, no overrun
	}
}

// The directory is the key of its records and the prefix of the paths
// looked up: a relative or unclean one ("." gave "./", which no walked path
// starts with) would never hit, so it is refused.
func TestOpenWantsAbsoluteCleanPath(t *testing.T) {
	db := newDB(t)
	dir := t.TempDir()
	for _, bad := range []string{".", "./", "..", "sub/", "sub", dir + "/", dir + "/.", dir + "/../" + filepath.Base(dir)} {
		if _, err := Open(context.Background(), db, bad); err == nil || !strings.Contains(err.Error(), "not an absolute, clean path") {
			t.Errorf("Open(%q): %v", bad, err)
		}
	}
	c := open(t, db, dir)
	flush(t, c)
}
