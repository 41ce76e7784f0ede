// Package dirent reads directory entries with getdents(2) straight from an
// open directory descriptor, without the os.File and per-entry allocations
// of os.ReadDir: the context walk and the layer writer list tens of
// thousands of directories' worth of names on every build.
//
// Like every internal package it imports the standard library and
// third-party modules only, never a builder package.
package dirent
