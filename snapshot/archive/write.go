package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/dirent"
	"github.com/builder-dev/builder/internal/unixutil"
	"github.com/builder-dev/builder/internal/xattr"
)

// WriteOptions tunes WriteLayer.
type WriteOptions struct {
	// SourceDateEpoch, when set, clamps every mtime later than it down to
	// it (reproducible builds' SOURCE_DATE_EPOCH).
	SourceDateEpoch *time.Time
}

// WriteLayer writes dir, in overlay form, as a deterministic OCI layer tar to
// w.
//
// A 0/0 character device becomes a ".wh.<name>" entry; a directory with
// trusted.overlay.opaque=y is followed by a ".wh..wh..opq" entry inside it;
// other trusted.overlay.* xattrs are dropped and all others kept.
//
// The output depends only on the tree's content and metadata: entries come
// depth first with the names of each directory in byte order (so a parent
// always precedes its children), owners are numeric, mtimes are whole seconds
// (clamped to opts.SourceDateEpoch), there are no atime, ctime, uname or
// gname, and PAX records appear only where USTAR cannot say it (long names,
// xattrs, big ids). Files sharing an inode are written once, then as
// hardlinks to the first path. Sockets are skipped: tar cannot hold them.
func WriteLayer(ctx context.Context, dir string, w io.Writer, opts WriteOptions) error {
	// Buffered: the tar writer makes a small Write per header and per
	// small file, and w is typically a pipe to a compressor, where each
	// Write is a handoff between goroutines.
	bw := bufio.NewWriterSize(w, writeBufSize)
	lw := &layerWriter{
		ctx:   ctx,
		root:  dir,
		tw:    tar.NewWriter(bw),
		links: map[inode]*hardlink{},
	}
	if opts.SourceDateEpoch != nil {
		e := opts.SourceDateEpoch.Truncate(time.Second)
		lw.epoch = &e
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	lw.buf = *bp
	// The root is followed if it is a symlink, as a path given to us.
	fd, err := openat(unix.AT_FDCWD, dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("write layer of %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := lw.dir(fd, ""); err != nil {
		return fmt.Errorf("write layer of %s: %w", dir, err)
	}
	if err := lw.tw.Close(); err != nil {
		return fmt.Errorf("write layer of %s: %w", dir, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write layer of %s: %w", dir, err)
	}
	return nil
}

// writeBufSize is the size of the writes WriteLayer makes to its writer.
const writeBufSize = 256 << 10

type inode struct{ dev, ino uint64 }

type layerWriter struct {
	ctx   context.Context
	root  string
	tw    *tar.Writer
	epoch *time.Time
	links map[inode]*hardlink // multiply linked inodes with names still to come
	buf   []byte              // for file contents
}

// hardlink is an inode with more than one name: the first one written, and
// how many more are to come. Once they have all come it is forgotten, so
// that the map holds only inodes half-way through, not every hardlinked
// file of the layer.
type hardlink struct {
	first string
	left  uint32
}

// child is one directory entry, as few bytes as it can be: a directory of
// a million entries is held whole, to be sorted.
type child struct {
	tarName  string // its name in the tar: ".wh."+name for whiteouts
	whiteout bool
	typ      uint8 // d_type
}

// name is the child's name on disk.
func (c *child) name() string {
	if c.whiteout {
		return c.tarName[len(WhiteoutPrefix):]
	}
	return c.tarName
}

// dir writes the entries below rel ("" is the root; the root itself is never
// an entry: its attributes belong to whoever mounts the layer), whose
// directory is open as fd.
//
// Everything below is reached relative to fd (fstatat, openat with
// O_NOFOLLOW, readlinkat): an upper dir of 20,000 files would otherwise
// have the kernel walk each file's full path several times over, and a
// name never leads anywhere but into its directory.
//
// Only names and d_types are held while a directory is sorted; each entry
// is stat'ed when its turn comes (character devices, which may be
// whiteouts, once more before sorting).
func (lw *layerWriter) dir(fd int, rel string) error {
	var children []child
	err := dirent.ReadTypes(fd, func(name []byte, typ uint8) {
		children = append(children, child{tarName: string(name), typ: typ})
	})
	if err != nil {
		return fmt.Errorf("read directory %s: %w", filepath.Join(lw.root, rel), err)
	}
	var st unix.Stat_t
	for i := range children {
		c := &children[i]
		if c.typ != unix.DT_CHR && c.typ != unix.DT_UNKNOWN {
			continue
		}
		if err := fstatat(fd, c.tarName, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", path.Join(rel, c.tarName), err)
		}
		if isWhiteout(&st) {
			c.whiteout = true
			c.tarName = WhiteoutPrefix + c.tarName
		}
	}
	// Sort by the name written, not the name on disk, so that output
	// order never depends on how a whiteout was spelled on disk.
	sort.Slice(children, func(i, j int) bool { return children[i].tarName < children[j].tarName })
	for i := range children {
		if err := lw.ctx.Err(); err != nil {
			return err
		}
		c := &children[i]
		if err := fstatat(fd, c.name(), &st); err != nil {
			return fmt.Errorf("lstat %s: %w", path.Join(rel, c.name()), err)
		}
		if err := lw.entry(fd, rel, c, &st); err != nil {
			return err
		}
	}
	return nil
}

// isWhiteout reports whether st is an overlayfs whiteout: a character
// device numbered 0/0. Overlayfs shares one whiteout inode among many names
// (kernel 5.8+), so whiteouts must be recognised before hardlinks are.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// entry writes c, a child of the directory open as dirfd at rel, whose
// lstat is st.
func (lw *layerWriter) entry(dirfd int, rel string, c *child, st *unix.Stat_t) error {
	cname := c.name()
	name := path.Join(rel, cname)
	mtime := lw.mtime(st.Mtim)

	if c.whiteout {
		// Whiteout or not is decided by the stat made for sorting; a
		// whiteout replaced since is written as what it was.
		return lw.marker(path.Join(rel, c.tarName), mtime)
	}
	ft := st.Mode & unix.S_IFMT
	if ft == unix.S_IFSOCK {
		// Sockets have no tar form; Docker skips them too.
		return nil
	}

	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: mtime,
		Format:  tar.FormatPAX,
	}
	if ft != unix.S_IFDIR && st.Nlink > 1 {
		id := inode{dev: st.Dev, ino: st.Ino}
		if l, ok := lw.links[id]; ok {
			// The inode's data, mode and xattrs were written with
			// its first name; a link entry only names it again.
			if l.left--; l.left == 0 {
				delete(lw.links, id)
			}
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = l.first
			return lw.writeHeader(hdr)
		}
		// Names outside dir (possible for a directory given by a
		// caller, not for an upper dir) keep it here to the end.
		lw.links[id] = &hardlink{first: name, left: uint32(st.Nlink - 1)}
	}

	// Directories and regular files are opened (they are listed or read
	// anyway) and their xattrs read through the descriptor; anything else
	// by path.
	fd := -1
	switch ft {
	case unix.S_IFDIR:
		var err error
		if fd, err = openat(dirfd, cname, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC); err != nil {
			return fmt.Errorf("open %s: %w", name, err)
		}
		defer unix.Close(fd)
	case unix.S_IFREG:
		var err error
		if fd, err = openat(dirfd, cname, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC); err != nil {
			return fmt.Errorf("open %s: %w", name, err)
		}
		defer unix.Close(fd)
	}
	var xattrs []xattr.Attr
	var err error
	if fd >= 0 {
		xattrs, err = listXattrsFd(fd, name)
	} else {
		xattrs, err = listXattrs(filepath.Join(lw.root, name))
	}
	if err != nil {
		return err
	}
	opaque := false
	for _, x := range xattrs {
		if x.Name == overlayOpaque {
			opaque = string(x.Value) == "y"
		}
		if isOverlayXattr(x.Name) {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattr+x.Name] = string(x.Value)
	}

	switch ft {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if err := lw.writeHeader(hdr); err != nil {
			return err
		}
		if opaque {
			if err := lw.marker(path.Join(name, WhiteoutOpaque), mtime); err != nil {
				return err
			}
		}
		return lw.dir(fd, name)
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
		if err := lw.writeHeader(hdr); err != nil {
			return err
		}
		return lw.copyFile(fd, name, st.Size)
	case unix.S_IFLNK:
		target, err := readlinkat(dirfd, cname)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", name, err)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if ft == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		// Anything stranger than a socket has no tar form either.
		return nil
	}
	return lw.writeHeader(hdr)
}

// marker writes a whiteout or opaque entry: an empty regular file, mode 0,
// owned by root, dated like what it stands for.
func (lw *layerWriter) marker(name string, mtime time.Time) error {
	return lw.writeHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		ModTime:  mtime,
		Format:   tar.FormatPAX,
	})
}

