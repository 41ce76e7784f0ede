// Package exporter takes results out: a built image into the store under
// its tags (StoreImage), docker save archives (manifest.json with
// RepoTags), OCI archives (a tar of an OCI image layout), a build's
// outputs (those archives, its root filesystem as a local directory or a
// tar), and registry pushes (Push, over internal/registry). Images come
// in through package source.
//
// Whatever it writes keeps the image's config bytes, and so its ID: the
// config's diff_ids always name the uncompressed layers, and every
// manifest entry names the blob it points to.
//
// It imports the store, snapshot (and snapshot/archive), fsutil and
// internal packages only; it must not import source, the solver, frontend,
// container, gc or cmd.
package exporter
