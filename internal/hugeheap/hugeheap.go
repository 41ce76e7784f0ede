package hugeheap

import (
	"runtime"
	"runtime/debug"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of an x86-64 transparent huge page.
const hugePage = 2 << 20

// Reserve grows the heap by n bytes of huge-page backed memory that later
// allocations reuse; see the package doc. It costs a collection of the
// (small) heap so far, so call it once, early. Where the kernel has no
// transparent huge pages the advice changes nothing.
func Reserve(n int) {
	// Not collected on the way: growing by n would start a collection of
	// its own before the one below.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	b := make([]byte, n)
	base := uintptr(unsafe.Pointer(&b[0]))
	start := int(((base + hugePage - 1) &^ (hugePage - 1)) - base)
	end := int(((base + uintptr(n)) &^ (hugePage - 1)) - base)
	if end > start {
		// Only advice: an error (no THP here) leaves 4 KiB pages.
		_ = unix.Madvise(b[start:end], unix.MADV_HUGEPAGE)
	}
	runtime.KeepAlive(b)
	b = nil
	// The block is free once collected; the heap keeps its pages mapped
	// for the allocations to come.
	runtime.GC()
}
