package unixutil

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestIgnoringEINTR(t *testing.T) {
	calls := 0
	err := IgnoringEINTR(func() error {
		calls++
		if calls < 3 {
			return unix.EINTR
		}
		return unix.ENOENT
	})
	if !errors.Is(err, unix.ENOENT) || calls != 3 {
		t.Fatalf("got %v after %d calls", err, calls)
	}
	if err := IgnoringEINTR(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestIgnoringEINTRIO(t *testing.T) {
	calls := 0
	read := func(fd int, p []byte) (int, error) {
		calls++
		if calls == 1 {
			return 0, unix.EINTR
		}
		return copy(p, "hi"), nil
	}
	buf := make([]byte, 4)
	if n, err := IgnoringEINTRIO(read, 7, buf); n != 2 || err != nil || calls != 2 {
		t.Fatalf("got %d, %v after %d calls", n, err, calls)
	}
}
