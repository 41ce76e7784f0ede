// Package du measures what a file or tree takes on disk, as du(1) does,
// and removes such a tree with the measure: the store, the snapshotter
// and the garbage collector count what they free with it.
//
// It imports only the standard library.
package du
