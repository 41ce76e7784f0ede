package diskspace

import (
	"fmt"

	"github.com/builder-dev/builder/internal/unixutil"
	"github.com/docker/go-units"
	"golang.org/x/sys/unix"
)

// ErrNoSpace reports an entry that a Guard refused because writing it would
// leave the destination's filesystem with less free space (or fewer free
// inodes) than its reserve. It is also an ENOSPC, as the write itself would
// have failed with one, only later.
var ErrNoSpace = fmt.Errorf("would leave too little free space: %w", unix.ENOSPC)

// Reserve sizes: what a Guard leaves free on the filesystem it writes to.
// The smaller of an absolute amount and a share of the filesystem, so that
// a small filesystem stays usable at all while a large one is never filled
// to the brim by one archive (the store's metadata, other builds and the
// host's own processes need room to write, and to record a failure).
const (
	reserveBytes  = 1 << 30 // 1 GiB
	reserveInodes = 64 << 10
	reserveShare  = 20 // 1/20th: 5%
)

// Between two statfs calls a Guard lets through at most this much and makes at most
// this many entries on its own accounting: other writers share the
// filesystem, and the filesystem's own overhead (directory blocks, indirect
// blocks) is not counted. One statfs per window costs nothing next to the
// writes.
const (
	windowBytes   = 64 << 20
	windowEntries = 16 << 10
)

// Guard keeps one writer (a layer being unpacked, an archive being spooled)
// from filling its filesystem: every entry is
// charged its size before it is written, and an entry that does not fit
// above the reserve is refused before a byte of it is written. This bounds
// what a gzip bomb (a few MB unpacking to terabytes of zeros) or a tar
// entry claiming a huge size can do to the host: the build fails, the
// filesystem keeps its reserve.
type Guard struct {
	fd   int    // any handle on the filesystem
	show string // its path, for errors

	bsize   int64 // the filesystem's block size
	size    int64 // and its size
	room    int64 // bytes writable above the reserve, at the last statfs
	rooms   int64 // entries makeable above the inode reserve (-1: no inode limit)
	budget  int64 // bytes left in this window
	entries int64 // entries left in this window

	avail, reserve int64 // free bytes and the reserve at the last statfs, for errors

	// Entries that replace each other free what they used, so the
	// reserve alone does not bound the work of a tar that writes the
	// same huge file again and again. Nothing that fits on the
	// filesystem needs to write more than its size in all.
	total, written int64
}

// New guards the filesystem that fd (any handle on it) is on; show names
// it in errors.
func New(fd int, show string) (*Guard, error) {
	s := &Guard{fd: fd, show: show}
	if err := s.refresh(); err != nil {
		return nil, err
	}
	s.total = s.size
	return s, nil
}

// refresh asks the filesystem what is free and opens a new window.
func (s *Guard) refresh() error {
	var st unix.Statfs_t
	if err := unixutil.IgnoringEINTR(func() error { return unix.Fstatfs(s.fd, &st) }); err != nil {
		return fmt.Errorf("statfs %s: %w", s.show, err)
	}
	s.bsize = st.Bsize
	if s.bsize <= 0 {
		s.bsize = 4096
	}
	// Bavail, not Bfree: what remains once the filesystem's own
	// root-only reserve (ext4's 5%) is set aside, which the host's
	// services rely on even though the builder runs as root.
	avail := clampMul(st.Bavail, s.bsize)
	s.size = clampMul(st.Blocks, s.bsize)
	reserve := min(reserveBytes, s.size/reserveShare)
	s.avail, s.reserve = avail, reserve
	s.room = max(avail-reserve, 0)
	s.budget = min(s.room, windowBytes)
	s.rooms, s.entries = -1, windowEntries
	// Some filesystems (btrfs) report no inode count: they have no fixed
	// number of inodes to run out of.
	if st.Files > 0 {
		reserve := min(reserveInodes, int64(st.Files/reserveShare))
		s.rooms = max(int64(st.Ffree)-reserve, 0)
		s.entries = min(s.rooms, windowEntries)
	}
	return nil
}

// clampMul multiplies a block count by the block size without overflowing.
func clampMul(blocks uint64, bsize int64) int64 {
	const maxInt64 = 1<<63 - 1
	if blocks > uint64(maxInt64/bsize) {
		return maxInt64
	}
	return int64(blocks) * bsize
}

// Take charges an entry of size bytes (0 for anything but a regular file's
// content), failing with ErrNoSpace when it does not fit above the reserve.
func (s *Guard) Take(size int64) error {
	// Whole blocks: a one-byte file uses one. A size near the int64
	// limit (a tar can claim any) saturates rather than wraps.
	need := size
	if r := size % s.bsize; r != 0 {
		if size > (1<<63-1)-s.bsize {
			need = 1<<63 - 1
		} else {
			need = size + s.bsize - r
		}
	}
	if need > s.budget || s.entries <= 0 {
		if err := s.refresh(); err != nil {
			return err
		}
		if need > s.room {
			return fmt.Errorf("%s of content, but %s may be written to %s (%s free, %s kept free): %w",
				showBytes(size), showBytes(s.room), s.show, showBytes(s.avail), showBytes(s.reserve), ErrNoSpace)
		}
		if s.rooms == 0 {
			return fmt.Errorf("no more inodes may be used on %s: %w", s.show, ErrNoSpace)
		}
	}
	if need > s.total-s.written {
		return fmt.Errorf("%s of content after %s written: more in all than the %s filesystem of %s holds: %w",
			showBytes(size), showBytes(s.written), showBytes(s.total), s.show, ErrNoSpace)
	}
	s.budget -= need
	s.room -= need
	s.written += need
	s.entries--
	if s.rooms > 0 {
		s.rooms--
	}
	return nil
}

// showBytes renders n in binary units, as df -h does ("1.5 MiB"; "512 B"
// below 1 KiB).
func showBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	return units.CustomSize("%.1f %s", float64(n), 1024, binaryAbbrs)
}

var binaryAbbrs = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
