// Package runner runs one process in an isolated root file system: the code
// behind both a Dockerfile RUN step and `builder run`.
//
// Run starts a container init (builder-init, the small program installed
// next to the builder, see initbin.go; or else a re-executed copy of the
// current binary) in new pid, UTS and IPC namespaces, and a new network
// namespace for Network "none". Once it has its spec, the init makes its
// own mount namespace too. It performs the root file system
// mounts inside its own mount namespace, so they vanish with the process and
// nothing is ever left mounted on the host; it then mounts /proc, a minimal
// /dev, a read-only /sys and the /etc files a container expects, masks /proc
// paths as runc does, pivots into the root, drops to Docker's default
// capability set, switches to the image's USER and execs the command, which
// so becomes pid 1 of its pid namespace, like a Docker RUN.
//
// Every program that calls Run must call Init first thing in main (and a test
// binary in TestMain): that is where the re-executed copy becomes the init.
// An init starts, then waits for its container's spec on a pipe (spawn.go),
// so a Pool can start the next container's init ahead, while the current
// one runs (pool.go): a build's RUN steps do not wait for it.
//
// Run is Start and Wait: Start returns a Process once the command runs, for
// a caller that signals it (Docker's stop: STOPSIGNAL, then SIGKILL) or
// waits for it later, as a detached container's monitor does.
//
// With Spec.Resources, the container gets a cgroup, builder/<CgroupName>,
// in each hierarchy its limits need (cgroup.go): a v1 hierarchy where the
// controller is mounted as one, else the unified (v2) hierarchy. Start
// makes it and writes the limits before the init does anything, the init
// joins it before its setup, and Wait removes it, noting OOM kills first.
// A Pool's containers (a build's RUN steps) instead hand their empty cgroup
// on to a later one, which Close removes: on cgroup v1, making, joining and
// removing one per step waits on the kernel's cgroup lock and RCU grace
// periods, a millisecond or two a step.
//
// Devices: the container opens no device but the host's null, zero, full,
// random, urandom and tty nodes bound into its /dev (and its own ptys).
// The root and every other mount the image or the command can write
// (/dev itself, /dev/shm, tmpfs and bind mounts, with all mounts below a
// bind) are nodev, so a node a layer carries or a RUN makes with mknod
// does not open (nodev.go). This needs no device cgroup, so it is the same
// on cgroup v1 and v2, and undoing it takes a remount, which needs
// CAP_SYS_ADMIN.
//
// Seccomp: every command runs under the seccomp program of Spec.Seccomp,
// Docker's default profile as package runner/seccomp compiles it (in the
// builder, once per process: the init only installs it). Without
// no_new_privs (off by default, as in Docker and BuildKit) installing a
// filter takes CAP_SYS_ADMIN, so the init installs it before it drops its
// capabilities, as runc does; with Spec.NoNewPrivileges, right before
// execve. Either way /proc/self/status shows "Seccomp: 2" and one filter.
//
// Mount points the init has to create in the image (an /etc/resolv.conf a
// busybox image lacks, say) are reported to Run, which removes them from the
// overlay upper dir afterwards (stubs.go), with the directories only their
// creation copied up, so they never reach a layer.
//
// Symlinks: the image and the command own the root, so every path in it is
// hostile. Mount targets resolve inside the root (SecureJoin, then openat2
// RESOLVE_IN_ROOT), mount points are made relative to their parent
// directory so opened, and the mounts go on the opened target
// (/proc/self/fd/N), so a symlink, even one swapped in meanwhile through a
// shared volume, never sends a mount or a new file to the host. /proc,
// /dev and /sys must be real directories, as runc demands. Stub removal,
// on the host after the command, opens each directory without following
// symlinks, so a command that swaps a stub's parent for a link to a host
// directory changes nothing there.
//
// The decisions (capability set, environment defaults, PATH lookup, exit
// codes, /etc/hosts contents, mount order) live in policy.go as plain
// functions and test without root; the syscalls live in init.go and caps.go.
//
// It imports runner/seccomp and internal packages only; it must not import
// snapshot, store, the solver or anything above it: callers hand it mounts
// as data.
package runner
