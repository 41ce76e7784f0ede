package registry

import (
	"errors"
	"net"
	"net/url"
	"syscall"
	"testing"
)

// A request that failed because its body could not be read (a local blob
// that rotted) is not blamed on the network; one that could not connect,
// or lost its connection, is.
func TestWrapURLErrorCause(t *testing.T) {
	local := &url.Error{Op: "Patch", URL: "http://r/v2/x/blobs/uploads/1", Err: errors.New("blob sha256:ab: content does not match its digest")}
	if err := Wrap("push", "r/x:1", "r", local); errors.Is(err, ErrUnreachable) {
		t.Errorf("a body's own failure: %v", err)
	}
	for _, cause := range []error{
		&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED},
		syscall.ECONNRESET,
	} {
		err := Wrap("push", "r/x:1", "r", &url.Error{Op: "Head", URL: "http://r/v2/", Err: cause})
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("%v: not unreachable: %v", cause, err)
		}
	}
}
