package fsutil

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// ctxTime is the mtime run.sh gives every context file, so the goldens'
// copied mtimes are this.
const ctxTime = 1700000000

// node is one path of a test tree, written as code.
type node struct {
	path    string // slash path under the root
	kind    byte   // 'f' file, 'd' dir, 'l' symlink, 'h' hard link to target, 'p' fifo, 'c' char device
	data    string
	target  string // symlink target, or the path a hard link points to
	mode    uint32 // permission and special bits, when hasMode
	hasMode bool   // else 0644 for files, 0755 for dirs
	uid     int
	gid     int
	mtime   int64 // 0 means ctxTime
	rdev    int
	xattrs  map[string]string
}

func file(p, data string) node   { return node{path: p, kind: 'f', data: data} }
func dir(p string) node          { return node{path: p, kind: 'd'} }
func symlink(p, to string) node  { return node{path: p, kind: 'l', target: to} }
func hardlink(p, to string) node { return node{path: p, kind: 'h', target: to} }

func (n node) withMode(m uint32) node      { n.mode, n.hasMode = m, true; return n }
func (n node) withOwner(uid, gid int) node { n.uid, n.gid = uid, gid; return n }
func (n node) withMtime(t int64) node      { n.mtime = t; return n }
func (n node) withXattr(k, v string) node {
	x := map[string]string{k: v}
	for kk, vv := range n.xattrs {
		x[kk] = vv
	}
	n.xattrs = x
	return n
}

// writeTree writes nodes under root (made if missing). Missing parents are
// made 0755; directory modes and times are set last, deepest first, so that
// writing children does not disturb them.
func writeTree(t testing.TB, root string, nodes ...node) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(root, 0o755))
	var dirs []node
	for _, n := range nodes {
		p := filepath.Join(root, n.path)
		// Parents made here get the defaults like any
		// directory node, and the mtime of the node they hold; existing ones
		// are left alone.
		for d := path.Dir(n.path); d != "." && d != "/"; d = path.Dir(d) {
			if _, err := os.Lstat(filepath.Join(root, d)); err == nil {
				break
			}
			dirs = append(dirs, dir(d).withMtime(n.mtime))
		}
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		switch n.kind {
		case 'f':
			must(os.WriteFile(p, []byte(n.data), 0o600))
		case 'd':
			must(os.MkdirAll(p, 0o755))
			dirs = append(dirs, n)
			continue
		case 'l':
			must(os.Symlink(n.target, p))
		case 'h':
			must(os.Link(filepath.Join(root, n.target), p))
			continue
		case 'p':
			must(unix.Mkfifo(p, 0o600))
		case 'c':
			must(unix.Mknod(p, unix.S_IFCHR|0o600, n.rdev))
		default:
			t.Fatalf("bad node kind %q", n.kind)
		}
		setNode(t, root, n)
	}
	sort.SliceStable(dirs, func(i, j int) bool { return strings.Count(dirs[i].path, "/") > strings.Count(dirs[j].path, "/") })
	for _, n := range dirs {
		setNode(t, root, n)
	}
}

func setNode(t testing.TB, root string, n node) {
	t.Helper()
	p := filepath.Join(root, n.path)
	if err := os.Lchown(p, n.uid, n.gid); err != nil {
		t.Fatal(err)
	}
	if n.kind != 'l' {
		mode := n.mode
		if !n.hasMode {
			mode = 0o644
			if n.kind == 'd' {
				mode = 0o755
			}
		}
		if err := unix.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range n.xattrs {
		if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
			t.Fatalf("setxattr %s on %s: %v", k, n.path, err)
		}
	}
	mt := n.mtime
	if mt == 0 {
		mt = ctxTime
	}
	ts := []unix.Timespec{{Sec: mt}, {Sec: mt}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

// listing describes root's paths under prefixes (all when none) in the
// format of the conformance goldens' fs.txt:
// "/path<TAB>type<TAB>mode<TAB>uid:gid<TAB>details".
func listing(t testing.TB, root string, prefixes ...string) string {
	t.Helper()
	type ino struct{ dev, ino uint64 }
	links := map[ino][]string{}
	var paths []string
	infos := map[string]os.FileInfo{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		name := "/" + filepath.ToSlash(rel)
		if !underAny(name, prefixes) {
			if d.IsDir() && !aboveAny(name, prefixes) {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		paths = append(paths, name)
		infos[name] = fi
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().IsRegular() {
			k := ino{uint64(st.Dev), st.Ino}
			links[k] = append(links[k], name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, name := range paths {
		fi := infos[name]
		st := fi.Sys().(*syscall.Stat_t)
		typ := typeChar(fi.Mode())
		perm := fmt.Sprintf("%04o", st.Mode&0o7777)
		var details []string
		switch typ {
		case "f":
			data, err := os.ReadFile(filepath.Join(root, name))
			if err != nil {
				t.Fatal(err)
			}
			details = append(details, fmt.Sprintf("size=%d sha256=%x", len(data), sha256.Sum256(data)))
			group := links[ino{uint64(st.Dev), st.Ino}]
			sort.Strings(group)
			if len(group) > 1 {
				details = append(details, fmt.Sprintf("nlink=%d", len(group)))
				if group[0] != name {
					details = append(details, "hardlink="+group[0])
				}
			}
		case "l":
			perm = "-"
			target, err := os.Readlink(filepath.Join(root, name))
			if err != nil {
				t.Fatal(err)
			}
			details = append(details, "-> "+target)
		case "c", "b":
			details = append(details, fmt.Sprintf("dev=%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
		}
		xs, err := readXattrs(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			details = append(details, fmt.Sprintf("xattr.%s=%q", x.Name, x.Value))
		}
		line := strings.TrimRight(strings.Join([]string{name, typ, perm, fmt.Sprintf("%d:%d", st.Uid, st.Gid), strings.Join(details, " ")}, "\t"), "\t")
		b.WriteString(line + "\n")
	}
	return b.String()
}

func underAny(name string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if name == p || strings.HasPrefix(name, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}

func aboveAny(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(p, name+"/") {
			return true
		}
	}
	return false
}

// mtime returns the mtime (seconds) of root/p, not following a symlink.
func mtime(t testing.TB, root, p string) int64 {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime().Unix()
}

// inRoot is a RUN step's or WORKDIR's view of root: p resolved inside it.
func inRoot(t testing.TB, root, p string) string {
	t.Helper()
	h, err := securejoin.SecureJoin(root, p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// workdir makes p inside root as WORKDIR does: missing dirs 0755 0:0,
// symlinks on the way followed inside root.
func workdir(t testing.TB, root, p string) {
	t.Helper()
	cur := "/"
	for _, part := range strings.Split(strings.Trim(path.Clean(p), "/"), "/") {
		cur = path.Join(cur, part)
		h := inRoot(t, root, cur)
		if _, err := os.Stat(h); err == nil {
			continue
		}
		if err := os.Mkdir(h, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// sinceBuild reports whether the mtime of root/p is a time of this test
// run rather than a source's.
func sinceBuild(t testing.TB, root, p string, start time.Time) bool {
	return mtime(t, root, p) >= start.Unix()
}
