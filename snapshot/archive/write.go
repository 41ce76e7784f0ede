package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
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
	lw := &layerWriter{
		ctx:   ctx,
		root:  dir,
		tw:    tar.NewWriter(w),
		links: map[inode]string{},
	}
	if opts.SourceDateEpoch != nil {
		e := opts.SourceDateEpoch.Truncate(time.Second)
		lw.epoch = &e
	}
	if err := lw.dir(""); err != nil {
		return fmt.Errorf("write layer of %s: %w", dir, err)
	}
	if err := lw.tw.Close(); err != nil {
		return fmt.Errorf("write layer of %s: %w", dir, err)
	}
	return nil
}

type inode struct{ dev, ino uint64 }

type layerWriter struct {
	ctx   context.Context
	root  string
	tw    *tar.Writer
	epoch *time.Time
	links map[inode]string // first path written for each multiply linked inode
}

// child is one directory entry with the name it gets in the tar.
type child struct {
	name     string // on disk
	tarName  string // in the tar: ".wh."+name for whiteouts
	st       unix.Stat_t
	whiteout bool
}

// dir writes the entries below rel ("" is the root; the root itself is never
// an entry: its attributes belong to whoever mounts the layer).
func (lw *layerWriter) dir(rel string) error {
	names, err := readDirNames(filepath.Join(lw.root, rel))
	if err != nil {
		return err
	}
	children := make([]child, 0, len(names))
	for _, name := range names {
		c := child{name: name, tarName: name}
		if err := unix.Lstat(filepath.Join(lw.root, rel, name), &c.st); err != nil {
			return fmt.Errorf("lstat %s: %w", path.Join(rel, name), err)
		}
		if isWhiteout(&c.st) {
			c.whiteout = true
			c.tarName = WhiteoutPrefix + name
		}
		children = append(children, c)
	}
	// Sort by the name written, not the name on disk, so that output
	// order never depends on how a whiteout was spelled on disk.
	sort.Slice(children, func(i, j int) bool { return children[i].tarName < children[j].tarName })
	for _, c := range children {
		if err := lw.ctx.Err(); err != nil {
			return err
		}
		if err := lw.entry(rel, c); err != nil {
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

func (lw *layerWriter) entry(rel string, c child) error {
	name := path.Join(rel, c.name)
	full := filepath.Join(lw.root, name)
	mtime := lw.mtime(c.st.Mtim)

	if c.whiteout {
		return lw.marker(path.Join(rel, c.tarName), mtime)
	}

	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(c.st.Mode & 0o7777),
		Uid:     int(c.st.Uid),
		Gid:     int(c.st.Gid),
		ModTime: mtime,
		Format:  tar.FormatPAX,
	}
	xattrs, err := listXattrs(full)
	if err != nil {
		return err
	}
	opaque := string(xattrs[overlayOpaque]) == "y"
	for k, v := range xattrs {
		if isOverlayXattr(k) {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattr+k] = string(v)
	}

	ft := c.st.Mode & unix.S_IFMT
	if ft != unix.S_IFDIR && c.st.Nlink > 1 {
		id := inode{dev: c.st.Dev, ino: c.st.Ino}
		if first, ok := lw.links[id]; ok {
			// The inode's data, mode and xattrs were written with
			// its first name; a link entry only names it again.
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			hdr.PAXRecords = nil
			return lw.writeHeader(hdr)
		}
		lw.links[id] = name
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
		return lw.dir(name)
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = c.st.Size
		if err := lw.writeHeader(hdr); err != nil {
			return err
		}
		return lw.copyFile(full, name)
	case unix.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if ft == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(c.st.Rdev))
		hdr.Devminor = int64(unix.Minor(c.st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		// Sockets (and anything stranger) have no tar form; Docker
		// skips them too.
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

func (lw *layerWriter) copyFile(full, name string) error {
	f, err := os.Open(full)
	if err != nil {
		return err
	}
	defer f.Close()
	// The header promised st.Size bytes; tar.Writer refuses more, and a
	// short copy fails at the next header, so a file that changed under us
	// never yields a silently wrong layer.
	if _, err := io.Copy(lw.tw, f); err != nil {
		return fmt.Errorf("write content of %s: %w", name, err)
	}
	return nil
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

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	return names, nil
}
