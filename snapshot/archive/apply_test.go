package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/builder-dev/builder/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestCleanName(t *testing.T) {
	for _, c := range []struct {
		Name, Want string
		Invalid    bool
	}{
		{Name: "a/b", Want: "a/b"},
		{Name: "./a/b/", Want: "a/b"},
		{Name: "/a//b", Want: "a/b"},
		{Name: "./", Want: ""},
		{Name: "/", Want: ""},
		{Name: "/../a", Want: "a"},
		{Name: "a/../b", Want: "b"},
		{Name: "..", Invalid: true},
		{Name: "../a", Invalid: true},
		{Name: "a/../../b", Invalid: true},
		{Name: "./../a", Invalid: true},
	} {
		got, err := cleanName(c.Name)
		if c.Invalid {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("cleanName(%q) = %q, %v; want ErrInvalid", c.Name, got, err)
			}
			continue
		}
		if err != nil || got != c.Want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", c.Name, got, err, c.Want)
		}
	}
}

// TestApply applies layers in order onto one directory and compares the
// resulting tree.
func TestApply(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, c := range []struct {
		Name   string
		Opts   ApplyOptions
		Layers [][]tarEntry
		Want   []string
		// WantBytes is the file content written by the last layer.
		WantBytes int64
	}{
		{
			Name: "kinds modes owners",
			Opts: ApplyOptions{Overlay: true},
			Layers: [][]tarEntry{{
				{Name: "bin/", Type: tar.TypeDir},
				{Name: "bin/su", Mode: 0o4755, Body: "#!su", Xattrs: map[string]string{"security.capability": capNetBindService}},
				{Name: "bin/sg", Mode: 0o2711, UID: 1000, GID: 50, Body: "sg"},
				{Name: "bin/sh", Type: tar.TypeSymlink, Mode: 0o777, Linkname: "su"},
				{Name: "bin/su2", Type: tar.TypeLink, Linkname: "bin/su"},
				{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
				{Name: "dev/loop9", Type: tar.TypeBlock, Mode: 0o660, GID: 6, Devmajor: 7, Devminor: 9},
				{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o600, UID: 7},
				{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777, Xattrs: map[string]string{"user.note": "scratch"}},
				{Name: "./etc/motd", Body: "hi\n"},
				{Name: "/abs", Body: "x"},
			}},
			Want: []string{
				"abs 0644 0:0 \"x\"",
				"bin 0755 0:0 dir",
				"bin/sg 2711 1000:50 \"sg\"",
				"bin/sh 0777 0:0 -> su",
				"bin/su 4755 0:0 \"#!su\" security.capability=0x0100000200040000000000000000000000000000",
				"bin/su2 4755 0:0 \"#!su\" =bin/su security.capability=0x0100000200040000000000000000000000000000",
				"dev 0755 0:0 dir",
				"dev/loop9 0660 0:6 4 7/9",
				"dev/null 0666 0:0 3 1/3",
				"etc 0755 0:0 dir",
				"etc/motd 0644 0:0 \"hi\\n\"",
				"run 0755 0:0 dir",
				"run/fifo 0600 7:0 fifo",
				"tmp 1777 0:0 dir user.note=scratch",
			},
			WantBytes: 10,
		},
		{
			Name: "a parent symlink resolves inside the root",
			Layers: [][]tarEntry{{
				{Name: "etc/", Type: tar.TypeDir},
				{Name: "link", Type: tar.TypeSymlink, Linkname: "/etc"},
				{Name: "up", Type: tar.TypeSymlink, Linkname: "../../.."},
				{Name: "link/passwd", Body: "p"},
				{Name: "up/etc/group", Body: "g"},
				{Name: "h", Type: tar.TypeLink, Linkname: "link/passwd"},
			}},
			Want: []string{
				"etc 0755 0:0 dir",
				"etc/group 0644 0:0 \"g\"",
				"etc/passwd 0644 0:0 \"p\"",
				"h 0644 0:0 \"p\" =etc/passwd",
				"link 0777 0:0 -> /etc",
				"up 0777 0:0 -> ../../..",
			},
			WantBytes: 2,
		},
		{
			Name: "overlay whiteouts",
			Opts: ApplyOptions{Overlay: true},
			Layers: [][]tarEntry{{
				{Name: ".wh.gone"},
				{Name: "d/", Type: tar.TypeDir},
				{Name: "d/.wh..wh..opq"},
				{Name: "d/new", Body: "n"},
				{Name: "e/.wh.deep"},
			}},
			Want: []string{
				"d 0755 0:0 dir trusted.overlay.opaque=y",
				"d/new 0644 0:0 \"n\"",
				"e 0755 0:0 dir",
				"e/deep 0000 0:0 3 0/0",
				"gone 0000 0:0 3 0/0",
			},
			WantBytes: 1,
		},
		{
			Name: "overlay drops overlay xattrs from the tar",
			Opts: ApplyOptions{Overlay: true},
			Layers: [][]tarEntry{{
				{Name: "d/", Type: tar.TypeDir, Xattrs: map[string]string{"trusted.overlay.redirect": "/etc", "user.a": "b"}},
			}},
			Want: []string{"d 0755 0:0 dir user.a=b"},
		},
		{
			Name: "file deleted",
			Layers: [][]tarEntry{
				{{Name: "a", Body: "a"}, {Name: "b", Body: "b"}, {Name: "d/x", Body: "x"}},
				{{Name: ".wh.a"}, {Name: ".wh.d"}, {Name: ".wh.missing"}, {Name: "nodir/.wh.x"}},
			},
			Want: []string{"b 0644 0:0 \"b\""},
		},
		{
			Name: "dir replaced by file and back",
			Layers: [][]tarEntry{
				{{Name: "d/", Type: tar.TypeDir}, {Name: "d/f", Body: "f"}},
				{{Name: "d", Body: "now a file"}},
				{{Name: "d/", Type: tar.TypeDir, Mode: 0o700}, {Name: "d/.wh..wh..opq"}, {Name: "d/g", Body: "g"}},
			},
			Want: []string{
				"d 0700 0:0 dir",
				"d/g 0644 0:0 \"g\"",
			},
			WantBytes: 1,
		},
		{
			Name: "opaque dir keeps only this layer's entries",
			Layers: [][]tarEntry{
				{{Name: "d/old", Body: "o"}, {Name: "d/sub/old", Body: "o"}, {Name: "keep", Body: "k"}},
				// "-x" sorts before ".wh..wh..opq": it must survive.
				{{Name: "d/", Type: tar.TypeDir}, {Name: "d/-x", Body: "x"}, {Name: "d/.wh..wh..opq"}, {Name: "d/new", Body: "n"}},
			},
			Want: []string{
				"d 0755 0:0 dir",
				"d/-x 0644 0:0 \"x\"",
				"d/new 0644 0:0 \"n\"",
				"keep 0644 0:0 \"k\"",
			},
			WantBytes: 2,
		},
		{
			Name: "dir over dir merges and takes the new attributes",
			Layers: [][]tarEntry{
				{{Name: "d/", Type: tar.TypeDir}, {Name: "d/a", Body: "a"}},
				{{Name: "d/", Type: tar.TypeDir, Mode: 0o750, GID: 4}, {Name: "d/b", Body: "b"}},
			},
			Want: []string{
				"d 0750 0:4 dir",
				"d/a 0644 0:0 \"a\"",
				"d/b 0644 0:0 \"b\"",
			},
			WantBytes: 1,
		},
		{
			Name: "replacing a symlink never writes through it",
			Layers: [][]tarEntry{
				{{Name: "target", Body: "keep me"}, {Name: "s", Type: tar.TypeSymlink, Linkname: "target"}},
				{{Name: "s", Body: "new"}},
			},
			Want: []string{
				"s 0644 0:0 \"new\"",
				"target 0644 0:0 \"keep me\"",
			},
			WantBytes: 3,
		},
		{
			Name: "no whiteouts extracts them as files",
			Opts: ApplyOptions{NoWhiteouts: true},
			Layers: [][]tarEntry{
				{{Name: "a", Body: "a"}},
				{{Name: ".wh.a"}, {Name: "d/.wh..wh..opq"}},
			},
			Want: []string{
				".wh.a 0644 0:0 \"\"",
				"a 0644 0:0 \"a\"",
				"d 0755 0:0 dir",
				"d/.wh..wh..opq 0644 0:0 \"\"",
			},
		},
		{
			Name: "chown owns every entry",
			Opts: ApplyOptions{Chown: &Owner{UID: 1234, GID: 5678}},
			Layers: [][]tarEntry{{
				{Name: "d/", Type: tar.TypeDir, UID: 1},
				{Name: "d/f", Mode: 0o4755, UID: 2, Body: "f"},
				{Name: "d/l", Type: tar.TypeSymlink, Linkname: "f"},
			}},
			Want: []string{
				"d 0755 1234:5678 dir",
				"d/f 4755 1234:5678 \"f\"",
				"d/l 0777 1234:5678 -> f",
			},
			WantBytes: 1,
		},
	} {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			var n int64
			for _, l := range c.Layers {
				n = applyTar(t, dir, c.Opts, l...)
			}
			assertLines(t, describeTree(t, dir), c.Want)
			if n != c.WantBytes {
				t.Errorf("Apply wrote %d bytes, want %d", n, c.WantBytes)
			}
		})
	}
}

