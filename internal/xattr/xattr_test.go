package xattr

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func set(t *testing.T, p, name string, v []byte) {
	t.Helper()
	if err := unix.Lsetxattr(p, name, v, 0); err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			t.Skipf("no xattrs on %s: %v", p, err)
		}
		t.Fatal(err)
	}
}

func TestNone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	xs, err := Read(p, nil)
	if err != nil || xs != nil {
		t.Fatalf("Read = %v, %v; want none", xs, err)
	}
}

// TestBig: a value and a name list past the first guesses are read whole,
// by path and through a descriptor, sorted by name; keep leaves names out.
func TestBig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("v"), 3000) // past 256 and 1024; ext4 takes ~4 KiB
	set(t, p, "user.big", big)
	var want []Attr
	for i := range 40 { // 40 names of ~16 bytes: past the 256-byte stack buffer
		name := fmt.Sprintf("user.name-%03d", i)
		set(t, p, name, []byte{byte(i)})
		want = append(want, Attr{name, []byte{byte(i)}})
	}
	want = append([]Attr{{"user.big", big}}, want...)
	xs, err := Read(p, nil)
	if err != nil || !reflect.DeepEqual(xs, want) {
		t.Fatalf("Read = %d attrs, %v; want %d", len(xs), err, len(want))
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	xs, err = ReadFd(int(f.Fd()), func(n string) bool { return n != "user.big" })
	if err != nil || !reflect.DeepEqual(xs, want[1:]) {
		t.Fatalf("ReadFd = %d attrs, %v; want %d", len(xs), err, len(want)-1)
	}
}

// TestSymlink: a symlink's own xattrs, not its target's (trusted.*, as
// user.* is refused on a symlink; needs root).
func TestSymlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for trusted.* xattrs")
	}
	dir := t.TempDir()
	target, link := filepath.Join(dir, "t"), filepath.Join(dir, "l")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("t", link); err != nil {
		t.Fatal(err)
	}
	set(t, target, "trusted.target", []byte("t"))
	set(t, link, "trusted.link", []byte("l"))
	xs, err := Read(link, nil)
	if want := []Attr{{"trusted.link", []byte("l")}}; err != nil || !reflect.DeepEqual(xs, want) {
		t.Fatalf("Read(symlink) = %q, %v; want %q", xs, err, want)
	}
}

// hostile answers ERANGE to every size, as a file whose xattrs grow
// between calls without end would.
type hostile struct{ largest int }

func (h *hostile) list(buf []byte) (int, error) {
	h.largest = max(h.largest, len(buf))
	return 0, unix.ERANGE
}

func (h *hostile) get(name string, buf []byte) (int, error) {
	h.largest = max(h.largest, len(buf))
	return 0, unix.ERANGE
}

type oneName struct{ hostile }

// list answers as the kernel does: the list's size for an empty buffer.
func (o *oneName) list(buf []byte) (int, error) {
	if len(buf) == 0 {
		return len("user.x\x00"), nil
	}
	return copy(buf, "user.x\x00"), nil
}

// TestCapped: a list or a value that keeps growing ends the read with
// ERANGE once the buffer reached MaxBuf, never a bigger allocation.
func TestCapped(t *testing.T) {
	h := &hostile{}
	if _, err := read(h, nil); !errors.Is(err, unix.ERANGE) || err.Error() != "list xattrs: numerical result out of range" {
		t.Fatalf("list: %v", err)
	}
	if h.largest > MaxBuf {
		t.Fatalf("list asked with %d bytes", h.largest)
	}
	o := &oneName{}
	if _, err := read(o, nil); !errors.Is(err, unix.ERANGE) || err.Error() != "get xattr user.x: numerical result out of range" {
		t.Fatalf("get: %v", err)
	}
	if o.largest > MaxBuf {
		t.Fatalf("get asked with %d bytes", o.largest)
	}
}

// TestNoneAllocatesNothing: most files have no xattrs, and reading that
// is on every file a COPY, a digest or a layer write visits.
func TestNoneAllocatesNothing(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "plain"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if n := testing.AllocsPerRun(100, func() {
		if xs, err := ReadFd(fd, nil); err != nil || xs != nil {
			t.Fatalf("ReadFd = %v, %v", xs, err)
		}
	}); n != 0 {
		t.Fatalf("ReadFd of a file without xattrs allocates %v times", n)
	}
}
