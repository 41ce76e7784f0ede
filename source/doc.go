// Package source brings images in: the store, docker/OCI archive load,
// rootfs import, and registries (Puller). Resolver is what a build and
// run look images up with: the store first, a pull when missing. Whatever
// comes in lands in the store as OCI manifests over gzip layers, each
// layer checked against its config's diff_id, and nothing reaches the
// store from an input that fails a check. A pull keeps the registry's
// manifest bytes (OCI or Docker schema2) and its layer blobs as they
// came, each checked against its digest and its config's diff_id while it
// streams.
//
// It imports the store, snapshot (and snapshot/archive), fsutil and
// internal packages (internal/registry for the transport) only; it must
// not import exporter (results going out), the solver, frontend,
// container, gc or cmd.
package source
