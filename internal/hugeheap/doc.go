// Package hugeheap backs the Go heap of a short, allocation-heavy command
// with transparent huge pages where the kernel offers them for memory that
// asks (THP "madvise" mode, the common default).
//
// A fresh process pays a page fault for every 4 KiB page of heap it first
// touches, and on a virtual machine with paravirtual page tables a fault
// costs ~14 µs: a no-op rebuild of a 20,000-file context touches some 3,000
// pages, a third of its CPU time. The Go runtime does not ask for huge
// pages itself, so Reserve makes the heap grow once by a large block,
// advises that block to be backed by huge pages, and frees it: the heap
// then grows into it, one fault per 2 MiB.
//
// Like every internal package it imports the standard library and
// third-party modules only, never a builder package.
package hugeheap
