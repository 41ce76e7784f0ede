// Package diskspace keeps a writer of untrusted content (a layer being
// unpacked, an archive being spooled) from filling its filesystem: each
// entry is charged before it is written, against statfs and a reserve.
//
// Like every internal package it imports the standard library and
// third-party modules only, never a builder package.
package diskspace
