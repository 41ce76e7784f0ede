package fsutil

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// Entry is one thing a copy writes, as it enters the copy's digest.
type Entry struct {
	// Path is the entry's path as the copy selects it: the source as
	// written (clean, relative to the source root, "." for the root) joined
	// with the path below it. Overlapping sources list a path twice.
	Path string
	// Digest covers the entry's path below its source, type, mode,
	// owner, symlink target, device numbers, hard-link grouping, xattrs
	// and content: whatever of it changes, this changes.
	Digest digest.Digest
}

// Digest computes the content digest of what Copy(ctx, req) would copy, for
// cache keys; see DigestEntries.
func Digest(ctx context.Context, req CopyRequest) (digest.Digest, error) {
	d, _, err := DigestEntries(ctx, req)
	return d, err
}

// Entries lists the entries of a digest, in copy order, each with its own
// digest, so that a cache miss can be explained file by file. The list is
// made when asked for: it costs a string or two per file, which a no-op
// rebuild of a large context does without.
type Entries func() []Entry

// DigestEntries computes the content digest of what Copy(ctx, req) would
// copy, for cache keys, and the digest of each entry that went into it.
//
// Per selected source the digest covers the source path, then per entry
// its path below the source, type, mode (after Chmod), uid/gid (after
// Chown; 0:0 for the context, the source's with KeepOwners), symlink
// target, device numbers, hard-link grouping, xattrs and the sha256 of a
// regular file's content. Mtimes never enter it, nor does Dest: the caller
// keys the instruction's parameters itself.
//
// DstRoot may be empty (the key is computed before a destination exists):
// a numeric Chown is then used as is, and a named one enters the digest as
// written.
//
// What each entry needs read (see FileSums) is read through req.ReadSums
// when set, in parallel, as the walk lists directories; the result is
// folded in walk order, so it does not depend on scheduling.
func DigestEntries(ctx context.Context, req CopyRequest) (digest.Digest, Entries, error) {
	mode, err := parseChmod(req.Chmod)
	if err != nil {
		return "", nil, err
	}
	chown, named, err := req.resolveChown()
	if err != nil {
		return "", nil, err
	}
	c := &copier{req: &req, mode: mode, chown: chown}
	read := req.ReadSums
	if read == nil {
		read = ReadFileSums
	}
	sels, err := req.selectSources(ctx, &digester{c: c, read: read})
	if err != nil {
		return "", nil, err
	}

	// The walk digested all but each selected source itself and the
	// files with other links. Hard-link grouping depends on copy order
	// (the first path of an inode carries the content, the others point
	// at it), so it is settled here, in that order, before the rest is
	// digested in parallel.
	type pending struct {
		it     digestItem
		si, ei int
	}
	var todo []pending
	links := map[inode]string{}
	n := 0
	for si, s := range sels {
		n += len(s.entries)
		for ei, e := range s.entries {
			if e.fi == nil {
				continue
			}
			it := digestItem{sel: s.name, e: *e}
			if isLinked(e.fi) {
				st := e.fi.Sys().(*syscall.Stat_t)
				key := inode{uint64(st.Dev), st.Ino}
				if first, ok := links[key]; ok {
					it.linkTo = first
				} else {
					links[key] = path.Join(s.name, e.rel)
				}
			}
			todo = append(todo, pending{it, si, ei})
		}
	}
	err = forEachParallel(ctx, len(todo), func(ctx context.Context, i int, buf *[]byte) error {
		p := &todo[i]
		sum, b, err := c.entryDigest(ctx, p.it, read, *buf)
		*buf = b
		if err != nil {
			return err
		}
		sels[p.si].entries[p.ei].d = sum
		return nil
	})
	if err != nil {
		return "", nil, err
	}

	// Per source its record, then per entry a marker byte and its raw
	// sum: fixed length, so nothing is ambiguous. The entries are written
	// in batches: one hash write each is most of the fold's time on a
	// large context.
	h := sha256.New()
	if named {
		writeRecord(h, nil, "chown", req.Chown)
	}
	var buf []byte
	batch := make([]byte, 0, 64<<10)
	for _, s := range sels {
		h.Write(batch)
		batch = batch[:0]
		buf = writeRecord(h, buf, "source", s.name)
		for _, e := range s.entries {
			if len(batch)+1+len(e.d) > cap(batch) {
				h.Write(batch)
				batch = batch[:0]
			}
			batch = append(batch, 'e')
			batch = append(batch, e.d[:]...)
		}
	}
	h.Write(batch)
	list := func() []Entry {
		entries := make([]Entry, 0, n)
		for _, s := range sels {
			for _, e := range s.entries {
				entries = append(entries, Entry{Path: selPath(s.name, e.rel), Digest: sumDigest(e.d[:])})
			}
		}
		return entries
	}
	return sumDigest(h.Sum(buf[:0])), list, nil
}

