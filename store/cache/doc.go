// Package cache keeps the build cache's records in the store's metadata
// database (package store/meta): what each step's cache key resolved to
// (a layer), what the step was (so `cache ls` can show it and `build
// --explain` can say why a later build missed it), and when it was made
// and last used. Functions that only read take a meta.Viewer (a read
// session will do); those that write, a meta.DB.
//
// It imports store/meta only, never package store: the lock that keeps
// garbage collection from removing what a running build needs is the
// store's (store.LockBuild).
package cache
