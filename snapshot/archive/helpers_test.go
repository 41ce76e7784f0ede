package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/builder-dev/builder/internal/testutil"
	"golang.org/x/sys/unix"
)

// t0 is the mtime of every test entry unless a case says otherwise.
var t0 = time.Unix(1700000000, 0)

// tarEntry is one entry of a test tar; makeTar gives it this package's
// defaults.
type tarEntry = testutil.TarEntry

// makeTar is testutil.Tar with every entry in PAX format and, unless it
// says otherwise, mtime t0.
func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	for i := range entries {
		if entries[i].ModTime.IsZero() {
			entries[i].ModTime = t0
		}
		entries[i].Format = tar.FormatPAX
	}
	return testutil.Tar(t, entries...)
}

// listTar renders a tar as one line per entry, in order:
// "name type mode uid:gid [extra] [xattrs]".
func listTar(t testing.TB, data []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var extra string
		switch h.Typeflag {
		case tar.TypeReg:
			extra = showBody(body)
		case tar.TypeDir:
			extra = "dir"
		case tar.TypeSymlink:
			extra = "-> " + h.Linkname
		case tar.TypeLink:
			extra = "link " + h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			extra = fmt.Sprintf("%c %d/%d", h.Typeflag, h.Devmajor, h.Devminor)
		case tar.TypeFifo:
			extra = "fifo"
		default:
			extra = fmt.Sprintf("type %q", h.Typeflag)
		}
		line := fmt.Sprintf("%s %04o %d:%d %s", h.Name, h.Mode, h.Uid, h.Gid, extra)
		var xs []string
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, paxXattr); ok {
				xs = append(xs, x+"="+showXattr(v))
			}
		}
		sort.Strings(xs)
		for _, x := range xs {
			line += " " + x
		}
		out = append(out, line)
	}
}

// describeTree renders dir (not following symlinks) as sorted lines
// "path kind mode uid:gid [extra] [xattrs]". A second name of an inode
// shows "=first". Overlay xattrs are shown: tests check them.
func describeTree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	seen := map[[2]uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var extra string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			extra = "dir"
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			extra = showBody(b)
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			extra = "-> " + target
		case unix.S_IFCHR:
			extra = fmt.Sprintf("3 %d/%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFBLK:
			extra = fmt.Sprintf("4 %d/%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			extra = "fifo"
		default:
			extra = "other"
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			id := [2]uint64{st.Dev, st.Ino}
			if first, ok := seen[id]; ok {
				extra += " =" + first
			} else {
				seen[id] = rel
			}
		}
		line := fmt.Sprintf("%s %04o %d:%d %s", rel, st.Mode&0o7777, st.Uid, st.Gid, extra)
		xattrs, err := listXattrs(p)
		if err != nil {
			return err
		}
		var xs []string
		for _, x := range xattrs {
			xs = append(xs, x.Name+"="+showXattr(string(x.Value)))
		}
		sort.Strings(xs)
		for _, x := range xs {
			line += " " + x
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func showBody(b []byte) string {
	if len(b) <= 32 {
		return fmt.Sprintf("%q", b)
	}
	sum := sha256.Sum256(b)
	return fmt.Sprintf("size=%d sha256:%x", len(b), sum[:6])
}

func showXattr(v string) string {
	for _, c := range []byte(v) {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("0x%x", v)
		}
	}
	return v
}

func assertLines(t testing.TB, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") == strings.Join(want, "\n") {
		return
	}
	t.Errorf("got:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
}

// capNetBindService is a valid security.capability value (VFS_CAP_REVISION_2,
// effective, permitted cap_net_bind_service): the kernel checks the format.
var capNetBindService = string([]byte{
	0x01, 0x00, 0x00, 0x02, // magic_etc: revision 2 | effective
	0x00, 0x04, 0x00, 0x00, // permitted[0]: bit 10
	0x00, 0x00, 0x00, 0x00, // inheritable[0]
	0x00, 0x00, 0x00, 0x00, // permitted[1]
	0x00, 0x00, 0x00, 0x00, // inheritable[1]
})

// applyTar applies entries to dir and fails the test on error.
func applyTar(t testing.TB, dir string, opts ApplyOptions, entries ...tarEntry) int64 {
	t.Helper()
	n, err := Apply(t.Context(), dir, bytes.NewReader(makeTar(t, entries...)), opts)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeLayer(t testing.TB, dir string, opts WriteOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteLayer(t.Context(), dir, &buf, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
