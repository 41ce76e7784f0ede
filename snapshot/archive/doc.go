// Package archive converts between directories and OCI layer tars.
//
// WriteLayer turns a directory in overlay form (a RUN's overlay upper dir, or
// a committed layer dir) into a deterministic layer tar, translating overlay
// whiteouts (0/0 character devices, trusted.overlay.opaque) into OCI ones
// (".wh.name", ".wh..wh..opq"). Apply goes the other way: into a per-layer
// directory in overlay form, or onto a full root filesystem where whiteouts
// delete. Every path Apply touches is resolved inside its target directory,
// whatever the tar's names, links and symlinks say.
//
// Neither direction trusts a layer's size or shape: Apply charges every
// entry against the free space of the filesystem it writes to and refuses
// one that would eat into a reserve (ErrNoSpace), so a gzip bomb or an
// entry claiming terabytes fails before the disk fills; and the memory
// both directions use does not grow with the number of entries (directory
// times past a few thousand go to a temporary file; a directory being
// written is held as names only).
//
// WriteLayer reads the directory through descriptors (openat, fstatat,
// getdents) rather than paths and the os package: a layer of 20,000 small
// files is otherwise mostly path lookups and poller bookkeeping.
//
// Compression is not this package's business: callers pipe the tar through
// pgzip (or zstd).
//
// It imports internal packages only; it must not import snapshot, store or
// anything above them.
package archive
