// Package storetest helps tests that need images in a store: a store on a
// temporary root, images put in from layer tars, reading them back, and
// go-containerregistry's validator over an OCI layout.
//
// Tests only import it. It imports store, internal/testutil and
// third-party modules only; it must not import anything above the store.
package storetest
