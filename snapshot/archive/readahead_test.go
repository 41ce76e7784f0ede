package archive

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadAheadBytes(t *testing.T) {
	data := make([]byte, 3*readAheadChunk*readAheadChunks+123)
	rand.NewChaCha8([32]byte{1}).Read(data)
	for _, c := range []struct {
		Name string
		R    func() io.Reader
	}{
		{Name: "whole", R: func() io.Reader { return bytes.NewReader(data) }},
		{Name: "one byte at a time", R: func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:5000])) }},
		{Name: "data with EOF", R: func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }},
		{Name: "half reads", R: func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }},
	} {
		t.Run(c.Name, func(t *testing.T) {
			want, _ := io.ReadAll(c.R())
			ra := newReadAhead(c.R())
			defer ra.close()
			if err := iotest.TestReader(ra, want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestReadAheadError: the bytes before a failure come out, then the
// failure, again at every later read.
func TestReadAheadError(t *testing.T) {
	boom := errors.New("boom")
	ra := newReadAhead(io.MultiReader(bytes.NewReader([]byte("abc")), iotest.ErrReader(boom)))
	defer ra.close()
	got, err := io.ReadAll(ra)
	if string(got) != "abc" || !errors.Is(err, boom) {
		t.Fatalf("ReadAll: %q, %v; want \"abc\", boom", got, err)
	}
	if n, err := ra.Read(make([]byte, 8)); n != 0 || !errors.Is(err, boom) {
		t.Fatalf("Read after the error: %d, %v", n, err)
	}
}

// countingReader is an endless stream that counts its reads and, while
// gate is set, says on in that it is in one and waits on gate.
type countingReader struct {
	reads    atomic.Int64
	in, gate chan struct{}
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.gate != nil {
		c.in <- struct{}{}
		<-c.gate
	}
	c.reads.Add(1)
	return len(p), nil
}

// TestReadAheadCloseStops: close returns only once the goroutine has
// stopped reading (Apply's caller reads the stream next), both when it is
// waiting for room and when it is inside a Read.
func TestReadAheadCloseStops(t *testing.T) {
	t.Run("waiting for room", func(t *testing.T) {
		r := &countingReader{}
		ra := newReadAhead(r)
		if _, err := ra.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		ra.close()
		n := r.reads.Load()
		if n > readAheadChunks+1 {
			t.Errorf("%d reads ahead, want at most %d", n, readAheadChunks+1)
		}
		time.Sleep(10 * time.Millisecond)
		if m := r.reads.Load(); m != n {
			t.Errorf("%d reads after close", m-n)
		}
	})
	t.Run("inside a read", func(t *testing.T) {
		r := &countingReader{in: make(chan struct{}, 1), gate: make(chan struct{})}
		ra := newReadAhead(r)
		<-r.in
		closed := make(chan struct{})
		go func() { ra.close(); close(closed) }()
		select {
		case <-closed:
			t.Fatal("close returned while a read was under way")
		case <-time.After(20 * time.Millisecond):
		}
		close(r.gate) // the read returns, and no other starts
		<-closed
		if n := r.reads.Load(); n != 1 {
			t.Errorf("%d reads, want 1", n)
		}
	})
}
