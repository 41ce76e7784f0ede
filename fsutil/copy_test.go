package fsutil

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
)

// copyCase is one COPY on a source tree and a destination tree written as
// code, with the listing of the destination (under prefixes) it must give,
// or the error it must fail with.
type copyCase struct {
	name     string
	src      []node
	dst      []node
	req      CopyRequest // roots are filled in
	prefixes []string
	want     string // listing; "" with wantErr
	wantErr  string
}

func runCopyCases(t *testing.T, cases []copyCase) {
	t.Helper()
	testutil.RequiresRoot(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
			writeTree(t, src, tc.src...)
			writeTree(t, dst, tc.dst...)
			req := tc.req
			req.SrcRoot, req.DstRoot = src, dst
			err := Copy(context.Background(), req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Copy: got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			if got := listing(t, dst, tc.prefixes...); got != tc.want {
				t.Errorf("destination:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// Contents of the files used below and their sha256, as fs.txt prints them.
const (
	shaA   = "size=2 sha256=87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7" // "a\n"
	shaB   = "size=2 sha256=0263829989b6fd954f72baaf2fc64bc2e2f01d692d4de72986ea808f6e99813f" // "b\n"
	shaC   = "size=2 sha256=a3a5e715f0cc574a73c3f9bebb6bc24f32ffd5b67b387244c2c909da779a1478" // "c\n"
	shaX   = "size=2 sha256=73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac" // "x\n"
	shaOld = "size=4 sha256=01d09d19c2139a46aebfb577780d123d7396e97201bc7ead210a2ebff8239dee" // "old\n"
)

func TestCopyPlacement(t *testing.T) {
	tree := []node{file("src/a", "a\n"), file("src/sub/b", "b\n"), file("f", "a\n"), file("g", "b\n")}
	runCopyCases(t, []copyCase{{
		name: "dir copies its contents", src: tree,
		req:      CopyRequest{Sources: []string{"src"}, Dest: "/d"},
		prefixes: []string{"/d"},
		want: "/d\td\t0755\t0:0\n" +
			"/d/a\tf\t0644\t0:0\t" + shaA + "\n" +
			"/d/sub\td\t0755\t0:0\n" +
			"/d/sub/b\tf\t0644\t0:0\t" + shaB + "\n",
	}, {
		name: "dir merges into an existing dir", src: tree,
		dst:      []node{file("d/old", "old\n"), file("d/a", "old\n"), dir("d/sub").withMode(0o700)},
		req:      CopyRequest{Sources: []string{"src/"}, Dest: "/d/"},
		prefixes: []string{"/d"},
		want: "/d\td\t0755\t0:0\n" +
			"/d/a\tf\t0644\t0:0\t" + shaA + "\n" +
			"/d/old\tf\t0644\t0:0\t" + shaOld + "\n" +
			"/d/sub\td\t0755\t0:0\n" + // below the source: takes its metadata
			"/d/sub/b\tf\t0644\t0:0\t" + shaB + "\n",
	}, {
		name: "file into dir with slash", src: tree,
		req: CopyRequest{Sources: []string{"f"}, Dest: "/new/"}, prefixes: []string{"/new"},
		want: "/new\td\t0755\t0:0\n/new/f\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "file renamed without slash", src: tree,
		req: CopyRequest{Sources: []string{"f"}, Dest: "/a/b/renamed"}, prefixes: []string{"/a"},
		want: "/a\td\t0755\t0:0\n/a/b\td\t0755\t0:0\n/a/b/renamed\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "file into existing dir without slash", src: tree, dst: []node{dir("ed")},
		req: CopyRequest{Sources: []string{"f"}, Dest: "/ed"}, prefixes: []string{"/ed"},
		want: "/ed\td\t0755\t0:0\n/ed/f\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "file replaces a file", src: tree, dst: []node{file("etc/passwd", "old\n").withMode(0o600).withOwner(5, 5)},
		req: CopyRequest{Sources: []string{"f"}, Dest: "/etc/passwd"}, prefixes: []string{"/etc"},
		want: "/etc\td\t0755\t0:0\n/etc/passwd\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "into the root", src: tree,
		req: CopyRequest{Sources: []string{"f"}, Dest: "/"}, prefixes: []string{"/f"},
		want: "/f\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "several sources into a dir", src: tree,
		req: CopyRequest{Sources: []string{"f", "g", "src/sub"}, Dest: "/m/"}, prefixes: []string{"/m"},
		want: "/m\td\t0755\t0:0\n/m/b\tf\t0644\t0:0\t" + shaB + "\n/m/f\tf\t0644\t0:0\t" + shaA + "\n/m/g\tf\t0644\t0:0\t" + shaB + "\n",
	}, {
		name: "several sources need a slash", src: tree, dst: []node{dir("m")},
		req:     CopyRequest{Sources: []string{"f", "g"}, Dest: "/m"},
		wantErr: "destination must be a directory and end with a /",
	}, {
		name: "a wildcard matching several needs a slash", src: tree,
		req:     CopyRequest{Sources: []string{"[fg]"}, Dest: "/m"},
		wantErr: "destination must be a directory and end with a /",
	}, {
		name: "wildcard", src: append(tree, file("h.txt", "x\n"), file("sub/i.txt", "c\n")),
		req: CopyRequest{Sources: []string{"*.txt", "*/*.txt"}, Dest: "/w/"}, prefixes: []string{"/w"},
		want: "/w\td\t0755\t0:0\n/w/h.txt\tf\t0644\t0:0\t" + shaX + "\n/w/i.txt\tf\t0644\t0:0\t" + shaC + "\n",
	}, {
		// As BuildKit: the step succeeds and makes nothing, not even
		// the destination.
		name: "wildcard matching nothing", src: tree,
		req:      CopyRequest{Sources: []string{"*.nomatch"}, Dest: "/w/"},
		prefixes: []string{"/w"},
		want:     "",
	}, {
		name: "wildcard matching nothing beside a source", src: tree,
		req:      CopyRequest{Sources: []string{"f", "*.nomatch"}, Dest: "/w/"},
		prefixes: []string{"/w"},
		want:     "/w\td\t0755\t0:0\n/w/f\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "missing source", src: tree,
		req: CopyRequest{Sources: []string{"missing.txt"}, Dest: "/w/"}, wantErr: "/missing.txt",
	}, {
		name: "source through a file", src: tree,
		req: CopyRequest{Sources: []string{"f/x"}, Dest: "/w/"}, wantErr: "/f/x",
	}, {
		name: "dotdot clamped to the source root", src: tree,
		req: CopyRequest{Sources: []string{"../../f"}, Dest: "/clamped"}, prefixes: []string{"/clamped"},
		want: "/clamped\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "whole root", src: []node{file("a", "a\n"), dir("e")},
		req: CopyRequest{Sources: []string{"."}, Dest: "/all/"}, prefixes: []string{"/all"},
		want: "/all\td\t0755\t0:0\n/all/a\tf\t0644\t0:0\t" + shaA + "\n/all/e\td\t0755\t0:0\n",
	}, {
		name: "empty dirs", src: []node{dir("empty"), dir("tree/inner").withMode(0o700)},
		req: CopyRequest{Sources: []string{"empty", "tree"}, Dest: "/e/"}, prefixes: []string{"/e"},
		want: "/e\td\t0755\t0:0\n/e/inner\td\t0700\t0:0\n",
	}})
}

func TestCopySymlinks(t *testing.T) {
	tree := []node{
		file("real/f", "a\n"), symlink("real/rel", "f"), symlink("real/abs", "/real/f"),
		symlink("tofile", "real/f"), symlink("todir", "/real"), symlink("dangling", "nowhere"),
		symlink("etc", "/etc"), symlink("up", "../../../real/f"),
	}
	runCopyCases(t, []copyCase{{
		name: "top-level file symlink is followed", src: tree,
		req: CopyRequest{Sources: []string{"tofile"}, Dest: "/o/"}, prefixes: []string{"/o"},
		// named after the source as written, with the target's content
		want: "/o\td\t0755\t0:0\n/o/tofile\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "top-level dir symlink is followed, nested symlinks kept", src: tree,
		req: CopyRequest{Sources: []string{"todir"}, Dest: "/o"}, prefixes: []string{"/o"},
		want: "/o\td\t0755\t0:0\n/o/abs\tl\t-\t0:0\t-> /real/f\n/o/f\tf\t0644\t0:0\t" + shaA + "\n/o/rel\tl\t-\t0:0\t-> f\n",
	}, {
		name: "symlink climbing out stays in the root", src: tree,
		req: CopyRequest{Sources: []string{"up"}, Dest: "/o"}, prefixes: []string{"/o"},
		want: "/o\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "dangling symlink", src: tree,
		req: CopyRequest{Sources: []string{"dangling"}, Dest: "/o"}, wantErr: "/dangling",
	}, {
		name: "symlink to /etc resolves in the source root", src: tree,
		req: CopyRequest{Sources: []string{"etc/passwd"}, Dest: "/o"}, wantErr: "/etc/passwd",
	}, {
		name: "dest through absolute and relative symlinks", src: tree,
		dst: []node{dir("real/sub"), symlink("abslink", "/real"), symlink("rellink", "real")},
		req: CopyRequest{Sources: []string{"real/f", "tofile"}, Dest: "/abslink/"}, prefixes: []string{"/real", "/abslink"},
		want: "/abslink\tl\t-\t0:0\t-> /real\n/real\td\t0755\t0:0\n/real/f\tf\t0644\t0:0\t" + shaA + "\n/real/sub\td\t0755\t0:0\n/real/tofile\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "dest symlink to a file: the target is replaced", src: tree,
		dst: []node{file("real/file.txt", "old\n"), symlink("filelink", "/real/file.txt")},
		req: CopyRequest{Sources: []string{"real/f"}, Dest: "/filelink"}, prefixes: []string{"/real", "/filelink"},
		want: "/filelink\tl\t-\t0:0\t-> /real/file.txt\n/real\td\t0755\t0:0\n/real/file.txt\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "nested dest symlink where a dir goes is an error", src: []node{file("rootfs/lib/x", "x\n")},
		dst: []node{dir("usr/lib"), symlink("lib", "usr/lib")},
		req: CopyRequest{Sources: []string{"rootfs"}, Dest: "/"}, wantErr: "cannot copy to non-directory: /lib",
	}, {
		name: "nested dest symlink where a file goes is replaced, not followed", src: []node{file("s/passwd", "a\n")},
		dst: []node{file("etc/passwd", "old\n"), dir("d"), symlink("d/passwd", "/etc/passwd")},
		req: CopyRequest{Sources: []string{"s"}, Dest: "/d"}, prefixes: []string{"/d", "/etc"},
		want: "/d\td\t0755\t0:0\n/d/passwd\tf\t0644\t0:0\t" + shaA + "\n/etc\td\t0755\t0:0\n/etc/passwd\tf\t0644\t0:0\t" + shaOld + "\n",
	}})
}

func TestCopyOverwrite(t *testing.T) {
	tree := []node{file("f", "a\n"), file("d/f", "a\n")}
	runCopyCases(t, []copyCase{{
		name: "dir onto a file", src: tree, dst: []node{file("x", "old\n")},
		req: CopyRequest{Sources: []string{"d"}, Dest: "/x"}, wantErr: "cannot copy to non-directory: /x",
	}, {
		name: "file onto a dir inside a dir", src: tree, dst: []node{dir("x/f")},
		req: CopyRequest{Sources: []string{"f"}, Dest: "/x/"}, wantErr: "cannot replace directory /x/f",
	}, {
		name: "file below a file", src: tree, dst: []node{file("x", "old\n")},
		req: CopyRequest{Sources: []string{"f"}, Dest: "/x/y"}, wantErr: "not a directory",
	}, {
		name: "nested file onto a nested dir", src: tree, dst: []node{dir("x/f/inner")},
		req: CopyRequest{Sources: []string{"d"}, Dest: "/x"}, wantErr: "cannot replace directory /x/f",
	}})
}

func TestCopyOwners(t *testing.T) {
	testutil.RequiresRoot(t)
	src := []node{
		file("f", "a\n").withOwner(1000, 1000),
		dir("d").withOwner(123, 456).withMode(0o750), file("d/a", "a\n").withOwner(123, 456),
		dir("d/sub").withOwner(123, 456), file("d/sub/b", "b\n").withOwner(7, 8), symlink("d/l", "a").withOwner(123, 456),
	}
	base := []node{
		file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"),
		file("etc/group", "root:x:0:\ngrp:x:1001:\nother:x:3000:\n"),
		dir("existing").withOwner(7, 7),
	}
	runCopyCases(t, []copyCase{{
		name: "context copies are 0:0", src: src, dst: base,
		req: CopyRequest{Sources: []string{"d"}, Dest: "/c/"}, prefixes: []string{"/c"},
		want: "/c\td\t0755\t0:0\n/c/a\tf\t0644\t0:0\t" + shaA + "\n/c/l\tl\t-\t0:0\t-> a\n/c/sub\td\t0755\t0:0\n/c/sub/b\tf\t0644\t0:0\t" + shaB + "\n",
	}, {
		name: "copies from a stage keep owners, created dirs are 0:0", src: src, dst: base,
		req: CopyRequest{Sources: []string{"d"}, Dest: "/c/x", KeepOwners: true}, prefixes: []string{"/c"},
		want: "/c\td\t0755\t0:0\n/c/x\td\t0755\t0:0\n/c/x/a\tf\t0644\t123:456\t" + shaA + "\n/c/x/l\tl\t-\t123:456\t-> a\n/c/x/sub\td\t0755\t123:456\n/c/x/sub/b\tf\t0644\t7:8\t" + shaB + "\n",
	}, {
		name: "chown by names covers created parents", src: src, dst: base,
		req: CopyRequest{Sources: []string{"d"}, Dest: "/c/newparent/sub/", Chown: "app:grp", KeepOwners: true}, prefixes: []string{"/c"},
		want: "/c\td\t0755\t1000:1001\n/c/newparent\td\t0755\t1000:1001\n/c/newparent/sub\td\t0755\t1000:1001\n" +
			"/c/newparent/sub/a\tf\t0644\t1000:1001\t" + shaA + "\n/c/newparent/sub/l\tl\t-\t1000:1001\t-> a\n" +
			"/c/newparent/sub/sub\td\t0755\t1000:1001\n/c/newparent/sub/sub/b\tf\t0644\t1000:1001\t" + shaB + "\n",
	}, {
		name: "chown uid only doubles as gid", src: src, dst: base,
		req: CopyRequest{Sources: []string{"f"}, Dest: "/u.txt", Chown: "1000"}, prefixes: []string{"/u.txt"},
		want: "/u.txt\tf\t0644\t1000:1000\t" + shaA + "\n",
	}, {
		name: "chown name only takes the primary group", src: src, dst: base,
		req: CopyRequest{Sources: []string{"f"}, Dest: "/u.txt", Chown: "app"}, prefixes: []string{"/u.txt"},
		want: "/u.txt\tf\t0644\t1000:1001\t" + shaA + "\n",
	}, {
		name: "existing dirs keep their owner", src: src, dst: base,
		req: CopyRequest{Sources: []string{"d"}, Dest: "/existing/", Chown: "8:8"}, prefixes: []string{"/existing"},
		want: "/existing\td\t0755\t7:7\n/existing/a\tf\t0644\t8:8\t" + shaA + "\n/existing/l\tl\t-\t8:8\t-> a\n/existing/sub\td\t0755\t8:8\n/existing/sub/b\tf\t0644\t8:8\t" + shaB + "\n",
	}, {
		// As Docker 20.10 (internal/user.ResolveChown): an unknown user
		// is uid 0, its group the user's.
		name: "unknown chown user", src: src, dst: base,
		req: CopyRequest{Sources: []string{"f"}, Dest: "/u.txt", Chown: "nobody-here"}, prefixes: []string{"/u.txt"},
		want: "/u.txt\tf\t0644\t0:0\t" + shaA + "\n",
	}})
}

func TestCopyModes(t *testing.T) {
	src := []node{
		file("m/suid", "a\n").withMode(0o4755), file("m/sgid", "a\n").withMode(0o2711), file("m/none", "a\n"),
		dir("m/sticky").withMode(0o1777), dir("m/ro").withMode(0o555), file("m/ro/f", "b\n"),
	}
	runCopyCases(t, []copyCase{{
		name: "modes kept, special bits too", src: src,
		req: CopyRequest{Sources: []string{"m"}, Dest: "/m"}, prefixes: []string{"/m"},
		want: "/m\td\t0755\t0:0\n/m/none\tf\t0644\t0:0\t" + shaA + "\n/m/ro\td\t0555\t0:0\n/m/ro/f\tf\t0644\t0:0\t" + shaB + "\n" +
			"/m/sgid\tf\t2711\t0:0\t" + shaA + "\n/m/sticky\td\t1777\t0:0\n/m/suid\tf\t4755\t0:0\t" + shaA + "\n",
	}, {
		name: "chmod on files and nested dirs, not on created dirs", src: src,
		req: CopyRequest{Sources: []string{"m"}, Dest: "/m", Chmod: "640"}, prefixes: []string{"/m"},
		want: "/m\td\t0755\t0:0\n/m/none\tf\t0640\t0:0\t" + shaA + "\n/m/ro\td\t0640\t0:0\n/m/ro/f\tf\t0640\t0:0\t" + shaB + "\n" +
			"/m/sgid\tf\t0640\t0:0\t" + shaA + "\n/m/sticky\td\t0640\t0:0\n/m/suid\tf\t0640\t0:0\t" + shaA + "\n",
	}, {
		name: "chmod keeps the special bits it names", src: src,
		req: CopyRequest{Sources: []string{"m/none"}, Dest: "/x", Chmod: "04755"}, prefixes: []string{"/x"},
		want: "/x\tf\t4755\t0:0\t" + shaA + "\n",
	}, {
		name: "chmod with chown keeps setuid", src: src,
		req: CopyRequest{Sources: []string{"m/suid"}, Dest: "/x", Chown: "5:5"}, prefixes: []string{"/x"},
		want: "/x\tf\t4755\t5:5\t" + shaA + "\n",
	}, {
		name: "bad chmod", src: src,
		req: CopyRequest{Sources: []string{"m"}, Dest: "/m", Chmod: "u+x"}, wantErr: `"u+x"`,
	}, {
		name: "chmod out of range", src: src,
		req: CopyRequest{Sources: []string{"m"}, Dest: "/m", Chmod: "17777"}, wantErr: `"17777"`,
	}})
}

func TestCopyTimesLinksXattrsSpecial(t *testing.T) {
	testutil.RequiresRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	// security.capability in its v2 on-disk form: cap_net_bind_service,
	// effective and permitted.
	capNetBind := string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	writeTree(t, src,
		file("s/a", "a\n").withMtime(1600000000).withXattr("user.note", "hi").withXattr("security.capability", capNetBind),
		hardlink("s/a2", "s/a"), file("s/sub/b", "b\n"), dir("s/empty").withMtime(1500000000),
		node{path: "s/fifo", kind: 'p'}, node{path: "s/null", kind: 'c', rdev: int(unix.Mkdev(1, 3))},
		symlink("s/l", "a").withMtime(1400000000),
	)
	start := time.Now().Add(-time.Second)
	if err := Copy(context.Background(), CopyRequest{SrcRoot: src, DstRoot: dst, Sources: []string{"s"}, Dest: "/new/s", Chown: "9:9"}); err != nil {
		t.Fatal(err)
	}
	got := listing(t, dst)
	want := "/new\td\t0755\t9:9\n/new/s\td\t0755\t9:9\n" +
		"/new/s/a\tf\t0644\t9:9\t" + shaA + " nlink=2 xattr.security.capability=\"\\x01\\x00\\x00\\x02\\x00\\x04\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\" xattr.user.note=\"hi\"\n" +
		"/new/s/a2\tf\t0644\t9:9\t" + shaA + " nlink=2 hardlink=/new/s/a xattr.security.capability=\"\\x01\\x00\\x00\\x02\\x00\\x04\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\" xattr.user.note=\"hi\"\n" +
		"/new/s/empty\td\t0755\t9:9\n/new/s/fifo\tp\t0644\t9:9\n/new/s/l\tl\t-\t9:9\t-> a\n/new/s/null\tc\t0644\t9:9\tdev=1,3\n" +
		"/new/s/sub\td\t0755\t9:9\n/new/s/sub/b\tf\t0644\t9:9\t" + shaB + "\n"
	if got != want {
		t.Errorf("destination:\n%s\nwant:\n%s", got, want)
	}
	for p, want := range map[string]int64{"new/s/a": 1600000000, "new/s/empty": 1500000000, "new/s/l": 1400000000, "new/s/sub/b": ctxTime} {
		if got := mtime(t, dst, p); got != want {
			t.Errorf("mtime of %s = %d, want the source's %d", p, got, want)
		}
	}
	// Made parents and directories that got children carry the copy's time.
	for _, p := range []string{"new", "new/s", "new/s/sub"} {
		if !sinceBuild(t, dst, p, start) {
			t.Errorf("mtime of %s = %d, want the time of the copy", p, mtime(t, dst, p))
		}
	}
}

func TestCopyErrorsAreNotExist(t *testing.T) {
	testutil.RequiresRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	err := Copy(context.Background(), CopyRequest{SrcRoot: src, DstRoot: dst, Sources: []string{"nope"}, Dest: "/x"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing source: got %v, want fs.ErrNotExist", err)
	}
	if err := Copy(context.Background(), CopyRequest{SrcRoot: src, DstRoot: dst, Dest: "/x"}); err == nil {
		t.Fatal("no sources: want an error")
	}
	if _, err := os.Lstat(filepath.Join(dst, "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed copy wrote /x: %v", err)
	}
}

// A build context leaves named pipes out, as BuildKit's context transfer
// does; other sources (a stage, an image) keep them.
func TestCopyContextLeavesPipesOut(t *testing.T) {
	tree := []node{file("t/f", "a\n"), {path: "t/pipe", kind: 'p'}}
	runCopyCases(t, []copyCase{{
		name: "context", src: tree,
		req:      CopyRequest{Sources: []string{"t"}, Dest: "/c/", Context: true},
		prefixes: []string{"/c"},
		want:     "/c\td\t0755\t0:0\n/c/f\tf\t0644\t0:0\t" + shaA + "\n",
	}, {
		name: "context, by name", src: tree,
		req: CopyRequest{Sources: []string{"t/pipe"}, Dest: "/c/", Context: true}, wantErr: "t/pipe",
	}, {
		name: "context, by pattern", src: tree,
		req:      CopyRequest{Sources: []string{"t/p*"}, Dest: "/c/", Context: true},
		prefixes: []string{"/c"},
		want:     "",
	}, {
		name: "stage", src: tree,
		req:      CopyRequest{Sources: []string{"t"}, Dest: "/c/"},
		prefixes: []string{"/c"},
		want:     "/c\td\t0755\t0:0\n/c/f\tf\t0644\t0:0\t" + shaA + "\n/c/pipe\tp\t0644\t0:0\n",
	}})
}

// Files are created with their final mode and owner where that spares a
// chmod or chown (see newFileMeta): modes the umask would cut, setgid
// directories and kept owners must come out as with both calls.
func TestCopyModesOwnersShortcuts(t *testing.T) {
	src := []node{
		file("w/open", "a\n").withMode(0o666), file("w/all", "a\n").withMode(0o777), file("w/ro", "a\n").withMode(0o400),
		dir("w/g").withMode(0o2775).withOwner(3, 4), file("w/g/f", "b\n").withOwner(5, 6),
	}
	d := func(p, mode, owner string) string { return p + "\td\t" + mode + "\t" + owner + "\n" }
	f := func(p, mode, owner, sha string) string { return p + "\tf\t" + mode + "\t" + owner + "\t" + sha + "\n" }
	runCopyCases(t, []copyCase{{
		name: "context owners", src: src,
		req: CopyRequest{Sources: []string{"w"}, Dest: "/w"}, prefixes: []string{"/w"},
		want: d("/w", "0755", "0:0") + f("/w/all", "0777", "0:0", shaA) + d("/w/g", "2775", "0:0") + f("/w/g/f", "0644", "0:0", shaB) +
			f("/w/open", "0666", "0:0", shaA) + f("/w/ro", "0400", "0:0", shaA),
	}, {
		name: "kept owners", src: src,
		req: CopyRequest{Sources: []string{"w"}, Dest: "/w", KeepOwners: true}, prefixes: []string{"/w"},
		want: d("/w", "0755", "0:0") + f("/w/all", "0777", "0:0", shaA) + d("/w/g", "2775", "3:4") + f("/w/g/f", "0644", "5:6", shaB) +
			f("/w/open", "0666", "0:0", shaA) + f("/w/ro", "0400", "0:0", shaA),
	}, {
		name: "chown", src: src,
		req: CopyRequest{Sources: []string{"w"}, Dest: "/w", Chown: "7:8"}, prefixes: []string{"/w"},
		want: d("/w", "0755", "7:8") + f("/w/all", "0777", "7:8", shaA) + d("/w/g", "2775", "7:8") + f("/w/g/f", "0644", "7:8", shaB) +
			f("/w/open", "0666", "7:8", shaA) + f("/w/ro", "0400", "7:8", shaA),
	}})
}

// A default ACL on a directory sets the mode of what is made in it, umask
// or not: files copied into one still get their own mode.
func TestCopyIntoDefaultACL(t *testing.T) {
	testutil.RequiresRoot(t)
	src, dst := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
	writeTree(t, src, file("d/sub/f", "a\n"), file("d/sub/x", "a\n").withMode(0o755))
	writeTree(t, dst)
	// u::rwx,g::r-x,o::--- as the kernel stores it (posix_acl_xattr).
	acl := []byte{2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 5, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	if err := unix.Setxattr(filepath.Join(src, "d/sub"), "system.posix_acl_default", acl, 0); err != nil {
		t.Skipf("no ACLs here: %v", err)
	}
	if err := Copy(context.Background(), CopyRequest{SrcRoot: src, DstRoot: dst, Sources: []string{"d"}, Dest: "/o"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"o/sub/f": 0o644, "o/sub/x": 0o755} {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", name, got, want)
		}
	}
}
