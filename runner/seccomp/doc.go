// Package seccomp turns a seccomp profile into the classic BPF program the
// kernel runs on every system call of a container, in pure Go (no
// libseccomp, so the builder stays a static binary).
//
// Default is Docker's default profile (github.com/moby/profiles/seccomp),
// resolved for a container's capabilities, this host's architecture and
// kernel, and compiled once per process. Compile translates any resolved
// profile (an OCI runtime-spec LinuxSeccomp) the way runc and libseccomp
// do: one section per architecture the profile lists (x86_64 with its x86
// and x32 ABIs, aarch64 with arm), the system call number found by binary
// search (see section), a number's rules tried in the profile's order,
// argument conditions on the full 64-bit value (the low 32 bits on 32-bit
// ABIs), the profile's default action for the rest, ENOSYS for a system
// call newer than the architecture's table (as runc answers, so that libc
// falls back to an older call) and a kill for an architecture the profile
// does not list.
//
// The system call numbers are github.com/elastic/go-seccomp-bpf's tables,
// turned into static data by gen_tables.go (ztables.go; see there why).
// Its assembler is not used: it compares later system call
// numbers against an argument it loaded for an earlier condition, and has
// no per-rule errno (Docker answers clone3 with ENOSYS) nor a second ABI.
//
// The program is data: the runner hands it to the container's init, which
// only installs it (see runner.Spec).
//
// It imports the standard library and third-party modules only; it must
// not import runner or any other builder package.
package seccomp
