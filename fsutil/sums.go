package fsutil

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"

	"github.com/builder-dev/builder/internal/unixutil"
	"github.com/builder-dev/builder/internal/xattr"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// FileSums is what DigestEntries reads from a file beyond its Lstat: the
// parts a stat cache can remember for as long as the stat stays the same.
type FileSums struct {
	// Content is the sha256 of a regular file's content; empty for
	// anything else.
	Content digest.Digest
	// Link is a symlink's target; empty for anything else.
	Link string
	// Xattrs are the file's extended attributes, sorted by name, without
	// the ones a copy never carries (trusted.overlay.*).
	Xattrs []Xattr
}

// Xattr is one extended attribute.
type Xattr = xattr.Attr

// ReadFileSums reads the FileSums of hostPath, whose Lstat is fi, without
// following a symlink.
func ReadFileSums(ctx context.Context, hostPath string, fi os.FileInfo) (FileSums, error) {
	var s FileSums
	switch {
	case fi.Mode().IsRegular():
		d, err := hashFile(ctx, hostPath, fi.Size())
		if err != nil {
			return FileSums{}, err
		}
		s.Content = d
	case fi.Mode()&os.ModeSymlink != 0:
		link, err := os.Readlink(hostPath)
		if err != nil {
			return FileSums{}, fmt.Errorf("readlink: %w", err)
		}
		s.Link = link
	}
	xs, err := readXattrs(hostPath)
	if err != nil {
		return FileSums{}, err
	}
	s.Xattrs = xs
	return s, nil
}

// hashFile returns the sha256 of the content of the regular file p, whose
// size was size when it was stat'ed.
//
// It uses raw syscalls: os.Open also fstats the file and sets it
// non-blocking, two more syscalls per file that a context of many small
// files pays for in full. For the same reason it stops after a short read
// at or past the stat's size, which on a regular file is end of file,
// rather than reading once more to see 0.
func hashFile(ctx context.Context, p string, size int64) (digest.Digest, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", fmt.Errorf("hash: open: %w", err)
	}
	defer unix.Close(fd)
	h := sha256.New()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := unixutil.IgnoringEINTRIO(unix.Read, fd, buf)
		if err != nil {
			return "", fmt.Errorf("hash: read: %w", err)
		}
		if n == 0 {
			break
		}
		h.Write(buf[:n])
		total += int64(n)
		if n < len(buf) && total >= size {
			break
		}
	}
	return sumDigest(h.Sum(nil)), nil
}
