// Package fsutil is the build's file library: walking a build context,
// .dockerignore rules, the content digests of what a COPY reads (for cache
// keys; the stat-cache that remembers them is fsutil/statcache), and
// Dockerfile COPY and ADD on plain directories with the semantics Docker
// BuildKit gives them. The solver's file op, containers (commit, cp) and
// the CLI use it; it imports nothing of the builder above internal/.
//
// DigestEntries works entry by entry, so that a cache miss can be
// explained file by file: the tree is walked (directories listed in
// parallel, each with getdents and one fstatat per entry relative to the
// directory), each directory's entries are digested as soon as it is
// listed, reading what they need (content hash, symlink target, xattrs:
// FileSums) through a stat cache when the caller has one, and the digests
// are folded in walk order.
//
// Copy makes directories in walk order and copies files on several
// goroutines, through descriptors (copy_file_range where the kernel can,
// read/write otherwise; fchown, fchmod, futimens on the new file).
//
// It owns: selecting sources (wildcards, symlinks followed at the top level
// and kept below it, clamping to the source root, .dockerignore filtering
// with exceptions), placing them at the destination (file versus directory
// rules, merging, replacing, parents created), the metadata written (owner,
// mode, times, xattrs, hard links) and handing local archives to an
// extractor for ADD.
//
// It does not mount anything: both roots are directories the caller has
// prepared (a build context, a read-only view of a stage, a writable
// overlay). Every path it reads or writes is resolved inside its root, so
// no source path, symlink or ".." reaches outside SrcRoot or DstRoot.
//
// It imports internal packages only; it must not import the solver,
// snapshot, store, runner or anything above them: the solver's file op,
// containers and the CLI use it, not the other way round.
package fsutil
