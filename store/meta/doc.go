// Package meta is the store's metadata database, meta.db (bbolt): build
// cache records (package store/cache), containers' records (package
// container), the context stat-cache (package fsutil/statcache) and the
// store's layer sizes.
//
// DB (View and Update) is the one interface every user of the database
// takes; a function that only reads takes a Viewer, which a ReadSession
// satisfies too, while a ReadSession cannot be passed where a DB is needed.
//
// The file is opened for each transaction only, since bbolt holds an
// exclusive file lock (shared, read-only) for as long as it is open:
// several builder processes share one root, and each gets its turn as soon
// as another's transaction ends. A ReadSession keeps it open read-only for
// several lookups in a row; Lazy gives updates without the commit's fsync,
// for advisory data. A file that is no database is ErrDamaged; Reset moves
// it aside.
//
// It imports only the standard library and bbolt: never package store, nor
// anything above it.
package meta
