package dirent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func openDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestReadMany: every entry of a directory larger than one getdents
// buffer, long names included, each once, without "." and "..", with its
// type.
func TestReadMany(t *testing.T) {
	dir := t.TempDir()
	want := map[string]uint8{}
	for i := range 3000 {
		name := fmt.Sprintf("f%05d", i)
		if i%100 == 0 {
			name += strings.Repeat("x", 249) // 255 bytes, NAME_MAX
		}
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = unix.DT_REG
	}
	for name, typ := range map[string]uint8{"d": unix.DT_DIR, "l": unix.DT_LNK, "p": unix.DT_FIFO} {
		var err error
		switch typ {
		case unix.DT_DIR:
			err = os.Mkdir(filepath.Join(dir, name), 0o755)
		case unix.DT_LNK:
			err = os.Symlink("nowhere", filepath.Join(dir, name))
		case unix.DT_FIFO:
			err = unix.Mkfifo(filepath.Join(dir, name), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		want[name] = typ
	}
	got := map[string]uint8{}
	err := ReadTypes(openDir(t, dir), func(name []byte, typ uint8) {
		if _, dup := got[string(name)]; dup {
			t.Errorf("%q listed twice", name)
		}
		got[string(name)] = typ
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d entries, want %d", len(got), len(want))
	}
	for name, typ := range want {
		// A file system may not say (DT_UNKNOWN); what it says must be right.
		if g, ok := got[name]; !ok || (g != typ && g != unix.DT_UNKNOWN) {
			t.Errorf("%q: type %d (listed %v), want %d", name, g, ok, typ)
		}
	}
	var names []string
	if err := Read(openDir(t, dir), func(name []byte) { names = append(names, string(name)) }); err != nil {
		t.Fatal(err)
	}
	if len(names) != len(want) || slices.Contains(names, ".") || slices.Contains(names, "..") {
		t.Fatalf("Read listed %d names", len(names))
	}
}

func TestReadEmpty(t *testing.T) {
	calls := 0
	if err := Read(openDir(t, t.TempDir()), func([]byte) { calls++ }); err != nil || calls != 0 {
		t.Fatalf("empty dir: %d names, %v", calls, err)
	}
}

// record is one linux_dirent64 record of reclen bytes.
func record(ino uint64, typ uint8, name string, reclen int) []byte {
	b := make([]byte, reclen)
	binary.NativeEndian.PutUint64(b[unsafe.Offsetof(unix.Dirent{}.Ino):], ino)
	binary.NativeEndian.PutUint16(b[unsafe.Offsetof(unix.Dirent{}.Reclen):], uint16(reclen))
	b[unsafe.Offsetof(unix.Dirent{}.Type)] = typ
	copy(b[unsafe.Offsetof(unix.Dirent{}.Name):], name)
	return b
}

// TestParse: deleted entries (inode 0) are skipped, a name ends at its
// NUL, and a record whose length runs short or past the buffer is refused
// rather than read out of bounds.
func TestParse(t *testing.T) {
	var b []byte
	b = append(b, record(1, unix.DT_DIR, ".", 24)...)
	b = append(b, record(5, unix.DT_REG, "a", 24)...)
	b = append(b, record(0, unix.DT_REG, "deleted", 32)...)
	b = append(b, record(6, unix.DT_LNK, "bb", 24)...)
	var got []string
	if err := parse(b, func(name []byte, typ uint8) { got = append(got, fmt.Sprint(string(name), typ)) }); err != nil {
		t.Fatal(err)
	}
	if want := []string{fmt.Sprint("a", unix.DT_REG), fmt.Sprint("bb", unix.DT_LNK)}; !slices.Equal(got, want) {
		t.Fatalf("parse = %q, want %q", got, want)
	}
	for name, bad := range map[string][]byte{
		"short header":   record(5, unix.DT_REG, "a", 24)[:10],
		"reclen too big": record(5, unix.DT_REG, "a", 24)[:20],
		"reclen too small": func() []byte {
			r := record(5, unix.DT_REG, "a", 24)
			binary.NativeEndian.PutUint16(r[unsafe.Offsetof(unix.Dirent{}.Reclen):], 8)
			return r
		}(),
	} {
		if err := parse(bad, func([]byte, uint8) {}); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
