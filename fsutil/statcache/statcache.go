package statcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/bbolt"

	"github.com/builder-dev/builder/fsutil"
	"github.com/builder-dev/builder/store/meta"
)

// bucketName holds one nested bucket per context directory (its absolute
// path), made of chunks (see chunk.go). The version is in the name: a new
// encoding starts from an empty cache.
var bucketName = []byte("statcache.v2")

// oldBuckets are the buckets of earlier encodings, deleted by the first
// Flush that writes.
var oldBuckets = [][]byte{[]byte("statcache.v1")}

// racyWindow is how recent a file's ctime may be for its record to be
// kept. A file written again in the same clock tick as the ctime we saw
// keeps that ctime, so a record made within a tick of a write could
// describe content that is already gone without its stat showing it (git's
// "racily clean" entries). Linux ticks are a few milliseconds, but some
// file systems keep times to the second (or two, FAT): such files are read
// again on the next build instead, once, after which they are old enough.
const racyWindow = 2 * time.Second

// Cache is the stat cache of one context directory. It is safe for
// concurrent use.
type Cache struct {
	db     meta.DB
	dir    string // the directory: host paths start with it
	prefix string // dir with a trailing separator
	key    []byte // the bucket of the directory: its path

	// loaded is the bucket as Open read it, never written afterwards, so
	// lookups take no lock. seen marks the records asked for this
	// session, whose files therefore still exist.
	loaded run
	seen   []atomic.Bool
	// reset is set when the bucket did not decode: Flush then starts it
	// over.
	reset bool

	mu       sync.Mutex
	fresh    map[string][]byte // records made this session
	dirty    map[string]bool   // fresh records Flush has not written yet
	inflight map[string]*call  // reads in progress, for collapsing duplicates

	racyWindow time.Duration
	now        func() time.Time

	// loadDone is closed when loaded and seen are ready (or loadErr is
	// set).
	loadDone chan struct{}
	loadErr  error

	hits, misses atomic.Int64
}

// call is one read in progress that concurrent callers for the same file
// wait for rather than read it too.
type call struct {
	key  statKey
	done chan struct{}
	sums fsutil.FileSums
	err  error
}

// Open returns the stat cache of the context directory dir, an absolute,
// clean path (the host paths ReadSums is given must start with it). It
// reads the records from db in the background: a build opens it first
// thing and walks the context while the records load. ctx bounds that
// load, so it must last until Flush, which needs it; errors loading come
// back from the first ReadSums or Flush that needs the records.
func Open(ctx context.Context, db meta.DB, dir string) (*Cache, error) {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return nil, fmt.Errorf("open stat cache of %s: not an absolute, clean path", dir)
	}
	c := &Cache{
		db:         db,
		dir:        dir,
		key:        []byte(dir),
		fresh:      map[string][]byte{},
		dirty:      map[string]bool{},
		inflight:   map[string]*call{},
		racyWindow: racyWindow,
		now:        time.Now,
		loadDone:   make(chan struct{}),
	}
	c.prefix = c.dir
	if !strings.HasSuffix(c.prefix, "/") {
		c.prefix += "/"
	}
	go func() {
		defer close(c.loadDone)
		if err := c.load(ctx); err != nil {
			c.loadErr = fmt.Errorf("open stat cache of %s: %w", dir, err)
		}
	}()
	return c, nil
}

