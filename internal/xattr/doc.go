// Package xattr reads a file's extended attributes, by path (not following
// a final symlink) or through an open descriptor, with every buffer capped:
// a hostile file in a build context or a layer cannot make a reader
// allocate without bound. fsutil (digests, copies) and snapshot/archive
// (layer tars) both read xattrs through it.
//
// It imports only the standard library and golang.org/x/sys.
package xattr
