// Package source brings images in: the store, docker/OCI archive load,
// rootfs import, and next a registry. Whatever comes in lands in the store
// as OCI manifests over gzip layers, each layer checked against its
// config's diff_id, and nothing reaches the store from an input that fails
// a check.
//
// It imports the store, snapshot (and snapshot/archive), fsutil and
// internal packages only; it must not import exporter (results going out),
// the solver, frontend, container, gc or cmd.
package source
