package dirent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"unsafe"

	"github.com/builder-dev/builder/internal/unixutil"
	"golang.org/x/sys/unix"
)

// ErrMalformed is returned for a getdents record that does not parse.
var ErrMalformed = errors.New("malformed directory entry")

var bufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Read calls fn with the name of every entry of the directory open as fd
// but "." and "..", in directory order. The name is only valid during the
// call.
func Read(fd int, fn func(name []byte)) error {
	return ReadTypes(fd, func(name []byte, _ uint8) { fn(name) })
}

// ReadTypes is Read that also gives each entry's d_type (unix.DT_REG,
// unix.DT_DIR, ...; unix.DT_UNKNOWN where the filesystem does not say),
// which tells a caller the kind of an entry without an fstatat.
func ReadTypes(fd int, fn func(name []byte, typ uint8)) error {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	buf := *bp
	for {
		n, err := unixutil.IgnoringEINTRIO(unix.Getdents, fd, buf)
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		if err := parse(buf[:n], fn); err != nil {
			return err
		}
	}
}

// parse calls fn for the names and types of the linux_dirent64 records in b.
func parse(b []byte, fn func(name []byte, typ uint8)) error {
	const (
		inoOff    = unsafe.Offsetof(unix.Dirent{}.Ino)
		typeOff   = unsafe.Offsetof(unix.Dirent{}.Type)
		reclenOff = unsafe.Offsetof(unix.Dirent{}.Reclen)
		nameOff   = unsafe.Offsetof(unix.Dirent{}.Name)
	)
	for len(b) > 0 {
		if len(b) < int(nameOff) {
			return ErrMalformed
		}
		reclen := int(binary.NativeEndian.Uint16(b[reclenOff:]))
		if reclen < int(nameOff) || reclen > len(b) {
			return ErrMalformed
		}
		rec := b[:reclen]
		b = b[reclen:]
		if binary.NativeEndian.Uint64(rec[inoOff:]) == 0 {
			continue // a deleted entry, as os.ReadDir skips them
		}
		name := rec[nameOff:]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if len(name) == 0 || string(name) == "." || string(name) == ".." {
			continue
		}
		fn(name, rec[typeOff])
	}
	return nil
}
