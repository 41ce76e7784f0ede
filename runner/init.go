package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/mount"
	"github.com/builder-dev/builder/internal/user"
)

// Init turns this process into a container init if Run started it as one,
// and then never returns: it sets the container up and execs the command, or
// reports why it could not and exits. In any other process it returns at
// once. Call it first thing in main (a test binary: in TestMain), before
// anything else starts goroutines or reads the environment.
func Init() {
	want := os.Getenv(initEnv)
	if want == "" {
		return
	}
	// Capabilities, the bounding set and the parent-death signal are per
	// thread: everything below runs on this one, which also calls execve.
	runtime.LockOSThread()
	unix.CloseOnExec(statusFd) // closing on exec tells Run the command started
	st := &statusWriter{enc: json.NewEncoder(os.NewFile(statusFd, "status"))}
	var err error
	if want != protocol() {
		exe, _ := os.Executable()
		err = fmt.Errorf("%s is from another build of the builder (protocol %s, not %s): install both from one build", exe, protocol(), want)
	} else {
		err = containerInit(st)
	}
	var ee *execError
	if errors.As(err, &ee) {
		// The command itself could not start: like Docker, that is the
		// command's exit code, and the message is on its stderr.
		fmt.Fprintln(os.Stderr, ee.Msg)
		st.send(status{ExecFailed: true})
		os.Exit(ee.Code)
	}
	st.send(status{Error: "runner: " + err.Error()})
	os.Exit(1)
}

type statusWriter struct {
	enc *json.Encoder
}

// send reports m to Run. A failed write means Run is gone, and with it this
// process soon (parent-death signal): nothing to do about it here.
func (w *statusWriter) send(m status) {
	_ = w.enc.Encode(m)
}

// containerInit sets the container up and execs the command; it returns only
// on failure.
func containerInit(st *statusWriter) error {
	var cfg initConfig
	f := os.NewFile(specFd, "spec")
	if err := json.NewDecoder(f).Decode(&cfg); err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	f.Close()
	st.send(status{SpecRead: true})
	spec := cfg.Spec
	// A spare from a Pool got no descriptors for its cgroup files: it
	// opens them now, while it still sees the host's mounts.
	for i, w := range cfg.AtExec {
		if w.Fd >= 0 {
			continue
		}
		fd, err := unix.Open(w.Path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: open %s: %w", w.Limit, w.Path, err)
		}
		cfg.AtExec[i].Fd = fd
	}

	// The container's mount namespace, a copy of the host's as it is now
	// (an init started ahead by a Pool waited in the host's). This thread,
	// locked, does all the mounting and execs the command.
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("new mount namespace: %w", err)
	}

	// Docker's umask: files the setup and the command make are 0644/0755.
	unix.Umask(0o022)
	if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if spec.Network == "none" {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	// Nothing mounted from here on may propagate back to the host's
	// namespace: make every mount we inherited private to this one.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	var err error
	r := &rootfs{dir: filepath.Join(cfg.Dir, "root"), st: st}
	if err := mount.All(nodevMounts(spec.Root), r.dir); err != nil {
		return fmt.Errorf("mount root: %w", err)
	}
	// The image's device nodes (a layer may carry any; a RUN may mknod
	// one, CAP_MKNOD being a default capability) must never open: the
	// root and every other path the image or the command can write are
	// nodev. Only the nodes bound from the host into /dev open. Undoing it
	// takes a remount, which needs CAP_SYS_ADMIN.
	if err := ensureNodev(r.dir, false); err != nil {
		return fmt.Errorf("mount root nodev: %w", err)
	}
	if err := r.mountSystem(spec); err != nil {
		return err
	}
	console := -1
	if spec.Tty {
		if console, err = r.openConsole(spec.ConsoleSize); err != nil {
			return err
		}
	}
	for _, name := range etcFiles {
		dest := "/etc/" + name
		if overridden(spec.Mounts, dest) {
			continue
		}
		if err := r.bind(filepath.Join(cfg.Dir, name), dest, false, false); err != nil {
			return err
		}
	}
	for _, m := range userMountOrder(spec.Mounts) {
		if err := r.mountUser(m); err != nil {
			return err
		}
	}
	if err := pivotRoot(r.dir); err != nil {
		return err
	}
	if err := maskPaths(); err != nil {
		return err
	}
	cwd := spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	// Created before the root turns read-only, as root: Docker makes a
	// missing WORKDIR at run time whoever the USER is.
	if err := os.MkdirAll(cwd, 0o755); err != nil {
		return fmt.Errorf("make working directory: %w", err)
	}
	if spec.ReadOnlyRoot {
		if err := remountReadOnly("/"); err != nil {
			return fmt.Errorf("make root read-only: %w", err)
		}
	}
	u, err := user.Resolve("/", spec.User)
	if err != nil {
		return fmt.Errorf("resolve user %q: %w", spec.User, err)
	}
	if spec.PrimaryGroupInGroups && !slices.Contains(u.Groups, u.GID) {
		u.Groups = append([]int{u.GID}, u.Groups...)
	}
	env := containerEnv(spec.Env, homeFor(u.UID, u.Name, u.Home))
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("chdir to %s: %w", cwd, err)
	}
	if console >= 0 {
		if err := useConsole(console, u.UID); err != nil {
			return err
		}
	}
	// Without no_new_privs, installing a filter takes CAP_SYS_ADMIN, which
	// switchUser drops: install it before, as runc does. The rest of the
	// setup then runs under it, which Docker's profile allows (setuid,
	// capset, prctl, stat, execve).
	if !spec.NoNewPrivileges {
		if err := installSeccomp(cfg.Seccomp); err != nil {
			return err
		}
	}
	if err := switchUser(u.UID, u.GID, u.Groups, capsFor(u.UID)); err != nil {
		return err
	}
	pathEnv, _ := lookupEnv(env, "PATH")
	// The lookup runs as the user, in the container: what it finds is what
	// execve will be allowed to run.
	argv0, err := lookPath(spec.Args[0], pathEnv, os.Stat)
	if err != nil {
		return err
	}
	if err := closeExtraFDs(); err != nil {
		return err
	}
	for _, w := range cfg.AtExec {
		if err := w.write(); err != nil {
			return err
		}
	}
	if spec.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
		// As late as possible: the filter need not allow the setup.
		if err := installSeccomp(cfg.Seccomp); err != nil {
			return err
		}
	}
	unignoreSignals()
	err = unix.Exec(argv0, spec.Args, env)
	return &execError{Code: execErrorCode(err), Msg: fmt.Sprintf("exec: %q: %v", spec.Args[0], err)}
}