// load reads the directory's records in one transaction: its chunks, in
// key order, copied out of the memory map into one block (they must be
// copied before the transaction ends), then indexed.
func (c *Cache) load(ctx context.Context) error {
	var arena []byte
	err := c.db.View(ctx, func(tx *bbolt.Tx) error {
		top := tx.Bucket(bucketName)
		if top == nil {
			return nil
		}
		b := top.Bucket(c.key)
		if b == nil {
			return nil
		}
		cur := b.Cursor()
		size := 0
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			size += len(v)
		}
		arena = bigBuffer(size)
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			arena = append(arena, v...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r, ok := indexRun(arena)
	if !ok {
		// Not what Flush writes: read everything again, and have
		// Flush write the bucket anew.
		r, c.reset = run{}, true
	}
	c.loaded = r
	c.seen = make([]atomic.Bool, r.len())
	return nil
}

// wait waits until the records are loaded.
func (c *Cache) wait(ctx context.Context) error {
	select {
	case <-c.loadDone:
		return c.loadErr
	default:
	}
	select {
	case <-c.loadDone:
		return c.loadErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReadSums returns what fsutil.ReadFileSums would read from hostPath, whose
// Lstat is fi, from the record of the file when its stat still matches.
// It fits fsutil.CopyRequest.ReadSums. Paths outside the cache's directory
// are read and not remembered. The result is shared: do not modify it.
func (c *Cache) ReadSums(ctx context.Context, hostPath string, fi os.FileInfo) (fsutil.FileSums, error) {
	rel, ok := c.rel(hostPath)
	st, isStat := fi.Sys().(*syscall.Stat_t)
	if !ok || !isStat {
		c.misses.Add(1)
		return fsutil.ReadFileSums(ctx, hostPath, fi)
	}
	if err := c.wait(ctx); err != nil {
		return fsutil.FileSums{}, err
	}
	key := keyOf(st)
	if i, ok := c.loaded.find(rel); ok {
		c.seen[i].Store(true)
		if sums, ok := decode(c.loaded.val(i), key); ok {
			c.hits.Add(1)
			return sums, nil
		}
	}
	c.mu.Lock()
	if v, ok := c.fresh[rel]; ok {
		if sums, ok := decode(v, key); ok {
			c.mu.Unlock()
			c.hits.Add(1)
			return sums, nil
		}
	}
	if cl, ok := c.inflight[rel]; ok && cl.key == key {
		c.mu.Unlock()
		select {
		case <-cl.done:
			c.hits.Add(1)
			return cl.sums, cl.err
		case <-ctx.Done():
			return fsutil.FileSums{}, ctx.Err()
		}
	}
	cl := &call{key: key, done: make(chan struct{})}
	c.inflight[rel] = cl
	c.mu.Unlock()
	c.misses.Add(1)
	start := c.now()
	cl.sums, cl.err = fsutil.ReadFileSums(ctx, hostPath, fi)
	c.mu.Lock()
	if c.inflight[rel] == cl {
		delete(c.inflight, rel)
	}
	if cl.err == nil && !c.racy(st, start) {
		c.fresh[rel] = encode(key, cl.sums)
		c.dirty[rel] = true
	}
	c.mu.Unlock()
	close(cl.done)
	return cl.sums, cl.err
}

// racy reports whether the file was changed so shortly before start (when
// reading it began) that a later write could keep the same ctime.
func (c *Cache) racy(st *syscall.Stat_t, start time.Time) bool {
	ctime := time.Unix(st.Ctim.Unix())
	return !ctime.Before(start.Add(-c.racyWindow))
}

// rel returns hostPath relative to the cache's directory, slash separated.
func (c *Cache) rel(hostPath string) (string, bool) {
	if hostPath == c.dir {
		return ".", true
	}
	rel, ok := strings.CutPrefix(hostPath, c.prefix)
	if !ok || rel == "" {
		return "", false
	}
	return rel, true
}

// Stats counts the answers given so far.
type Stats struct {
	Hits   int64 // answered from a record
	Misses int64 // read from the file
}

// Stats returns how many answers came from records and how many from
// reading files.
func (c *Cache) Stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load()}
}

// Flush writes the records made since Open (or the last Flush) in one
// transaction; with none it does not touch the database. When it writes,
// it also drops the records of files that are gone (those Open loaded
// that no lookup asked for and that no longer lstat), and the buckets of
// context directories that no longer exist, so that neither grows without
// bound.
func (c *Cache) Flush(ctx context.Context) error {
	if err := c.wait(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	puts := make(map[string][]byte, len(c.dirty))
	for rel := range c.dirty {
		puts[rel] = c.fresh[rel]
	}
	reset := c.reset
	c.mu.Unlock()
	if len(puts) == 0 {
		return nil
	}
	changes := make([]change, 0, len(puts))
	for rel, v := range puts {
		changes = append(changes, change{rel: rel, val: v})
	}
	for i := range c.loaded.len() {
		if c.seen[i].Load() {
			continue
		}
		rel := c.loaded.rel(i)
		if puts[rel] != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := os.Lstat(filepath.Join(c.dir, rel)); errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			changes = append(changes, change{rel: strings.Clone(rel)})
		}
	}
	slices.SortFunc(changes, func(a, b change) int { return strings.Compare(a.rel, b.rel) })
	err := c.db.Update(ctx, func(tx *bbolt.Tx) error {
		for _, name := range oldBuckets {
			if tx.Bucket(name) != nil {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		top, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		if err := pruneDirs(top, c.key); err != nil {
			return err
		}
		if reset && top.Bucket(c.key) != nil {
			if err := top.DeleteBucket(c.key); err != nil {
				return err
			}
		}
		b, err := top.CreateBucketIfNotExists(c.key)
		if err != nil {
			return err
		}
		return applyChanges(b, changes)
	})
	if err != nil {
		return fmt.Errorf("write stat cache of %s: %w", c.dir, err)
	}
	c.mu.Lock()
	c.reset = false
	for rel, v := range puts {
		// A record made again since the copy above stays dirty.
		if string(c.fresh[rel]) == string(v) {
			delete(c.dirty, rel)
		}
	}
	c.mu.Unlock()
	return nil
}

// pruneDirs deletes the buckets of context directories that no longer
// exist, except keep's.
func pruneDirs(top *bbolt.Bucket, keep []byte) error {
	var gone [][]byte
	err := top.ForEachBucket(func(k []byte) error {
		if string(k) == string(keep) {
			return nil
		}
		if _, err := os.Lstat(string(k)); errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			gone = append(gone, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range gone {
		if err := top.DeleteBucket(k); err != nil {
			return err
		}
	}
	return nil
}
