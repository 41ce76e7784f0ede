package testutil

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// TarEntry is one entry of a test tar, by named fields (tar and whiteout
// cases written as code). Zero fields take the defaults said at each.
type TarEntry struct {
	Name string
	// Type is a tar type flag; tar.TypeReg when 0.
	Type byte
	// Mode is the permission bits; 0o644 when 0 (0o755 for a directory).
	Mode     int64
	UID, GID int
	// Body is a regular file's content. Content, when set, streams it
	// instead: Size bytes read from Content (a bomb never held in memory).
	Body    string
	Content io.Reader
	Size    int64
	// Linkname is a symlink's or hard link's target.
	Linkname string
	// Devmajor and Devminor are a device node's numbers.
	Devmajor, Devminor int64
	// Xattrs become SCHILY.xattr. PAX records.
	Xattrs map[string]string
	// ModTime is left zero unless set; Format is tar's choice unless set.
	ModTime time.Time
	Format  tar.Format
}

// Header is e's tar header.
func (e TarEntry) Header() *tar.Header {
	h := &tar.Header{
		Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
		Linkname: e.Linkname, Devmajor: e.Devmajor, Devminor: e.Devminor,
		ModTime: e.ModTime, Format: e.Format,
	}
	if h.Typeflag == 0 {
		h.Typeflag = tar.TypeReg
	}
	if h.Mode == 0 {
		h.Mode = 0o644
		if h.Typeflag == tar.TypeDir {
			h.Mode = 0o755
		}
	}
	if h.Typeflag == tar.TypeReg {
		h.Size = int64(len(e.Body))
		if e.Content != nil {
			h.Size = e.Size
		}
	}
	for k, v := range e.Xattrs {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+k] = v
	}
	return h
}

// TarWriter writes TarEntry values to a tar stream, for tars made while
// they are read (too big to hold, or endless).
type TarWriter struct {
	tw *tar.Writer
}

// NewTarWriter writes a tar to w.
func NewTarWriter(w io.Writer) *TarWriter { return &TarWriter{tar.NewWriter(w)} }

// Add writes e: its header, then its content.
func (w *TarWriter) Add(e TarEntry) error {
	h := e.Header()
	if err := w.tw.WriteHeader(h); err != nil {
		return err
	}
	var body io.Reader = strings.NewReader(e.Body)
	if e.Content != nil {
		body = io.LimitReader(e.Content, e.Size)
	}
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	_, err := io.Copy(w.tw, body)
	return err
}

// Close writes the tar's end marker (not closing the underlying writer).
func (w *TarWriter) Close() error { return w.tw.Close() }

// Tar returns a tar of entries, in order.
func Tar(t testing.TB, entries ...TarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewTarWriter(&buf)
	for _, e := range entries {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Zeros is an endless reader of zero bytes, a TarEntry's Content for a
// big file that compresses to almost nothing.
var Zeros io.Reader = zeros{}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