// rootfs is the container's root while it is mounted at dir on the way to
// pivot_root. Every destination is resolved inside dir, so no symlink in the
// image can point a mount at the host.
type rootfs struct {
	dir string
	st  *statusWriter
}

// ensure returns the host path of dest inside the root, creating it (a
// directory, or an empty file) with any missing parents if it does not
// exist. Everything created is reported to Run as a stub.
func (r *rootfs) ensure(dest string, isDir bool) (string, error) {
	p, err := securejoin.SecureJoin(r.dir, dest)
	if err != nil {
		return "", fmt.Errorf("resolve %s in root: %w", dest, err)
	}
	if _, err := os.Lstat(p); err == nil {
		return p, nil
	}
	rel, err := filepath.Rel(r.dir, p)
	if err != nil {
		return "", err
	}
	rootFd, err := unix.Open(r.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("create mount point %s: %w", dest, err)
	}
	defer unix.Close(rootFd)
	// SecureJoin resolved every symlink on the way, so each existing
	// component is a real directory and each missing one is ours to make.
	// Each is still made relative to its parent opened anew in the root
	// (openat2, RESOLVE_IN_ROOT), never by a host path: a directory the
	// root shares with a running container (a volume) can have a
	// component swapped for a symlink to a host path meanwhile, and a
	// host path would follow it out of the root.
	parentIsStub := false
	parts := strings.Split(rel, string(filepath.Separator))
	for i, part := range parts {
		made, err := r.makeStub(rootFd, filepath.Join(parts[:i]...), part, i == len(parts)-1 && !isDir, parentIsStub)
		if err != nil {
			return "", fmt.Errorf("create mount point %s: %w", dest, err)
		}
		parentIsStub = parentIsStub || made
	}
	return p, nil
}

