// Package dirent reads directory entries with getdents(2) straight from an
// open directory descriptor, without the os.File and per-entry allocations
// of os.ReadDir: the context walk and the layer writer list tens of
// thousands of directories' worth of names on every build.
//
// It stays because bench/gobench's BenchmarkReadDir20k (a 20,000-entry
// directory, opened as a raw descriptor as the callers have it; -count 5,
// 2 cores, 2026-12-07) shows it pays where names are all a caller needs:
//
//	dirent.Read (fsutil's walk, names into one arena)  4.5 ms     1 alloc
//	os.File.Readdirnames                                5.9 ms  20,026 allocs, 2.0 MB
//	unix.Getdents + unix.ParseDirent                    5.7 ms  20,022 allocs, 2.0 MB
//
// ReadTypes (the layer writer, which makes a string of each name anyway)
// measures as os.File.ReadDir does (6.7 vs 6.8 ms, 20,024 vs 40,026
// allocs); it is kept because the standard library has no equivalent on a
// descriptor the caller keeps: os.NewFile takes ownership of the
// descriptor (closing it when collected), and os.File.ReadDir falls back
// to an lstat by path for a DT_UNKNOWN entry, where the layer writer must
// stay relative to its directory descriptor.
//
// Like every internal package it imports the standard library and
// third-party modules only (and internal/unixutil, the EINTR retry).
package dirent
