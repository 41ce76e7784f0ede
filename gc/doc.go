// Package gc accounts for and collects the build cache and the store's
// garbage: cache records (package store/cache), the blobs of
// content/blobs/sha256, the unpacked layers of snapshots/sha256 and stale
// temporary files.
//
// What is live:
//   - every image listed in content/index.json, tagged or not: its
//     manifest, config and layer blobs, and the unpacked layers of its
//     chain;
//   - the gzip form of every live uncompressed layer blob, made once for
//     a push or an OCI archive (store.Content.GzipForms; a prune or a
//     repair then forgets the forms it removed);
//   - every cache record that is kept: its layer blob and the unpacked
//     layer(s) of its chain, when they can be told (see below).
//
// Everything else under blobs/sha256 and snapshots/sha256 is garbage once
// the records to drop are dropped. Blobs must be exact: a listed image or a
// kept record never loses one. Unpacked layers are a regenerable cache (a
// build or run unpacks missing ones again from blobs), so a layer directory
// whose chain cannot be tied to anything live is deleted.
//
// A record's chain ID is not stored. It is found from the images that hold
// its layer (the chain at that position), from its parent record (the
// parent's chain plus its diff ID), or else by matching the existing layer
// directories (a directory named ChainID(p, diffID) for some known chain p).
//
// Records form a tree through Step.Parent. A record is only valid on top
// of its ancestors' layers, so a record never outlives its parent record:
// removing one removes its descendants, and the least recently used order
// puts descendants first.
//
// A record whose layers a listed image or a container (a root) holds is in
// use: removing it frees nothing. The default prune keeps such records
// (and their ancestors); --keep-storage never removes a record whose
// removal frees nothing, and measures the cache as what records alone hold,
// as BuildKit leaves shared records out of its total; only --all without
// --keep-storage empties the cache of them too, as docker builder prune -a
// does.
//
// Only direct links are known: a record whose parent key is a config-only
// step (ENV, LABEL, ...) after another record cannot be tied to that
// record from what the record holds. The default prune is safe regardless
// (an image holding a record's layer holds its ancestors' layers too, so
// they are all in use); --keep-storage and --filter until can leave such a
// record without the record before the config step. NOTE: the solver
// should check, on a hit, that the record was made on the same parent
// chain, which would make any removal order safe.
//
// Prune holds the store's exclusive GC lock (store.LockGC) for its whole
// run, so it waits for running builds and a build never sees a half-done
// collection. List and DiskUsage only read.
//
// What exists gc asks its owners, never working out their paths: the
// store's blobs (Content.Walk) and temporary files (SweepTmp, TmpUsage),
// the snapshotter's layers (Walk), writable snapshots (Actives,
// SweepActive) and temporary files (SweepTmp, TmpUsage).
//
// Snapshots under snapshots/active and directories under containers/ that
// containers own are never touched; any other is a killed build's or
// container creation's, and Sweep removes it with the rest of what killed
// processes leave (temporary files and directories, mounts under tmp/).
// Sweep needs the GC lock held exclusively; prune runs it, and so does any
// command that writes to the store when it finds no other holding the
// lock.
//
// It imports store (and its subpackages), snapshot and internal packages
// only; it must not import the solver, frontend, source, exporter,
// container or cmd.
package gc