func (lw *layerWriter) writeHeader(hdr *tar.Header) error {
	if err := lw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header %s: %w", hdr.Name, err)
	}
	return nil
}

// copyFile writes the content of the regular file open as fd, size bytes
// by the header just written.
//
// The header promised size bytes: the tar writer refuses more, and a short
// copy fails at the next header, so a file that changed under us never
// yields a silently wrong layer. To see the end without reading once more
// to get 0 (a syscall per file, on layers of many small files), each read
// asks for one byte more than is left: a regular file returns less than
// asked only at its end, and a byte more than promised means it grew.
func (lw *layerWriter) copyFile(fd int, name string, size int64) error {
	left := size
	for {
		want := len(lw.buf)
		if left < int64(want) {
			want = int(left) + 1
		}
		n, err := unixutil.IgnoringEINTRIO(unix.Read, fd, lw.buf[:want])
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if n == 0 {
			return nil
		}
		if _, err := lw.tw.Write(lw.buf[:n]); err != nil {
			return fmt.Errorf("write content of %s: %w", name, err)
		}
		left -= int64(n)
		if n < want {
			return nil
		}
	}
}

// mtime truncates to whole seconds (sub-second times would cost a PAX
// record per entry and vary between filesystems) and applies the clamp.
func (lw *layerWriter) mtime(ts unix.Timespec) time.Time {
	t := time.Unix(ts.Sec, 0)
	if lw.epoch != nil && t.After(*lw.epoch) {
		return *lw.epoch
	}
	return t
}
