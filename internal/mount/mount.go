package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Mount is one mount(2) call: Type and Source as for mount, Options as the
// comma-separated data plus the usual flag words (ro, rbind, ...).
type Mount struct {
	Type    string   `json:"type"`
	Source  string   `json:"source"`
	Options []string `json:"options,omitempty"`
}

var flagWords = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":     {false, unix.MS_RDONLY},
	"rw":     {true, unix.MS_RDONLY},
	"bind":   {false, unix.MS_BIND},
	"rbind":  {false, unix.MS_BIND | unix.MS_REC},
	"nosuid": {false, unix.MS_NOSUID},
	"nodev":  {false, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC},
}

// parse splits Options into mount flags and the data string.
func (m Mount) parse() (uintptr, []string) {
	var flags uintptr
	var data []string
	for _, o := range m.Options {
		if f, ok := flagWords[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	return flags, data
}

// pageLimit is the most the kernel copies of mount data (one page, minus the
// terminating NUL).
const pageLimit = 4095

// Mount performs m at target.
func (m Mount) Mount(target string) error {
	flags, data := m.parse()
	if m.Type == "overlay" && len(strings.Join(data, ",")) > pageLimit {
		return m.mountLongOverlay(target, flags, data)
	}
	if err := unix.Mount(m.Source, target, m.Type, flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", m.Source, m.Type, target, err)
	}
	// A bind mount ignores MS_RDONLY on the first call; it takes a remount.
	if flags&unix.MS_BIND != 0 && flags&unix.MS_RDONLY != 0 {
		if err := unix.Mount("", target, "", flags|unix.MS_REMOUNT, ""); err != nil {
			return fmt.Errorf("remount %s read-only: %w", target, err)
		}
	}
	return nil
}

// mountLongOverlay mounts an overlay whose lowerdir list would not fit in one
// page: every directory is opened and named by its /proc/self/fd link, which
// is a few bytes long whatever the real path, so deep chains (hundreds of
// layers) still mount. The descriptors only need to live during mount(2).
func (m Mount) mountLongOverlay(target string, flags uintptr, data []string) error {
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	short := func(p string) (string, error) {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("open overlay dir %s: %w", p, err)
		}
		fds = append(fds, fd)
		return fmt.Sprintf("/proc/self/fd/%d", fd), nil
	}
	out := make([]string, 0, len(data))
	for _, o := range data {
		k, v, ok := strings.Cut(o, "=")
		if !ok || (k != "lowerdir" && k != "upperdir" && k != "workdir") {
			out = append(out, o)
			continue
		}
		var parts []string
		for _, p := range strings.Split(v, ":") {
			s, err := short(p)
			if err != nil {
				return err
			}
			parts = append(parts, s)
		}
		out = append(out, k+"="+strings.Join(parts, ":"))
	}
	joined := strings.Join(out, ",")
	if len(joined) > pageLimit {
		return fmt.Errorf("mount overlay on %s: %d layers exceed the kernel's mount data limit", target, strings.Count(joined, ":")+1)
	}
	if err := unix.Mount(m.Source, target, m.Type, flags, joined); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", target, err)
	}
	return nil
}

// All performs mounts in order at target (they all stack at one place: the
// usual case is a single overlay or bind for a root filesystem).
func All(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := m.Mount(target); err != nil {
			for j := i - 1; j >= 0; j-- {
				_ = Unmount(target)
			}
			return err
		}
	}
	return nil
}

// Unmount detaches target; a target that is not mounted is not an error.
func Unmount(target string) error {
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && err != unix.EINVAL && !os.IsNotExist(err) {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// UnmountUnder detaches every mount of this mount namespace at or below
// dir, deepest first: what a killed process left mounted there (a build's
// temporary mounts, a container being created), before dir is removed.
func UnmountUnder(dir string) error {
	targets, err := PointsUnder(dir)
	if err != nil {
		return err
	}
	sort.Slice(targets, func(i, j int) bool { return len(targets[i]) > len(targets[j]) })
	var errs []error
	for _, t := range targets {
		// MNT_DETACH: a process may still use it; it goes away when the
		// last user does, and from the tree at once.
		if err := unix.Unmount(t, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// PointsUnder lists the mount points of this mount namespace at or below
// dir, in mountinfo's order (a parent before what is mounted on it).
func PointsUnder(dir string) ([]string, error) {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(filepath.Clean(dir)))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return mountPoints(infos), nil
}

func mountPoints(infos []*mountinfo.Info) []string {
	points := make([]string, 0, len(infos))
	for _, i := range infos {
		points = append(points, i.Mountpoint)
	}
	return points
}
