package gc

import (
	"io/fs"
	"path/filepath"
	"syscall"
)

// diskUsage is what path (a file or a tree) takes on disk, like du: the
// blocks allocated (st_blocks, in 512-byte units whatever the filesystem's
// block size), each inode once so hard links count once. Unreadable parts
// count as nothing; a missing path is 0.
func diskUsage(path string) int64 {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // skip what cannot be read, count the rest
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			total += fi.Size()
			return nil
		}
		k := inode{uint64(st.Dev), st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		total += st.Blocks * 512
		return nil
	})
	return total
}
