// Package solver executes a build definition over a small Op interface
// (op.go): it computes every step's cache key before anything runs, reuses
// recorded layers for the longest cached prefix of each stage, runs what is
// missing through its Op, collapses identical work in two stages into one
// run, records each new layer in the store's cache records and explains
// misses. Stages the target needs run concurrently; the others are never
// touched. The concrete ops (RUN, COPY/ADD, WORKDIR) are in solver/ops.
//
// After a local miss it asks the build's RemoteCache (Options.Remote: a
// --cache-from, package remotecache), whose records it reuses on the same
// terms as local ones; their layers need not be in the store, as whoever
// reads a layer fetches it first. Result.Records lists every step's record,
// run or reused, for a cache export.
//
// It must not import runner, snapshot or fsutil: all it knows of the store
// is its blobs' presence and the cache records (records.go).
package solver
