// Package store is the local image store under one root directory:
//
//	content/    an OCI image layout (oci-layout, index.json, blobs/sha256/<hex>)
//	snapshots/  unpacked layers and active snapshots (owned by package snapshot)
//	tmp/        temporary files, on the same filesystem so renames are atomic
//	meta.db     bbolt metadata (cache records, snapshot refs, containers, ...)
//	index.lock  the index's flock; gc.lock the build and GC lock
//
// A Store is two parts and what ties them:
//
//   - Content (content/): blobs, layers and their compression, images,
//     tags, the OCI index, Verify, and Walk, which lists the blobs present
//     so that no one else needs to know where a blob lives:
//     Store.Content. Every use of the content names it, as every use of
//     the database names Meta.
//   - The metadata database (meta.db), package store/meta: Store.Meta. Its
//     users (store/cache, container, fsutil/statcache) take a meta.DB, or
//     a meta.Viewer when they only read; the Store itself is neither, so
//     every write to the database names it.
//   - Around them: the build and GC lock (LockBuild, LockGC, TryLockGC),
//     tmp/ and its sweep (SweepTmp, TmpUsage), and the layer sizes kept in
//     meta.db for the content's layers (LayerInfos, ContentSize).
//
// Every image the store knows is a manifest entry in content/index.json.
// Tags are entries annotated with org.opencontainers.image.ref.name holding
// the full normalized name ("app:latest", "reg:5000/x/y:t"), which skopeo
// (oci:ROOT/content:app:latest) and umoci (--image ROOT/content:app:latest)
// accept as is; an image without a tag keeps one entry without the
// annotation, like Docker's dangling images.
//
// Layers are kept in the form they came in: a docker archive's tars
// uncompressed (their blobs' digests are their diff IDs), a registry's
// gzip or zstd blobs as they are, built layers as gzip (IngestLayer
// compresses a tar into the store, pgzip, reproducibly). OpenLayer reads
// any layer blob back uncompressed, whether gzip, zstd or plain. An output
// that needs the other form asks for it: CompressedLayer and
// CompressedImage (a push, an OCI archive) gzip an uncompressed layer once
// and remember the gzip blob in meta.db under the layer's diff ID, so the
// next output reuses it; OpenUncompressed (a docker archive) reads a
// compressed layer's tar, decompressing on the way. Garbage collection
// keeps a remembered gzip form as long as its uncompressed blob
// (GzipForms) and forgets those it removes (ForgetGzipForms); what is
// remembered is checked against the blobs present before it is used.
//
// Blobs are checked against their digests whenever they are read, not
// only when written: OpenBlob, ReadJSON and OpenLayer hash what they give
// and fail the read that reaches the end with a DigestError (errors.Is
// ErrDigest) if the file changed, so a flipped byte on disk is never taken
// for content. Readers that stop early (a tar reader stops at its
// end-of-archive blocks) read the rest before trusting what they unpacked.
// Verify rehashes every blob.
//
// Whoever can write the root can put anything under a blob's name: a blob
// is only ever a regular file, opened without following a symlink and
// without blocking on a FIFO, so nothing outside the store is read as
// content (Walk does not list such a name; Verify reports it). A layer
// stream is checked as it comes in: no tar, or an entry above the layer's
// root, is refused before the blob has a name. An index.json that is no
// JSON (ErrIndexDamaged) can be rebuilt from the manifests among the blobs
// (RebuildIndex), a meta.db that is no database (meta.ErrDamaged) moved
// aside for a new one (meta.File.Reset).
//
// A layer's content size (LayerInfo: regular files' bytes and symlink
// targets, as Docker counts image sizes) is counted while the layer is
// written and kept in meta.db, keyed by blob digest; a layer stored
// without it is counted once from its blob, then remembered.
//
// Writes go to a temporary file and are renamed into place, so a kill at
// any moment leaves the old or the new state. A blob's temporary file has
// no name (O_TMPFILE) until it is linked in under its digest, so a killed
// write leaves nothing behind; index.json's has a fixed name in tmp/,
// which the next writer replaces. Several builder processes may
// share a root: index.json is read-modified-written under an flock on
// ROOT/index.lock, and meta.db is opened for each transaction only, since
// bbolt holds an exclusive file lock for as long as it is open.
//
// Builds and garbage collection exclude each other through gc.lock: a
// command that writes blobs or layers (build, load, import, commit, a
// container's creation) holds it shared, once, from before its first
// write until what it wrote is named by an image or a record; a prune
// holds it exclusively. The solver does not take it: its caller does.
//
// The store is the bottom of the house: it imports only its own
// subpackages and internal/*, never snapshot, fsutil, solver or anything
// above them. Its subpackages (store/meta, store/cache) never import it.
package store