// digester digests entries during the walk, for DigestEntries.
type digester struct {
	c    *copier
	read func(context.Context, string, os.FileInfo) (FileSums, error)
	sel  string // the selected source being walked
}

// forSel returns dg for walking the selected source sel; nil stays nil.
func (dg *digester) forSel(sel string) *digester {
	if dg == nil {
		return nil
	}
	d := *dg
	d.sel = sel
	return &d
}

// isLinked reports whether fi is a regular file with other links, whose
// digest depends on which of its paths comes first.
func isLinked(fi os.FileInfo) bool {
	return fi.Mode().IsRegular() && fi.Sys().(*syscall.Stat_t).Nlink > 1
}

// start starts the goroutines that digest the listings sent to jobs until
// it is closed. On an error they cancel the walk.
func (dg *digester) start(ctx context.Context, cancel func(), jobs <-chan *dirJob) *errgroup.Group {
	var g errgroup.Group
	for range runtime.GOMAXPROCS(0) {
		g.Go(func() error {
			for j := range jobs {
				if err := dg.digestItems(ctx, j.items); err != nil {
					cancel()
					for range jobs {
						// Let the walk finish sending.
					}
					return err
				}
				// No entry points into the lstats any more.
				j.des.recycle()
			}
			return nil
		})
	}
	return &g
}

// digestItems digests a directory's items as listed, leaving each its
// digest and no lstat, except files with other links (see DigestEntries),
// which get a copy of theirs: the walk's buffers are reused.
func (dg *digester) digestItems(ctx context.Context, items []listItem) error {
	bp := recordBufs.Get().(*[]byte)
	defer recordBufs.Put(bp)
	for i := range items {
		e := &items[i].e
		if isLinked(e.fi) {
			si := *e.fi.(*statInfo)
			e.fi = &si
			continue
		}
		sum, b, err := dg.c.entryDigest(ctx, digestItem{sel: dg.sel, e: *e}, dg.read, *bp)
		*bp = b
		if err != nil {
			return err
		}
		e.d, e.fi = sum, nil
	}
	return nil
}

// digestLen is the length of a sha256 digest string.
const digestLen = len("sha256:") + 2*sha256.Size

var recordBufs = sync.Pool{New: func() any { return new([]byte) }}

// digestItem is one entry to digest with what was settled about it.
type digestItem struct {
	sel    string // the selected source it belongs to
	e      entry
	linkTo string // for a hard link to an earlier entry: that entry's path
}

// selPath is an entry's Entry.Path. Both parts are clean already.
func selPath(sel, rel string) string {
	switch {
	case sel == "/" && rel == "":
		return "."
	case sel == "/":
		return rel
	case rel == "":
		return sel[1:]
	}
	return sel[1:] + "/" + rel
}

