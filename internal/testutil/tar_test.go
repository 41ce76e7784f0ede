package testutil

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
	"time"
)

// TestTar: each named field lands in the header, the defaults fill the
// rest, and a streamed Content is cut at Size.
func TestTar(t *testing.T) {
	mtime := time.Unix(1700000000, 0)
	data := Tar(t,
		TarEntry{Name: "d/", Type: tar.TypeDir},
		TarEntry{Name: "d/f", Body: "hi", UID: 7, GID: 8, Xattrs: map[string]string{"user.k": "v"}, ModTime: mtime, Format: tar.FormatPAX},
		TarEntry{Name: "d/l", Type: tar.TypeSymlink, Linkname: "f", Mode: 0o777},
		TarEntry{Name: "d/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3},
		TarEntry{Name: "d/z", Size: 5, Content: Zeros},
	)
	tr := tar.NewReader(bytes.NewReader(data))
	type got struct {
		name     string
		typ      byte
		mode     int64
		uid, gid int
		link     string
		major    int64
		minor    int64
		body     string
	}
	want := []got{
		{name: "d/", typ: tar.TypeDir, mode: 0o755},
		{name: "d/f", typ: tar.TypeReg, mode: 0o644, uid: 7, gid: 8, body: "hi"},
		{name: "d/l", typ: tar.TypeSymlink, mode: 0o777, link: "f"},
		{name: "d/null", typ: tar.TypeChar, mode: 0o644, major: 1, minor: 3},
		{name: "d/z", typ: tar.TypeReg, mode: 0o644, body: "\x00\x00\x00\x00\x00"},
	}
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("%d entries, want %d", i, len(want))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		g := got{h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, h.Devmajor, h.Devminor, string(body)}
		if g != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, g, want[i])
		}
		if h.Name == "d/f" && (h.PAXRecords["SCHILY.xattr.user.k"] != "v" || !h.ModTime.Equal(mtime)) {
			t.Errorf("d/f: xattrs %v, mtime %v", h.PAXRecords, h.ModTime)
		}
	}
}
