package unixutil

import "golang.org/x/sys/unix"

// IgnoringEINTR calls fn until it returns something other than EINTR, and
// returns that.
func IgnoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// IgnoringEINTRIO is IgnoringEINTR for a read or write call such as
// unix.Read: it takes the call and its arguments rather than a closure, so
// that the hot loops that copy and hash file content allocate nothing.
func IgnoringEINTRIO(fn func(fd int, p []byte) (int, error), fd int, p []byte) (int, error) {
	for {
		n, err := fn(fd, p)
		if err != unix.EINTR {
			return n, err
		}
	}
}
