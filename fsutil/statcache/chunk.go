package statcache

import (
	"bytes"
	"encoding/binary"
	"math"
	"sort"
	"strings"
	"unsafe"

	"go.etcd.io/bbolt"
)

// A context directory's bucket holds its records in chunks: each value is
// a run of entries (uvarint length + slash path relative to the directory,
// uvarint length + record), sorted by path, and its key is the path of its
// first entry, so the chunks in key order are one sorted run.
//
// Why not a key per file: a warm build loads every record of the context,
// and with 20,000 files, 20,000 cursor steps and as many map insertions
// cost more than the walk they serve. Fifty-odd values copied into one
// block and indexed in place cost a fraction of it, and a changed file
// rewrites one chunk, a few tens of kilobytes.

// chunkSize is the size chunks are cut to when written.
const chunkSize = 64 << 10

// run is a sorted run of entries decoded in place: the paths and records
// are slices of one block, which is never modified once indexed.
type run struct {
	arena []byte
	spans []entrySpan
}

type entrySpan struct {
	rel, relLen, val, valLen uint32
}

// indexRun indexes the entries in b, which must be sorted strictly by
// path; ok is false when b is not such a run.
func indexRun(b []byte) (run, bool) {
	if len(b) > math.MaxUint32 {
		return run{}, false
	}
	r := run{arena: b, spans: make([]entrySpan, 0, len(b)/96)}
	var prev []byte
	for off := 0; off < len(b); {
		rel, n := field(b[off:])
		if n == 0 {
			return run{}, false
		}
		relOff := off + n - len(rel)
		off += n
		val, n := field(b[off:])
		if n == 0 {
			return run{}, false
		}
		valOff := off + n - len(val)
		off += n
		if prev != nil && bytes.Compare(prev, rel) >= 0 {
			return run{}, false
		}
		prev = rel
		r.spans = append(r.spans, entrySpan{uint32(relOff), uint32(len(rel)), uint32(valOff), uint32(len(val))})
	}
	return r, true
}

// field decodes a length-prefixed field at the start of b and returns it
// with the bytes it took, 0 when it does not decode.
func field(b []byte) ([]byte, int) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, 0
	}
	return b[n : n+int(l)], n + int(l)
}

func (r *run) len() int { return len(r.spans) }

// rel returns entry i's path, sharing the run's memory.
func (r *run) rel(i int) string {
	sp := r.spans[i]
	if sp.relLen == 0 {
		return ""
	}
	return unsafe.String(&r.arena[sp.rel], sp.relLen)
}

// val returns entry i's record, sharing the run's memory.
func (r *run) val(i int) []byte {
	sp := r.spans[i]
	return r.arena[sp.val : sp.val+sp.valLen : sp.val+sp.valLen]
}

// find returns the index of the entry for rel.
func (r *run) find(rel string) (int, bool) {
	lo, hi := 0, len(r.spans)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.rel(m) < rel {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(r.spans) && r.rel(lo) == rel
}

// change is a record to write, or with val nil, to delete.
type change struct {
	rel string
	val []byte
}

// applyChanges writes changes, sorted by path, into the chunks of b: each
// chunk that a change falls in is read, merged and written again, cut
// anew to chunkSize; one left smaller than half of that takes in the
// chunks after it, so that deletions do not leave the bucket in crumbs.
// The chunks are read from b itself, inside the transaction, not from what
// Open loaded: another build may have written since.
func applyChanges(b *bbolt.Bucket, changes []change) error {
	var keys [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if v != nil {
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	var dels [][]byte
	var puts []chunk
	if len(keys) == 0 {
		puts = cutChunks(merge(nil, nil, 0, changes))
	}
	// The chunk of a path is the last one whose key is not after it;
	// paths before the first chunk go to the first.
	byChunk := make([][]change, len(keys))
	for len(changes) > 0 && len(keys) > 0 {
		rel := changes[0].rel
		ci := max(sort.Search(len(keys), func(i int) bool { return string(keys[i]) > rel })-1, 0)
		n := 1
		for n < len(changes) && (ci+1 == len(keys) || changes[n].rel < string(keys[ci+1])) {
			n++
		}
		byChunk[ci] = changes[:n]
		changes = changes[n:]
	}
	for ci := 0; ci < len(keys); ci++ {
		if len(byChunk[ci]) == 0 {
			continue
		}
		entries := merge(b.Get(keys[ci]), keys, ci, byChunk[ci])
		dels = append(dels, keys[ci])
		for entriesSize(entries) < chunkSize/2 && ci+1 < len(keys) {
			ci++
			entries = append(entries, merge(b.Get(keys[ci]), keys, ci, byChunk[ci])...)
			dels = append(dels, keys[ci])
		}
		puts = append(puts, cutChunks(entries)...)
	}
	// Deletes first: a chunk written may take the key of one it replaces.
	for _, k := range dels {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for _, c := range puts {
		if err := b.Put(c.first, c.val); err != nil {
			return err
		}
	}
	return nil
}

// merge returns the entries of chunk ci, whose value is old, with changes
// (sorted) applied, sorted. A chunk that does not decode as one, or whose
// entries fall outside its key range, is dropped: its files are read
// again.
func merge(old []byte, keys [][]byte, ci int, changes []change) []change {
	r, ok := indexRun(old)
	if !ok || r.len() == 0 || len(keys) == 0 || r.rel(0) != string(keys[ci]) ||
		(ci+1 < len(keys) && r.rel(r.len()-1) >= string(keys[ci+1])) {
		r = run{}
	}
	out := make([]change, 0, r.len()+len(changes))
	i := 0
	for _, ch := range changes {
		for ; i < r.len() && r.rel(i) < ch.rel; i++ {
			out = append(out, r.entry(i))
		}
		if i < r.len() && r.rel(i) == ch.rel {
			i++ // replaced or deleted
		}
		if ch.val != nil {
			out = append(out, ch)
		}
	}
	for ; i < r.len(); i++ {
		out = append(out, r.entry(i))
	}
	return out
}

// entry returns a copy of entry i: the run may live in the database's
// memory map.
func (r *run) entry(i int) change {
	return change{rel: strings.Clone(r.rel(i)), val: bytes.Clone(r.val(i))}
}

type chunk struct{ first, val []byte }

// cutChunks encodes entries as chunks of about chunkSize, as even as they
// come.
func cutChunks(entries []change) []chunk {
	size := entriesSize(entries)
	if size == 0 {
		return nil
	}
	parts := (size + chunkSize - 1) / chunkSize
	target := size / parts
	var out []chunk
	var cur []byte
	var first string
	for _, e := range entries {
		if len(cur) == 0 {
			cur = make([]byte, 0, min(target+entrySize(e), size))
			first = e.rel
		}
		cur = appendString(cur, e.rel)
		cur = binary.AppendUvarint(cur, uint64(len(e.val)))
		cur = append(cur, e.val...)
		if len(cur) >= target {
			out = append(out, chunk{first: []byte(first), val: cur})
			cur = nil
		}
	}
	if len(cur) > 0 {
		out = append(out, chunk{first: []byte(first), val: cur})
	}
	return out
}

func entriesSize(entries []change) int {
	size := 0
	for _, e := range entries {
		size += entrySize(e)
	}
	return size
}

func entrySize(e change) int {
	return 2*binary.MaxVarintLen32 + len(e.rel) + len(e.val)
}
