package archive

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/builder-dev/builder/internal/diskspace"
)

// OCI whiteout names (image-spec layer.md, "Whiteouts").
const (
	// WhiteoutPrefix marks a deleted entry: ".wh.name" hides "name".
	WhiteoutPrefix = ".wh."
	// WhiteoutOpaque, inside a directory, hides everything lower layers
	// put in that directory.
	WhiteoutOpaque = WhiteoutPrefix + WhiteoutPrefix + ".opq"
)

// Overlayfs's own spellings of the same ideas, as found in upper and lower
// dirs (Documentation/filesystems/overlayfs.rst).
const (
	overlayXattrPrefix = "trusted.overlay."
	overlayOpaque      = overlayXattrPrefix + "opaque"
)

// paxXattr prefixes extended attributes in PAX records, as GNU tar and
// everything in the container world spell it.
const paxXattr = "SCHILY.xattr."

// ErrInvalid reports a tar entry that cannot be applied safely: a name or a
// hardlink target that climbs out of the root with "..", or a malformed
// whiteout.
var ErrInvalid = errors.New("invalid layer entry")

// cleanName turns a tar entry name into a slash-separated path relative to
// the root: "" for the root itself. Leading "/" and "./" are dropped, as tar
// does; a name whose ".." climbs above the root is rejected rather than
// clamped, because a layer that tries it is hostile or broken.
func cleanName(name string) (string, error) {
	p := path.Clean(name)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("%w: %q leaves the root", ErrInvalid, name)
	}
	p = strings.TrimPrefix(p, "/")
	if p == "." {
		p = ""
	}
	return p, nil
}

// isOverlayXattr reports whether an xattr is overlayfs bookkeeping, which is
// never part of a layer's content: a layer carrying trusted.overlay.redirect
// could make overlayfs look elsewhere, and origin/impure are host-specific.
// Opaqueness is carried by WhiteoutOpaque instead.
func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, overlayXattrPrefix)
}

// ErrNoSpace is diskspace.ErrNoSpace: Apply refused an entry that would
// have left its filesystem below the reserve.
var ErrNoSpace = diskspace.ErrNoSpace
