package gobench

// The A/B benchmark of internal/dirent (getdents parsed in place) against
// os.File.Readdirnames, os.File.ReadDir and x/sys's ParseDirent; the
// decision is recorded in internal/dirent's doc, with the numbers.
//
//	go test -run '^$' -bench ReadDir20k -benchmem -count 5 ./bench/gobench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/dirent"
)

// flatDir makes a directory of n empty files with names of ~20 bytes.
func flatDir(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("file-with-a-name-%06d", i)))
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	return dir
}

func openDirFd(b *testing.B, dir string) int {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	return fd
}

// BenchmarkReadDir20k lists a 20,000-entry directory, opened as the callers
// open it (a raw descriptor), the names collected as fsutil collects them.
func BenchmarkReadDir20k(b *testing.B) {
	const n = 20000
	dir := flatDir(b, n)
	check := func(b *testing.B, got int) {
		if got != n {
			b.Fatalf("listed %d entries, want %d", got, n)
		}
	}
	b.Run("dirent.Read", func(b *testing.B) {
		var arena []byte
		var spans []int
		for b.Loop() {
			fd := openDirFd(b, dir)
			arena, spans = arena[:0], spans[:0]
			err := dirent.Read(fd, func(name []byte) {
				spans = append(spans, len(arena))
				arena = append(append(arena, name...), 0)
			})
			unix.Close(fd)
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(spans))
		}
	})
	b.Run("dirent.ReadTypes", func(b *testing.B) {
		type child struct {
			name string
			typ  uint8
		}
		for b.Loop() {
			fd := openDirFd(b, dir)
			var children []child
			err := dirent.ReadTypes(fd, func(name []byte, typ uint8) {
				children = append(children, child{string(name), typ})
			})
			unix.Close(fd)
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(children))
		}
	})
	b.Run("os.File.Readdirnames", func(b *testing.B) {
		for b.Loop() {
			f := os.NewFile(uintptr(openDirFd(b, dir)), dir)
			names, err := f.Readdirnames(-1)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(names))
		}
	})
	b.Run("os.File.ReadDir", func(b *testing.B) {
		for b.Loop() {
			f := os.NewFile(uintptr(openDirFd(b, dir)), dir)
			ents, err := f.ReadDir(-1)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(ents))
		}
	})
	b.Run("unix.ParseDirent", func(b *testing.B) {
		buf := make([]byte, 32<<10)
		for b.Loop() {
			fd := openDirFd(b, dir)
			var names []string
			for {
				m, err := unix.Getdents(fd, buf)
				if err != nil {
					b.Fatal(err)
				}
				if m <= 0 {
					break
				}
				_, _, names = unix.ParseDirent(buf[:m], -1, names)
			}
			unix.Close(fd)
			check(b, len(names))
		}
	})
}