func TestApplyTimes(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	old := time.Unix(1000000000, 0)
	far := time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC) // past UnixNano's range
	applyTar(t, dir, ApplyOptions{Overlay: true},
		tarEntry{Name: "d/", Type: tar.TypeDir, ModTime: old},
		tarEntry{Name: "d/e/", Type: tar.TypeDir, ModTime: old},
		tarEntry{Name: "d/e/f", Body: "f", ModTime: far},
		tarEntry{Name: "d/l", Type: tar.TypeSymlink, Linkname: "nowhere", ModTime: old},
		tarEntry{Name: "d/.wh.w", ModTime: old},
	)
	for _, p := range []string{"d", "d/e", "d/e/f", "d/l", "d/w"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &st); err != nil {
			t.Fatal(err)
		}
		want := old
		if p == "d/e/f" {
			want = far
		}
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(want) {
			t.Errorf("mtime of %s = %v, want %v", p, got, want)
		}
	}
}

// TestApplyHostile feeds tars that try to reach outside the root and checks
// that nothing outside changed, whether or not Apply reports an error.
func TestApplyHostile(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, c := range []struct {
		Name    string
		Opts    ApplyOptions
		Entries func(outside string) []tarEntry
		WantErr bool
		// WantX, if set, names the file (given outside's path) that
		// must hold the "x" written, inside the root.
		WantX func(outside string) string
	}{
		{
			Name:    "dotdot",
			Entries: func(string) []tarEntry { return []tarEntry{{Name: "../outside/evil", Body: "x"}} },
			WantErr: true,
		},
		{
			Name:    "dotdot in the middle",
			Entries: func(string) []tarEntry { return []tarEntry{{Name: "a/../../outside/secret", Body: "x"}} },
			WantErr: true,
		},
		{
			Name:    "absolute name",
			Entries: func(o string) []tarEntry { return []tarEntry{{Name: o + "/secret", Body: "x"}} },
			WantX:   func(o string) string { return o + "/secret" },
		},
		{
			// Inside the root the symlink dangles, so there is no
			// parent directory to write into (Docker fails alike).
			Name: "symlink dir escape to nothing",
			Entries: func(string) []tarEntry {
				return []tarEntry{
					{Name: "l", Type: tar.TypeSymlink, Linkname: "../../../../../../outside"},
					{Name: "l/secret", Body: "x"},
				}
			},
			WantErr: true,
		},
		{
			Name: "symlink dir relative escape then write through",
			Entries: func(string) []tarEntry {
				return []tarEntry{
					{Name: "outside/", Type: tar.TypeDir},
					{Name: "l", Type: tar.TypeSymlink, Linkname: "../../../../../../outside"},
					{Name: "l/secret", Body: "x"},
					{Name: "l/evil", Body: "x"},
				}
			},
			WantX: func(string) string { return "outside/secret" },
		},
		{
			Name: "symlink dir absolute escape then write through",
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: o + "/dir/", Type: tar.TypeDir},
					{Name: "l", Type: tar.TypeSymlink, Linkname: o},
					{Name: "l/secret", Body: "x"},
					{Name: "l/dir/", Type: tar.TypeDir, Mode: 0o777},
					{Name: "l/dir/f", Body: "x"},
					{Name: "l/fifo", Type: tar.TypeFifo},
					{Name: "l/.wh.dir"},
				}
			},
			WantX: func(o string) string { return o + "/secret" },
		},
		{
			// Apply keeps the handle of the last parent directory:
			// replacing that directory with a symlink must not leave
			// a later entry written through the old handle, nor let
			// it follow the symlink out of the root.
			Name: "cached parent replaced by a symlink",
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: o + "/", Type: tar.TypeDir},
					{Name: "d/", Type: tar.TypeDir},
					{Name: "d/a", Body: "a"},
					{Name: "d", Type: tar.TypeSymlink, Linkname: o},
					{Name: "d/secret", Body: "x"},
				}
			},
			WantX: func(o string) string { return o + "/secret" },
		},
		{
			Name: "cached parent's ancestor replaced by a symlink",
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: o + "/dir/", Type: tar.TypeDir},
					{Name: "a/dir/", Type: tar.TypeDir},
					{Name: "a/dir/f0", Body: "a"},
					{Name: "a", Type: tar.TypeSymlink, Linkname: "../../../../.." + o},
					{Name: "a/dir/f", Body: "x"},
				}
			},
			WantX: func(o string) string { return o + "/dir/f" },
		},
		{
			Name: "cached parent replaced by a hardlink to a symlink",
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: o + "/", Type: tar.TypeDir},
					{Name: "l", Type: tar.TypeSymlink, Linkname: o},
					{Name: "d/", Type: tar.TypeDir},
					{Name: "d/a", Body: "a"},
					{Name: "d", Type: tar.TypeLink, Linkname: "l"},
					{Name: "d/secret", Body: "x"},
				}
			},
			WantX: func(o string) string { return o + "/secret" },
		},
		{
			Name: "cached parent whited out then a symlink",
			Opts: ApplyOptions{Overlay: true},
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: o + "/", Type: tar.TypeDir},
					{Name: "d/", Type: tar.TypeDir},
					{Name: "d/a", Body: "a"},
					{Name: ".wh.d"},
					{Name: "d", Type: tar.TypeSymlink, Linkname: o},
					{Name: "d/secret", Body: "x"},
				}
			},
			WantX: func(o string) string { return o + "/secret" },
		},
		{
			Name: "symlink to file then file",
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: "l", Type: tar.TypeSymlink, Linkname: o + "/secret"},
					{Name: "l", Body: "x", Mode: 0o777},
				}
			},
			WantX: func(string) string { return "l" },
		},
		{
			Name: "symlink to dir then dir entry",
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: "l", Type: tar.TypeSymlink, Linkname: o},
					{Name: "l/", Type: tar.TypeDir, Mode: 0o777, Xattrs: map[string]string{"user.evil": "1"}},
				}
			},
		},
		{
			Name: "symlink chain",
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: o + "/", Type: tar.TypeDir},
					{Name: "a", Type: tar.TypeSymlink, Linkname: "b/c"},
					{Name: "b", Type: tar.TypeSymlink, Linkname: "/"},
					{Name: "c", Type: tar.TypeSymlink, Linkname: ".." + o},
					{Name: "a/secret", Body: "x"},
				}
			},
			WantX: func(o string) string { return o + "/secret" },
		},
		{
			Name: "hardlink dotdot",
			Entries: func(string) []tarEntry {
				return []tarEntry{{Name: "h", Type: tar.TypeLink, Linkname: "../outside/secret"}}
			},
			WantErr: true,
		},
		{
			Name:    "hardlink absolute",
			Entries: func(o string) []tarEntry { return []tarEntry{{Name: "h", Type: tar.TypeLink, Linkname: o + "/secret"}} },
			WantErr: true,
		},
		{
			Name: "hardlink through symlink then write",
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: "l", Type: tar.TypeSymlink, Linkname: o},
					{Name: "h", Type: tar.TypeLink, Linkname: "l/secret"},
					{Name: "h", Body: "x"},
				}
			},
			WantErr: true,
		},
		{
			Name: "hardlink to a symlink",
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: "l", Type: tar.TypeSymlink, Linkname: o + "/secret"},
					{Name: "h", Type: tar.TypeLink, Linkname: "l"},
					{Name: "h/x", Body: "x"},
				}
			},
			WantErr: true, // h is a symlink to a missing file inside the root
		},
		{
			Name: "whiteout through symlink",
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: "l", Type: tar.TypeSymlink, Linkname: o},
					{Name: "l/.wh.secret"},
					{Name: "l/.wh.dir"},
				}
			},
		},
		{
			Name: "opaque through symlink",
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: "l", Type: tar.TypeSymlink, Linkname: o},
					{Name: "l/.wh..wh..opq"},
				}
			},
		},
		{
			Name: "overlay whiteout and opaque through symlink",
			Opts: ApplyOptions{Overlay: true},
			Entries: func(o string) []tarEntry {
				return []tarEntry{
					{Name: o + "/", Type: tar.TypeDir},
					{Name: "l", Type: tar.TypeSymlink, Linkname: o},
					{Name: "l/.wh.secret"},
					{Name: "l/dir/.wh..wh..opq"},
				}
			},
		},
		{
			Name:    "whiteout dotdot",
			Entries: func(string) []tarEntry { return []tarEntry{{Name: "../outside/.wh.secret"}} },
			WantErr: true,
		},
		{
			Name:    "whiteout of dotdot",
			Entries: func(string) []tarEntry { return []tarEntry{{Name: "d/.wh.."}} },
			WantErr: true,
		},
	} {
		t.Run(c.Name, func(t *testing.T) {
			top := t.TempDir()
			root := filepath.Join(top, "root")
			outside := filepath.Join(top, "outside")
			for _, d := range []string{root, outside, filepath.Join(outside, "dir")} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outside, "dir", "f"), []byte("f"), 0o600); err != nil {
				t.Fatal(err)
			}
			before := describeWithTimes(t, top, root)

			_, err := Apply(t.Context(), root, bytes.NewReader(makeTar(t, c.Entries(outside)...)), c.Opts)
			if c.WantErr && err == nil {
				t.Errorf("Apply succeeded, want an error")
			}
			if !c.WantErr && err != nil {
				t.Errorf("Apply: %v", err)
			}
			assertLines(t, describeWithTimes(t, top, root), before)
			if c.WantX != nil {
				b, err := os.ReadFile(filepath.Join(root, c.WantX(outside)))
				if err != nil || string(b) != "x" {
					t.Errorf("inside the root, %s: %q, %v; want \"x\"", c.WantX(outside), b, err)
				}
			}
		})
	}
}

// describeWithTimes describes everything under top except root, with
// mtimes, so that any creation, removal or change shows.
func describeWithTimes(t *testing.T, top, root string) []string {
	t.Helper()
	var out []string
	for _, line := range describeTree(t, top) {
		name, _, _ := strings.Cut(line, " ")
		if name == "root" || strings.HasPrefix(name, "root/") {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(top, name), &st); err != nil {
			t.Fatal(err)
		}
		out = append(out, line+" mtime="+time.Unix(st.Mtim.Unix()).String())
	}
	return out
}

func TestApplyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Apply(ctx, t.TempDir(), bytes.NewReader(makeTar(t, tarEntry{Name: "a"})), ApplyOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a cancelled context: %v", err)
	}
}
