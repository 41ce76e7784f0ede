package archive

import (
	"io"
	"sync"
)

// Read-ahead sizes: a few chunks in flight keep the reading goroutine busy
// while Apply waits on the filesystem, and bound the memory to 1 MiB.
const (
	readAheadChunk  = 256 << 10
	readAheadChunks = 4
)

var readAheadBufs = sync.Pool{New: func() any { b := make([]byte, readAheadChunk); return &b }}

// readAhead reads r in a goroutine of its own, ahead of its consumer. The
// layer stream under Apply does work of its own per byte (a store blob is
// hashed as it is read, a pulled one also decompressed): done here, that
// work overlaps the syscalls that create the entries instead of adding to
// them. Bytes and errors come out of Read exactly as r gave them.
//
// close stops the goroutine and waits for its last r.Read to return, so
// that the caller may read r again: r's bytes read ahead but not consumed
// are lost, which is fine where Apply uses it (they were read, hence
// hashed, and Apply's caller only drains what is left).
type readAhead struct {
	full chan chunk    // chunks read, in order
	free chan *[]byte  // buffers to read into
	stop chan struct{} // closed by close
	done chan struct{} // closed when the goroutine returns
	cur  chunk         // the chunk being consumed
	off  int           // how much of cur.b was consumed
	bufs [readAheadChunks]*[]byte
}

type chunk struct {
	buf *[]byte
	n   int
	err error
}

func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{
		full: make(chan chunk, readAheadChunks),
		free: make(chan *[]byte, readAheadChunks),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for i := range ra.bufs {
		ra.bufs[i] = readAheadBufs.Get().(*[]byte)
		ra.free <- ra.bufs[i]
	}
	go ra.fill(r)
	return ra
}

func (ra *readAhead) fill(r io.Reader) {
	defer close(ra.done)
	for {
		select {
		case <-ra.stop: // before a free buffer, which is ready too
			return
		default:
		}
		var buf *[]byte
		select {
		case buf = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := r.Read(*buf)
		if n == 0 && err == nil {
			ra.free <- buf // a reader may return nothing; ask again
			continue
		}
		select {
		case ra.full <- chunk{buf: buf, n: n, err: err}:
		case <-ra.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for ra.cur.buf == nil || ra.off == ra.cur.n {
		if ra.cur.err != nil {
			return 0, ra.cur.err
		}
		if ra.cur.buf != nil {
			ra.free <- ra.cur.buf
			ra.cur.buf = nil
		}
		ra.cur, ra.off = <-ra.full, 0
	}
	n := copy(p, (*ra.cur.buf)[ra.off:ra.cur.n])
	ra.off += n
	return n, nil
}

// close stops reading ahead; r is not read once it returns.
func (ra *readAhead) close() {
	close(ra.stop)
	<-ra.done
	for _, b := range ra.bufs {
		readAheadBufs.Put(b)
	}
}
