package du

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Size is what path (a file or a tree) takes on disk, like du: the
// blocks allocated (st_blocks, in 512-byte units whatever the filesystem's
// block size), each inode once so hard links count once. Unreadable parts
// count as nothing; a missing path is 0.
func Size(path string) int64 {
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

// Remove removes path (a file or a tree) and returns what it took on disk
// (Size). unmount, when not nil, first detaches what is mounted at or
// under path (mount.UnmountUnder: what a killed process left mounted
// there), so that neither the measure nor the removal walks into a
// mounted tree.
func Remove(path string, unmount func(dir string) error) (int64, error) {
	if unmount != nil {
		if err := unmount(path); err != nil {
			return 0, fmt.Errorf("remove %s: %w", path, err)
		}
	}
	n := Size(path)
	if err := os.RemoveAll(path); err != nil {
		return 0, fmt.Errorf("remove %s: %w", path, err)
	}
	return n, nil
}

// Names lists the entries of dir; a missing dir has none.
func Names(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return names, nil
}

// RemoveEntries removes the named entries of dir (Remove, with unmount)
// and returns how many went and what they took on disk; it stops at the
// first error or when ctx ends, reporting what went until then.
func RemoveEntries(ctx context.Context, dir string, names []string, unmount func(dir string) error) (int, int64, error) {
	var n int
	var freed int64
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return n, freed, err
		}
		size, err := Remove(filepath.Join(dir, name), unmount)
		if err != nil {
			return n, freed, err
		}
		n++
		freed += size
	}
	return n, freed, nil
}

// SizeOfEntries is what the named entries of dir take on disk together.
func SizeOfEntries(ctx context.Context, dir string, names []string) (int64, error) {
	var total int64
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		total += Size(filepath.Join(dir, name))
	}
	return total, nil
}
