package statcache

import (
	"encoding/binary"
	"syscall"
	"unsafe"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/fsutil"
)

// statKey is the part of a stat a record is valid for, encoded as it
// starts a record: size, mtime, ctime (nanoseconds), inode, mode.
type statKey [statKeyLen]byte

const statKeyLen = 8 + 8 + 8 + 8 + 4

func keyOf(st *syscall.Stat_t) statKey {
	var k statKey
	binary.LittleEndian.PutUint64(k[0:], uint64(st.Size))
	binary.LittleEndian.PutUint64(k[8:], uint64(st.Mtim.Nano()))
	binary.LittleEndian.PutUint64(k[16:], uint64(st.Ctim.Nano()))
	binary.LittleEndian.PutUint64(k[24:], st.Ino)
	binary.LittleEndian.PutUint32(k[32:], st.Mode)
	return k
}

// encode makes a record: the stat key, then the content digest, the
// symlink target and the xattrs, each length-prefixed (uvarint).
func encode(k statKey, s fsutil.FileSums) []byte {
	n := statKeyLen + len(s.Content) + len(s.Link) + 3*binary.MaxVarintLen64
	for _, x := range s.Xattrs {
		n += len(x.Name) + len(x.Value) + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, k[:]...)
	b = appendString(b, string(s.Content))
	b = appendString(b, s.Link)
	b = binary.AppendUvarint(b, uint64(len(s.Xattrs)))
	for _, x := range s.Xattrs {
		b = appendString(b, x.Name)
		b = appendString(b, string(x.Value))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decode returns the sums of record v if it was made for stat key k. A
// record that does not decode counts as made for another stat.
func decode(v []byte, k statKey) (fsutil.FileSums, bool) {
	if len(v) < statKeyLen || string(v[:statKeyLen]) != string(k[:]) {
		return fsutil.FileSums{}, false
	}
	r := reader{b: v[statKeyLen:]}
	var s fsutil.FileSums
	s.Content = digest.Digest(r.string())
	s.Link = r.string()
	if n := r.uvarint(); n > uint64(len(r.b)) {
		r.bad = true // each takes two bytes at least
	} else if n > 0 {
		s.Xattrs = make([]fsutil.Xattr, 0, n)
		for range n {
			name := r.string()
			s.Xattrs = append(s.Xattrs, fsutil.Xattr{Name: name, Value: r.bytes()})
		}
	}
	if r.bad || len(r.b) != 0 {
		return fsutil.FileSums{}, false
	}
	return s, true
}

type reader struct {
	b   []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns the next length-prefixed field, sharing r's memory.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad = true
		r.b = nil
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

// string returns the next length-prefixed field without copying it:
// records are never modified once made (Open copies them out of the
// database, encode makes each anew), and with a string per file a warm
// build would otherwise spend a good part of its time allocating.
func (r *reader) string() string {
	b := r.bytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
