// Package statcache remembers what was read from the files of a build
// context (content sha256, symlink target, xattrs) together with the stat
// they had, so that a rebuild over an unchanged context costs one lstat per
// file instead of reading every byte.
//
// A record is trusted while the file's size, mtime, ctime, inode and mode
// are all the same as when it was read. ctime is what catches the nasty
// case that size, mtime and inode alone miss (Docker and BuildKit miss it):
// a same-size edit with its mtime put back. Users cannot set ctime; any
// write, chmod, chown, xattr change or rename moves it. An mtime-only
// change (touch) also misses the record, but only costs a re-read: what is
// remembered is content, so the digest comes out the same.
//
// The device number is left out of the key on purpose: some file systems
// (overlayfs, btrfs subvolumes, network mounts) get a new one after a
// remount or reboot, and a new device with the same inode, ctime, mtime,
// size and mode at the same path is not a case worth a full re-hash.
//
// Records live in the store's bbolt database, one bucket per context
// directory, in chunks of a few tens of kilobytes, each a sorted run of
// (path relative to the directory, record): Open reads the bucket in one
// transaction (in the background, while the build walks the context) into
// one block that lookups search in place, Flush merges what changed into
// the chunks it falls in in one more, and a build that changed nothing
// writes nothing. When Flush writes, it also drops records of files that
// are gone and the buckets of context directories that are gone.
//
// A file changed less than racyWindow before it was read is not
// remembered: a second write within the same timestamp tick would leave
// its stat as it was.
//
// It imports fsutil, store/meta (a leaf that imports only bbolt: it takes
// the database as a meta.DB, never the store itself) and internal packages
// only; it must not import store, the solver or anything above them.
package statcache