// forEachParallel calls fn(ctx, i, buf) for i in [0, n) on up to
// GOMAXPROCS goroutines, with a scratch buffer per goroutine; the first
// error cancels the rest. Items are handed out one by one from a counter
// rather than a goroutine each: with a warm stat cache an item costs about
// a microsecond, no more than starting a goroutine would.
func forEachParallel(ctx context.Context, n int, fn func(ctx context.Context, i int, buf *[]byte) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		var buf []byte
		for i := range n {
			if err := fn(ctx, i, &buf); err != nil {
				return err
			}
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range workers {
		g.Go(func() error {
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return nil
				}
				if err := gctx.Err(); err != nil {
					return err
				}
				if err := fn(gctx, i, &buf); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// entryDigest returns the digest of one entry's record. buf is scratch
// space, returned for reuse: a large context has many entries, and each
// costs little more than its allocations.
func (c *copier) entryDigest(ctx context.Context, it digestItem, read func(context.Context, string, os.FileInfo) (FileSums, error), buf []byte) ([sha256.Size]byte, []byte, error) {
	if err := ctx.Err(); err != nil {
		return [sha256.Size]byte{}, buf, err
	}
	e := it.e
	sums, err := read(ctx, e.host, e.fi)
	if err != nil {
		return [sha256.Size]byte{}, buf, fmt.Errorf("%s: %w", path.Join(it.sel, e.rel), err)
	}
	st := e.fi.Sys().(*syscall.Stat_t)
	uid, gid := c.owner(st)
	mode := st.Mode & 0o7777
	if c.mode != nil && e.fi.Mode()&os.ModeSymlink == 0 {
		mode = *c.mode
	}
	if e.fi.Mode()&os.ModeSymlink != 0 {
		mode = 0o777 // a symlink's own mode means nothing on Linux
	}
	r := record(buf[:0])
	r.field("entry")
	r.field(e.rel)
	r.field(typeChar(e.fi.Mode()))
	r.uint(uint64(mode), 8)
	r.uint(uint64(uid), 10)
	r.uint(uint64(gid), 10)
	switch {
	case e.fi.Mode().IsRegular():
		if it.linkTo != "" {
			r.field("hardlink")
			r.field(it.linkTo)
			break
		}
		r.field("content")
		r.field(string(sums.Content))
	case e.fi.Mode()&os.ModeSymlink != 0:
		r.field("link")
		r.field(sums.Link)
	case e.fi.Mode()&(os.ModeDevice|os.ModeCharDevice) != 0:
		r.field("rdev")
		r.uint(st.Rdev, 10)
	}
	for _, x := range sums.Xattrs {
		r.field("xattr")
		r.field(x.Name)
		r.field(hex.EncodeToString(x.Value))
	}
	r = append(r, '\n')
	return sha256.Sum256(r), r, nil
}

// record is one line of a digest: its fields quoted (as strconv.Quote
// does), separated by spaces, so no field can run into the next whatever
// bytes a file name holds.
type record []byte

func (r *record) field(f string) {
	if len(*r) > 0 {
		*r = append(*r, ' ')
	}
	if plainASCII(f) {
		// What strconv.Quote gives for it, without its rune-by-rune work.
		*r = append(*r, '"')
		*r = append(*r, f...)
		*r = append(*r, '"')
		return
	}
	*r = strconv.AppendQuote(*r, f)
}

func (r *record) uint(v uint64, base int) {
	if len(*r) > 0 {
		*r = append(*r, ' ')
	}
	*r = append(*r, '"')
	*r = strconv.AppendUint(*r, v, base)
	*r = append(*r, '"')
}

// plainASCII reports whether strconv.Quote leaves s as it is.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x7f || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// writeRecord writes one record to h. buf is scratch space, returned for
// reuse.
func writeRecord(h hash.Hash, buf []byte, fields ...string) []byte {
	r := record(buf[:0])
	for _, f := range fields {
		r.field(f)
	}
	r = append(r, '\n')
	h.Write(r)
	return r
}

// sumDigest makes the digest of a sha256 sum in one allocation (go-digest
// goes through fmt), which shows with an entry digest per file.
func sumDigest(sum []byte) digest.Digest {
	var sb strings.Builder
	sb.Grow(digestLen)
	appendDigest(&sb, sum)
	return digest.Digest(sb.String())
}

// appendDigest writes the digest string of a sha256 sum to sb.
func appendDigest(sb *strings.Builder, sum []byte) {
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], sum)
	sb.WriteString("sha256:")
	sb.Write(hx[:])
}

func typeChar(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "d"
	case m&os.ModeSymlink != 0:
		return "l"
	case m&os.ModeCharDevice != 0:
		return "c"
	case m&os.ModeDevice != 0:
		return "b"
	case m&os.ModeNamedPipe != 0:
		return "p"
	case m&os.ModeSocket != 0:
		return "s"
	}
	return "f"
}
