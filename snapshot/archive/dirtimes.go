package archive

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// maxDirTimesInMemory is how many directories' times Apply keeps in memory
// before it moves them to a temporary file. Layers rarely have more than a
// few thousand directories; one made of a million must not cost a million
// records of heap.
const maxDirTimesInMemory = 8 << 10

// dirTimes holds the times of the directories Apply made, which can only be
// set once nothing more is written into them, at the end. Past
// maxDirTimesInMemory records, they are appended to an unlinked temporary
// file (in os.TempDir) and read back when set, so memory stays bounded
// whatever the layer holds, and the order in which a tar lists its
// entries does not matter.
type dirTimes struct {
	mem   []dirTime
	spill *os.File
	w     *bufio.Writer
	rec   []byte // encoding buffer
}

type dirTime struct {
	name string
	ts   []unix.Timespec
}

func (d *dirTimes) add(name string, ts []unix.Timespec) error {
	if len(d.mem) < maxDirTimesInMemory {
		d.mem = append(d.mem, dirTime{name: name, ts: ts})
		return nil
	}
	if d.spill == nil {
		f, err := os.CreateTemp("", "builder-dirtimes-")
		if err != nil {
			return fmt.Errorf("keep directory times: %w", err)
		}
		// Unlinked at once: the file lives as long as the descriptor,
		// and a killed builder leaves nothing behind.
		os.Remove(f.Name())
		d.spill, d.w = f, bufio.NewWriterSize(f, 64<<10)
	}
	// A record: name length, name, atime and mtime (seconds and
	// nanoseconds), all varints.
	b := binary.AppendUvarint(d.rec[:0], uint64(len(name)))
	b = append(b, name...)
	for _, t := range ts {
		b = binary.AppendVarint(b, t.Sec)
		b = binary.AppendVarint(b, t.Nsec)
	}
	d.rec = b
	if _, err := d.w.Write(b); err != nil {
		return fmt.Errorf("keep directory times: %w", err)
	}
	return nil
}

// each calls fn for every directory added, the spilled ones first.
func (d *dirTimes) each(fn func(name string, ts []unix.Timespec) error) error {
	if d.spill != nil {
		if err := d.w.Flush(); err != nil {
			return fmt.Errorf("keep directory times: %w", err)
		}
		if _, err := d.spill.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("read directory times: %w", err)
		}
		r := bufio.NewReaderSize(d.spill, 64<<10)
		ts := make([]unix.Timespec, 2)
		var name []byte
		for {
			n, err := binary.ReadUvarint(r)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read directory times: %w", err)
			}
			if uint64(cap(name)) < n {
				name = make([]byte, n)
			}
			name = name[:n]
			if _, err := io.ReadFull(r, name); err != nil {
				return fmt.Errorf("read directory times: %w", err)
			}
			for i := range ts {
				if ts[i].Sec, err = binary.ReadVarint(r); err == nil {
					ts[i].Nsec, err = binary.ReadVarint(r)
				}
				if err != nil {
					return fmt.Errorf("read directory times: %w", err)
				}
			}
			if err := fn(string(name), ts); err != nil {
				return err
			}
		}
	}
	for _, t := range d.mem {
		if err := fn(t.name, t.ts); err != nil {
			return err
		}
	}
	return nil
}

func (d *dirTimes) close() {
	if d.spill != nil {
		d.spill.Close()
	}
}