// makeStub makes name (a directory, or an empty file) in the directory
// parent of the root open at rootFd, unless it exists, and reports it to
// Run. It reports whether it made it.
func (r *rootfs) makeStub(rootFd int, parent, name string, file, parentIsStub bool) (bool, error) {
	if parent == "" {
		parent = "."
	}
	pfd, err := r.openInRoot(rootFd, parent, unix.O_DIRECTORY)
	if err != nil {
		return false, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		return false, nil
	} else if !errors.Is(err, unix.ENOENT) {
		return false, err
	}
	s := stub{Path: filepath.Join(parent, name)}
	if !parentIsStub {
		if err := unix.Fstat(pfd, &st); err != nil {
			return false, err
		}
		s.ParentMtime = st.Mtim.Nano()
	}
	if file {
		fd, err := unix.Openat(pfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return false, err
		}
		unix.Close(fd)
	} else if err := unix.Mkdirat(pfd, name, 0o755); err != nil {
		return false, err
	}
	if !parentIsStub {
		if err := unix.Fstat(pfd, &st); err != nil {
			return false, err
		}
		s.ParentMtimeAfter = st.Mtim.Nano()
	}
	r.st.send(status{Stub: &s})
	return true, nil
}

// mountAt mounts a file system at dest (a directory) inside the root.
func (r *rootfs) mountAt(what, dest, fstype string, flags uintptr, data string) error {
	p, err := r.ensure(dest, true)
	if err != nil {
		return err
	}
	fd, err := r.open(p)
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, dest, err)
	}
	defer unix.Close(fd)
	if err := unix.Mount(what, fdPath(fd), fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, dest, err)
	}
	return nil
}

// bind bind-mounts the host path src at dest inside the root; with nodev,
// no device node under it opens, in it or in any mount it holds (a host
// directory may hold a devtmpfs: a bound / does).
func (r *rootfs) bind(src, dest string, readOnly, nodev bool) error {
	var srcSt unix.Stat_t
	if err := unix.Stat(src, &srcSt); err != nil {
		return fmt.Errorf("bind mount source: %w", err)
	}
	p, err := r.ensure(dest, srcSt.Mode&unix.S_IFMT == unix.S_IFDIR)
	if err != nil {
		return err
	}
	fd, err := r.open(p)
	if err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, dest, err)
	}
	defer unix.Close(fd)
	if err := unix.Mount(src, fdPath(fd), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, dest, err)
	}
	if !readOnly && !nodev {
		return nil
	}
	// The flags go on the new mount, reached again through the root; it
	// must be the one just made (the source's root, on another mount
	// than its mount point), else a read-only or nodev meant for it would
	// land on another mount and leave it writable.
	mfd, err := r.open(p)
	if err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, dest, err)
	}
	defer unix.Close(mfd)
	if !sameMount(fd, mfd, &srcSt) {
		return fmt.Errorf("bind %s on %s: the mount point changed while mounting", src, dest)
	}
	if readOnly {
		if err := remountReadOnly(fdPath(mfd)); err != nil {
			return fmt.Errorf("make %s read-only: %w", dest, err)
		}
	}
	if nodev {
		if err := ensureNodev(fdPath(mfd), true); err != nil {
			return fmt.Errorf("make %s nodev: %w", dest, err)
		}
	}
	return nil
}

