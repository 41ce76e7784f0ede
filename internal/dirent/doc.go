// Package dirent reads directory entries with getdents(2) straight from an
// open directory descriptor, without the os.File and per-entry allocations
// of os.ReadDir: the context walk and the layer writer list tens of
// thousands of directories' worth of names on every build.
package dirent
