// Package images holds the policies over the store's images that need more
// than the store knows: removing an image (docker rmi: what is untagged,
// what is deleted, and which containers keep an image unless forced).
// The store does the writes; package container says who uses an image.
//
// It imports store, container and internal packages only; it must not
// import the solver, frontend, source, exporter, gc or cmd. It prints
// nothing: callers are told each step through callbacks.
package images
