// Package remotecache moves the build cache's records (package
// store/cache) and their layer blobs between the store and a place CI
// runners share: a registry (--cache-to/--cache-from type=registry) or an
// OCI image layout directory a CI system keeps (type=local).
//
// # Format
//
// A cache is ONE plain OCI image manifest
// (application/vnd.oci.image.manifest.v1+json, never an index, which some
// registries refuse). Its config blob, of media type
// application/vnd.builder.cache.config.v1+json, is a Config: a schema
// version and the cache records, each with
//
//	key              the step's cache key (solver's cacheKey)
//	parentChain      the chain ID of the layers the step ran on
//	layer            the layer blob's descriptor (compressed digest, size, media type)
//	diffID           the digest of the uncompressed layer
//	uncompressedSize the length of the uncompressed tar, when known
//	created          when the step first ran (history timestamps come from it,
//	                 so every runner writes the same image ID)
//	step             what the step was (for cache ls and --explain), without
//	                 its expanded op, which holds ARG and ENV values
//
// sorted by key, so the same records give the same bytes. The manifest's
// layers are the records' layer blobs, each once, in the order the records
// first name them; a record whose layer the manifest does not list is
// ignored. In a layout directory the manifest is the one index.json names
// "builder-cache" (org.opencontainers.image.ref.name); in a registry it is
// the reference's tag. An export to a directory removes the blobs the new
// cache no longer names, so that a directory a CI system keeps does not
// grow with every run.
//
// # Import and export
//
// Import (Open) reads the manifest and the config only, checking each
// against its digest. The Importer answers the solver's lookups
// (solver.RemoteCache) from those records, and fetches a layer blob
// (FetchBlob) only when the build reads it: a step that runs on it, or the
// result's image, which must have all its blobs in the store. The records
// a build used whose layers it fetched are then kept in the local cache
// (Keep). Layer blobs are checked against their digests as they arrive
// and never stored otherwise.
//
// Export writes a build's records (Result.Records, selected by Select for
// mode=min) as a new cache that replaces the one at the destination, as
// BuildKit's does: one ref per branch keeps branches apart. It uploads
// only what the destination lacks: a HEAD per layer blob and the config,
// a read of the current manifest, and nothing more when the cache is
// unchanged. A blob neither the store nor the destination has is fetched
// from the imported cache and copied across without being stored (a
// runner re-exports records it hit but never downloaded). A registry
// cache after a push mounts the pushed repository's blobs (MountFrom)
// rather than uploading them again.
//
// It imports store and store/cache, never solver: the solver sees it only
// through solver.RemoteCache, solver/ops through ops.BlobFetcher.
package remotecache
