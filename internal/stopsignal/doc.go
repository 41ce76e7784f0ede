// Package stopsignal reads a container's STOPSIGNAL as Docker's runtime
// does. The container runtime uses it to stop a container and the
// Dockerfile frontend to check a commit's or import's --change STOPSIGNAL
// (a Dockerfile build keeps Docker 20.10's own, looser check, see
// frontend/dockerfile's validSignal).
//
// It imports only the standard library and golang.org/x/sys.
package stopsignal