// open opens p, a path under the root, resolved in the root now: the
// mounts are made on what it opens (through fdPath), never on a host path
// that a symlink swapped in since ensure (a volume shared with a running
// container can change) could send outside the root.
func (r *rootfs) open(p string) (int, error) {
	rel, err := filepath.Rel(r.dir, p)
	if err != nil {
		return -1, err
	}
	rootFd, err := unix.Open(r.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(rootFd)
	return r.openInRoot(rootFd, rel, 0)
}

// openInRoot opens rel as an O_PATH descriptor (with flags), resolving
// its symlinks inside the root open at rootFd. A kernel without openat2
// (before 5.6) gets the path SecureJoin resolves, opened without following
// a last symlink: safe from the image's symlinks, not from a concurrent
// swap.
func (r *rootfs) openInRoot(rootFd int, rel string, flags int) (int, error) {
	fd, err := unix.Openat2(rootFd, rel, &unix.OpenHow{
		Flags:   uint64(unix.O_PATH | unix.O_CLOEXEC | flags),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if !errors.Is(err, unix.ENOSYS) {
		return fd, err
	}
	p, err := securejoin.SecureJoin(r.dir, rel)
	if err != nil {
		return -1, err
	}
	return unix.Open(p, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW|flags, 0)
}

// fdPath names the file open at fd: mount(2) on it acts on exactly that
// file, whatever its path has become.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// sameMount reports whether mfd is the root of a bind of the file src
// (its device and inode) on a mount other than the mount point's, at fd.
func sameMount(fd, mfd int, src *unix.Stat_t) bool {
	var before, after unix.Statx_t
	if unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &before) != nil ||
		unix.Statx(mfd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID|unix.STATX_INO, &after) != nil {
		return false
	}
	if before.Mask&unix.STATX_MNT_ID != 0 && before.Mnt_id == after.Mnt_id {
		return false
	}
	return unix.Mkdev(after.Dev_major, after.Dev_minor) == src.Dev && after.Ino == src.Ino
}

// mountUser performs one of Spec.Mounts.
func (r *rootfs) mountUser(m Mount) error {
	switch m.Type {
	case "bind":
		return r.bind(m.Source, m.Dest, m.ReadOnly, true)
	case "tmpfs":
		flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
		if m.ReadOnly {
			flags |= unix.MS_RDONLY
		}
		return r.mountAt("tmpfs", m.Dest, "tmpfs", flags, "mode=1777")
	}
	return fmt.Errorf("unsupported mount type %q", m.Type)
}

// mountSystem mounts what every container has: a fresh /proc for its pid
// namespace, a minimal /dev and a read-only /sys; the options are Docker's.
func (r *rootfs) mountSystem(spec Spec) error {
	// As runc does: each of these must be a real directory of the image
	// (or missing). A symlink there would put the file system wherever
	// it points, say /proc below a path that a later mount hides or
	// shadows, so that masking /proc afterwards, by path, misses it and
	// leaves /proc/sys writable somewhere else; /sys pointing at / puts a
	// read-only sysfs over the whole root.
	for _, dir := range []string{"proc", "dev", "sys"} {
		fi, err := os.Lstat(filepath.Join(r.dir, dir))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("check /%s: %w", dir, err)
		}
		if err == nil && !fi.IsDir() {
			what := "a file"
			if fi.Mode()&os.ModeSymlink != 0 {
				what = "a symlink"
			}
			return fmt.Errorf("/%s in the image is %s, not a directory: refusing to mount the container's /%s through it", dir, what, dir)
		}
	}
	if err := r.mountAt("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, ""); err != nil {
		return err
	}
	if err := r.mountDev(); err != nil {
		return err
	}
	return r.mountSys()
}

// devices are the nodes of the container's /dev: Docker's default set
// (with ptmx, pts and console made below). They are the only devices a
// container can open.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

func (r *rootfs) mountDev() error {
	// /dev is a tmpfs of the container's own: the host's device nodes are
	// never visible, only the few below. It is nodev, so a node the
	// command makes there does not open; the allowed ones are the host's
	// nodes bound in, and a bind mount keeps the flags of the mount it
	// comes from (the host's /dev), so they do.
	if err := r.mountAt("tmpfs", "/dev", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	// A fresh tmpfs, and at r.dir/dev itself: mountSystem checked that
	// /dev in the image is a directory, not a symlink that this host-side
	// path would follow out of the root.
	dev := filepath.Join(r.dir, "dev")
	for _, name := range devices {
		if err := bindDevice("/dev/"+name, filepath.Join(dev, name)); err != nil {
			return fmt.Errorf("create /dev/%s: %w", name, err)
		}
	}
	for _, sub := range []struct {
		name, source, fstype string
		flags                uintptr
		data                 string
	}{
		// newinstance: the container's ptys are its own, not the host's.
		{"pts", "devpts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{"shm", "shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=1777,size=65536k"},
		{"mqueue", "mqueue", "mqueue", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	} {
		p := filepath.Join(dev, sub.name)
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("create /dev/%s: %w", sub.name, err)
		}
		if err := unix.Mount(sub.source, p, sub.fstype, sub.flags, sub.data); err != nil {
			return fmt.Errorf("mount %s on /dev/%s: %w", sub.fstype, sub.name, err)
		}
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"},
		{"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("create /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

// openConsole makes the container's terminal: a pty of the container's own
// devpts (so /dev/pts inside shows it, as runc does), bound at /dev/console
// as in Docker. The master goes to Run over the console socket; the slave
// is returned, for the command's stdio.
func (r *rootfs) openConsole(size *Winsize) (int, error) {
	master, err := unix.Open(filepath.Join(r.dir, "dev/pts/ptmx"), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open pty: %w", err)
	}
	defer unix.Close(master)
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return -1, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN)
	if err != nil {
		return -1, fmt.Errorf("get pty number: %w", err)
	}
	// TIOCGPTPEER opens the slave through the master, not by a path that
	// something could have swapped.
	slave, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return -1, fmt.Errorf("open pty slave: %w", errno)
	}
	if size != nil {
		// Before the command starts: it reads its size once it runs.
		if err := unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols}); err != nil {
			unix.Close(int(slave))
			return -1, fmt.Errorf("set terminal size: %w", err)
		}
	}
	pts := filepath.Join(r.dir, "dev/pts", fmt.Sprint(n))
	if err := bindDevice(pts, filepath.Join(r.dir, "dev/console")); err != nil {
		unix.Close(int(slave))
		return -1, fmt.Errorf("create /dev/console: %w", err)
	}
	if err := unix.Sendmsg(consoleFd, []byte{0}, unix.UnixRights(master), nil, 0); err != nil {
		unix.Close(int(slave))
		return -1, fmt.Errorf("send pty to runner: %w", err)
	}
	return int(slave), nil
}

// useConsole makes the pty slave the command's stdin, stdout, stderr and
// controlling terminal, owned by the user who will run there.
func useConsole(slave, uid int) error {
	if err := unix.Fchown(slave, uid, -1); err != nil {
		return fmt.Errorf("chown console: %w", err)
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(slave, fd, 0); err != nil {
			return fmt.Errorf("console as fd %d: %w", fd, err)
		}
	}
	unix.Close(slave)
	// Run started us in a session of our own (setsid), without a terminal.
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	return nil
}

// closeExtraFDs marks every descriptor above stderr close-on-exec, so the
// command gets only its stdio: whatever the builder inherited without
// close-on-exec (a shell's or a job server's descriptors) would otherwise
// ride along through two execs into the container.
func closeExtraFDs() error {
	const closeRangeCloexec = 1 << 2 // CLOSE_RANGE_CLOEXEC, Linux 5.11
	if err := unix.CloseRange(3, ^uint(0), closeRangeCloexec); err == nil {
		return nil
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open files: %w", err)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// bindDevice bind-mounts the device node src over a new empty file at p,
// read-only: the node is the host's (or the container's own pty), and the
// command, root with CAP_FOWNER, could otherwise chmod or chown it. Reading
// and writing the device itself do not need a writable mount.
func bindDevice(src, p string) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|unix.O_CLOEXEC, 0o666)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(src, p, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return remountKeeping(p, unix.MS_RDONLY)
}

func (r *rootfs) mountSys() error {
	err := r.mountAt("sysfs", "/sys", "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err == nil || !errors.Is(err, unix.EPERM) {
		return err
	}
	// A fresh sysfs is refused where the network namespace is not ours to
	// show (sharing the host's from inside a user namespace); a read-only
	// bind of the host's /sys is what runc falls back to as well.
	p, perr := r.ensure("/sys", true)
	if perr != nil {
		return perr
	}
	if err := unix.Mount("/sys", p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind /sys: %w", err)
	}
	if err := remountReadOnly(p); err != nil {
		return fmt.Errorf("make /sys read-only: %w", err)
	}
	return nil
}

// remountReadOnly makes the mount at p read-only, keeping its other
// per-mount flags.
func remountReadOnly(p string) error {
	return remountKeeping(p, unix.MS_RDONLY)
}

// pivotRoot makes dir the root of this mount namespace and drops the old
// root entirely, so no host mount stays reachable (unlike chroot).
func pivotRoot(dir string) error {
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("chdir to root: %w", err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one at the
	// same place, which spares a put_old directory inside the image; the
	// old root is then the mount at "." and a lazy unmount detaches it with
	// everything under it. (Its mounts are private, made so above, so the
	// unmount cannot propagate to the host.)
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir to new root: %w", err)
	}
	return nil
}

// maskPaths hides maskedPaths and makes readonlyPaths read-only, after
// pivot_root (so the container's own /dev/null is the one bound).
func maskPaths() error {
	for _, p := range maskedPaths {
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	for _, p := range readonlyPaths {
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
		if err := remountReadOnly(p); err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
	}
	return nil
}

// loopbackUp brings lo up in a new network namespace, where it starts down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on Linux.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// unignoreSignals resets signals the builder inherited as ignored (a
// parent's SIG_IGN survives fork and exec, and the Go runtime keeps it) to
// their default action, so the container starts as Docker's do. Handled
// signals need nothing: exec resets them. Done right before exec, when no
// Go code depends on the dispositions any more.
func unignoreSignals() {
	const sigIgn = 1
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		var old kernelSigaction
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 || old.handler != sigIgn {
			continue
		}
		def := kernelSigaction{}
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&def)), 0, 8, 0, 0)
	}
}
