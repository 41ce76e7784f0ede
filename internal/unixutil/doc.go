// Package unixutil holds the one retry-on-EINTR loop every raw system call
// of the project goes through. The os package retries interrupted calls
// itself; code that calls golang.org/x/sys/unix directly (for speed, or
// for calls os lacks) must do the same, since the Go runtime's own signals
// (goroutine preemption, SIGURG) interrupt slow calls at any time.
//
// It imports only the standard library and golang.org/x/sys.
package unixutil
