// Package cache keeps the build cache's records in the store's metadata
// database: what each step's cache key resolved to (a layer), what the step
// was (so `cache ls` can show it and `build --explain` can say why a later
// build missed it), when it was made and last used, and which builds are
// running (so garbage collection never removes what one of them needs).
package cache
