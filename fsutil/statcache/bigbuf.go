package statcache

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of an x86-64 transparent huge page.
const hugePage = 2 << 20

// bigBuffer returns an empty slice with room for n bytes. When n spans
// huge pages, the memory is asked to be backed by them (MADV_HUGEPAGE,
// which transparent huge pages in "madvise" mode wait for): a fresh
// process pays a page fault for each 4 KiB page it first touches, and
// on virtual machines with shadow page tables that costs more than
// copying the page. The stat cache of a large context is megabytes,
// copied once per build.
func bigBuffer(n int) []byte {
	if n < hugePage {
		return make([]byte, 0, n)
	}
	// Room to align the start, and whole huge pages past the end.
	b := make([]byte, (n+hugePage-1)&^(hugePage-1)+hugePage)
	off := int((hugePage - uintptr(unsafe.Pointer(&b[0]))%hugePage) % hugePage)
	if whole := (len(b) - off) &^ (hugePage - 1); whole > 0 {
		// Only a hint: without THP it changes nothing.
		_ = unix.Madvise(b[off:off+whole], unix.MADV_HUGEPAGE)
	}
	return b[off:off:len(b)]
}
