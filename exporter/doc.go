// Package exporter moves images between the store and archives: docker
// save/load archives (manifest.json with RepoTags), OCI archives (a tar of
// an OCI image layout), and root filesystems imported as one-layer images.
//
// Whatever it writes keeps the image's config bytes, and so its ID: layers
// may be recompressed on the way in (the store keeps gzip layers), but the
// config's diff_ids always name the uncompressed layers, and every manifest
// entry names the blob it points to.
package exporter
