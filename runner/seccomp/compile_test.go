package seccomp

import (
	"encoding/binary"
	"runtime"
	"slices"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// dockerCaps is Docker's default bounding set.
var dockerCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

// call is one system call as the filter sees it (struct seccomp_data).
type call struct {
	arch abi
	name string
	args [6]uint64
}

// decide runs prog on c in x/net/bpf's VM. The VM loads words big-endian
// where the kernel loads them in host order, so each 32-bit word of the
// data is written big-endian at its offset: the program reads the values
// the kernel would give it.
func decide(t *testing.T, prog []unix.SockFilter, c call) uint32 {
	t.Helper()
	nr, ok := c.arch.numbers()[c.name]
	if !ok {
		t.Fatalf("%s has no %s", c.arch.name, c.name)
	}
	var data [64]byte
	binary.BigEndian.PutUint32(data[offNr:], nr)
	binary.BigEndian.PutUint32(data[offArch:], c.arch.id)
	for i, v := range c.args {
		binary.BigEndian.PutUint32(data[offArgs+8*i:], uint32(v))
		binary.BigEndian.PutUint32(data[offArgs+8*i+4:], uint32(v>>32))
	}
	return run(t, prog, data[:])
}

func run(t *testing.T, prog []unix.SockFilter, data []byte) uint32 {
	t.Helper()
	v, err := newVM(t, prog).Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

func newVM(t *testing.T, prog []unix.SockFilter) *bpf.VM {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(prog))
	for i, f := range prog {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("program does not disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

const (
	allow  = unix.SECCOMP_RET_ALLOW
	eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	kill   = unix.SECCOMP_RET_KILL_THREAD
)

func TestDefaultProfileDecisions(t *testing.T) {
	if !hostIs("amd64") {
		t.Skip("the profile's arches are the host's; this table is for amd64")
	}
	prog, err := Default(dockerCaps)
	if err != nil {
		t.Fatal(err)
	}
	x64, x86, x32 := abis[specs.ArchX86_64], abis[specs.ArchX86], abis[specs.ArchX32]
	tests := []struct {
		c    call
		want uint32
	}{
		{call{arch: x64, name: "read"}, allow},
		{call{arch: x64, name: "execve"}, allow},
		{call{arch: x64, name: "chroot"}, allow}, // CAP_SYS_CHROOT is a default cap
		{call{arch: x64, name: "keyctl"}, eperm},
		{call{arch: x64, name: "add_key"}, eperm},
		{call{arch: x64, name: "unshare", args: [6]uint64{unix.CLONE_NEWUSER}}, eperm},
		{call{arch: x64, name: "mount"}, eperm},
		{call{arch: x64, name: "kexec_load"}, eperm},
		{call{arch: x64, name: "bpf"}, eperm},
		{call{arch: x64, name: "perf_event_open"}, eperm},
		{call{arch: x64, name: "ptrace"}, allow}, // allowed from kernel 4.8 on
		{call{arch: x64, name: "setns"}, eperm},
		// clone: threads and forks yes, new namespaces no.
		{call{arch: x64, name: "clone", args: [6]uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND | unix.CLONE_FS | unix.CLONE_FILES}}, allow},
		{call{arch: x64, name: "clone", args: [6]uint64{uint64(unix.SIGCHLD)}}, allow},
		{call{arch: x64, name: "clone", args: [6]uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}}, eperm},
		{call{arch: x64, name: "clone", args: [6]uint64{unix.CLONE_NEWNS}}, eperm},
		// clone3's flags are in memory the filter cannot read: ENOSYS
		// sends libc back to clone.
		{call{arch: x64, name: "clone3"}, enosys},
		// personality: only the listed values, compared on 64 bits.
		{call{arch: x64, name: "personality", args: [6]uint64{0}}, allow},
		{call{arch: x64, name: "personality", args: [6]uint64{0xffffffff}}, allow},
		{call{arch: x64, name: "personality", args: [6]uint64{0x1_0000_0000}}, eperm},
		{call{arch: x64, name: "personality", args: [6]uint64{0x0040000}}, eperm}, // ADDR_NO_RANDOMIZE
		// socket: families but AF_VSOCK.
		{call{arch: x64, name: "socket", args: [6]uint64{unix.AF_INET}}, allow},
		{call{arch: x64, name: "socket", args: [6]uint64{unix.AF_UNIX}}, allow},
		{call{arch: x64, name: "socket", args: [6]uint64{unix.AF_NETLINK}}, allow},
		{call{arch: x64, name: "socket", args: [6]uint64{unix.AF_VSOCK}}, eperm},
		{call{arch: x64, name: "arch_prctl", args: [6]uint64{0x1002}}, allow},
		// The 32-bit ABIs have their own numbers.
		{call{arch: x86, name: "read"}, allow},
		{call{arch: x86, name: "keyctl"}, eperm},
		{call{arch: x86, name: "socketcall"}, allow},
		{call{arch: x86, name: "personality", args: [6]uint64{8}}, allow},
		{call{arch: x32, name: "read"}, allow},
		{call{arch: x32, name: "keyctl"}, eperm},
		{call{arch: x32, name: "unshare"}, eperm},
	}
	for _, tt := range tests {
		if got := decide(t, prog, tt.c); got != tt.want {
			t.Errorf("%s %s(%#x): got %#x, want %#x", tt.c.arch.name, tt.c.name, tt.c.args[0], got, tt.want)
		}
	}

	// A number beyond the table: ENOSYS (a newer kernel's call); another
	// architecture: killed.
	var data [64]byte
	binary.BigEndian.PutUint32(data[offNr:], 1000)
	binary.BigEndian.PutUint32(data[offArch:], x64.id)
	if got := run(t, prog, data[:]); got != enosys {
		t.Errorf("nr 1000: got %#x, want ENOSYS", got)
	}
	binary.BigEndian.PutUint32(data[offNr:], 0)
	binary.BigEndian.PutUint32(data[offArch:], abis[specs.ArchAARCH64].id)
	if got := run(t, prog, data[:]); got != kill {
		t.Errorf("foreign arch: got %#x, want kill", got)
	}
}

// TestDefaultProfileFollowsCaps: CAP_SYS_ADMIN (a privileged container)
// brings mount, unshare, clone with namespaces and clone3.
func TestDefaultProfileFollowsCaps(t *testing.T) {
	if !hostIs("amd64") {
		t.Skip("amd64 table")
	}
	prog, err := Default(append(dockerCaps, "CAP_SYS_ADMIN"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []call{
		{arch: abis[specs.ArchX86_64], name: "mount"},
		{arch: abis[specs.ArchX86_64], name: "unshare", args: [6]uint64{unix.CLONE_NEWUSER}},
		{arch: abis[specs.ArchX86_64], name: "clone", args: [6]uint64{unix.CLONE_NEWNS}},
		{arch: abis[specs.ArchX86_64], name: "clone3"},
	} {
		if got := decide(t, prog, c); got != allow {
			t.Errorf("%s: got %#x, want allow", c.name, got)
		}
	}
	if got := decide(t, prog, call{arch: abis[specs.ArchX86_64], name: "keyctl"}); got != eperm {
		t.Errorf("keyctl: got %#x, want EPERM", got)
	}
}

// TestConditionReloadsNumber: after a rule's argument test fails, the
// next rules compare the system call number again, not the argument the
// failed test loaded.
func TestConditionReloadsNumber(t *testing.T) {
	x64 := abis[specs.ArchX86_64]
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}}},
			{Names: []string{"read"}, Action: specs.ActAllow},
		},
	}
	prog, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	// personality(0): its arg 0 is read's number, 0.
	if got := decide(t, prog, call{arch: x64, name: "personality", args: [6]uint64{0}}); got != eperm {
		t.Errorf("personality(0): got %#x, want EPERM", got)
	}
	if got := decide(t, prog, call{arch: x64, name: "read"}); got != allow {
		t.Errorf("read: got %#x, want allow", got)
	}
}

func TestOperators(t *testing.T) {
	x64, x86 := abis[specs.ArchX86_64], abis[specs.ArchX86]
	const v = 0x1_0000_0010
	for _, tt := range []struct {
		op   specs.LinuxSeccompOperator
		v2   uint64
		arg  uint64
		want bool
	}{
		{specs.OpEqualTo, 0, v, true},
		{specs.OpEqualTo, 0, 0x10, false},
		{specs.OpNotEqual, 0, v, false},
		{specs.OpNotEqual, 0, 0x10, true},
		{specs.OpGreaterThan, 0, v + 1, true},
		{specs.OpGreaterThan, 0, v, false},
		{specs.OpGreaterThan, 0, 0x2_0000_0000, true},
		{specs.OpGreaterThan, 0, 0x11, false},
		{specs.OpGreaterEqual, 0, v, true},
		{specs.OpGreaterEqual, 0, v - 1, false},
		{specs.OpLessThan, 0, v - 1, true},
		{specs.OpLessThan, 0, v, false},
		{specs.OpLessThan, 0, 0xffff_ffff, true},
		{specs.OpLessEqual, 0, v, true},
		{specs.OpLessEqual, 0, v + 1, false},
		// (arg & value) == valueTwo
		{specs.OpMaskedEqual, 0x10, 0x11, true},
		{specs.OpMaskedEqual, 0x10, 0x1_0000_0010, false},
		{specs.OpMaskedEqual, 0x10, 0x01, false},
		{specs.OpMaskedEqual, 0x0, 0x1_0000_0000, false}, // value 0x1_0000_0000 below
		{specs.OpMaskedEqual, 0x0, 0x10, true},
	} {
		p := &specs.LinuxSeccomp{
			DefaultAction: specs.ActErrno,
			Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: v, ValueTwo: tt.v2, Op: tt.op}}}},
		}
		if tt.op == specs.OpMaskedEqual && tt.v2 == 0 {
			p.Syscalls[0].Args[0].Value = 0x1_0000_0000
		}
		prog, err := Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		var args [6]uint64
		args[2] = tt.arg
		if got := decide(t, prog, call{arch: x64, name: "read", args: args}) == allow; got != tt.want {
			t.Errorf("%s %#x (value %#x, two %#x): got %v, want %v", tt.op, tt.arg, p.Syscalls[0].Args[0].Value, tt.v2, got, tt.want)
		}
		// 32-bit ABI: only the low half counts.
		args[2] = tt.arg & 0xffff_ffff
		want32 := compare32(tt.op, uint32(p.Syscalls[0].Args[0].Value), uint32(tt.v2), uint32(args[2]))
		if got := decide(t, prog, call{arch: x86, name: "read", args: args}) == allow; got != want32 {
			t.Errorf("i386 %s %#x: got %v, want %v", tt.op, args[2], got, want32)
		}
	}
}

func compare32(op specs.LinuxSeccompOperator, v, v2, a uint32) bool {
	switch op {
	case specs.OpEqualTo:
		return a == v
	case specs.OpNotEqual:
		return a != v
	case specs.OpGreaterThan:
		return a > v
	case specs.OpGreaterEqual:
		return a >= v
	case specs.OpLessThan:
		return a < v
	case specs.OpLessEqual:
		return a <= v
	case specs.OpMaskedEqual:
		return a&v == v2
	}
	return false
}

// TestRepeatedIndexIsOr: a rule naming one argument twice allows either
// value (runc's reading), not neither.
func TestRepeatedIndexIsOr(t *testing.T) {
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
			{Index: 0, Value: 0, Op: specs.OpEqualTo}, {Index: 0, Value: 8, Op: specs.OpEqualTo}}}},
	}
	prog, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	for arg, want := range map[uint64]uint32{0: allow, 8: allow, 4: eperm} {
		if got := decide(t, prog, call{arch: abis[specs.ArchX86_64], name: "personality", args: [6]uint64{arg}}); got != want {
			t.Errorf("personality(%d): got %#x, want %#x", arg, got, want)
		}
	}
}

func TestCompileRejects(t *testing.T) {
	for name, p := range map[string]*specs.LinuxSeccomp{
		"action": {DefaultAction: "SCMP_ACT_NOTIFY", Architectures: []specs.Arch{specs.ArchX86_64}},
		"operator": {DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Op: "SCMP_CMP_SOMETHING"}}}}},
		"index": {DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}},
	} {
		if _, err := Compile(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func hostIs(goarch string) bool { return runtime.GOARCH == goarch }

// TestEveryNumber: for every system call number of each ABI (and a few
// past the table), with argument values the profile's conditions test,
// the compiled program gives what reading the profile rule by rule gives.
func TestEveryNumber(t *testing.T) {
	if !hostIs("amd64") {
		t.Skip("amd64 tables")
	}
	for _, caps := range [][]string{dockerCaps, append(dockerCaps[:len(dockerCaps):len(dockerCaps)], "CAP_SYS_ADMIN")} {
		rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
		p, err := seccomp.GetDefaultProfile(rs)
		if err != nil {
			t.Fatal(err)
		}
		prog, err := Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		vm := newVM(t, prog)
		argValues := []uint64{0, 1, 2, 8, 16, 40, 0xffffffff, 0x1_0000_0000, uint64(unix.CLONE_NEWUSER | unix.SIGCHLD), 0x7E020000}
		for _, ab := range []abi{abis[specs.ArchX86_64], abis[specs.ArchX86], abis[specs.ArchX32]} {
			highest := int(ab.highest())
			numbers := ab.numbers()
			for nr := 0; nr <= highest+3; nr++ {
				for _, v := range argValues {
					args := [6]uint64{v, v}
					var data [64]byte
					binary.BigEndian.PutUint32(data[offNr:], uint32(nr)|ab.mask)
					binary.BigEndian.PutUint32(data[offArch:], ab.id)
					for i, a := range args {
						binary.BigEndian.PutUint32(data[offArgs+8*i:], uint32(a))
						binary.BigEndian.PutUint32(data[offArgs+8*i+4:], uint32(a>>32))
					}
					v, err := vm.Run(data[:])
					if err != nil {
						t.Fatal(err)
					}
					got := uint32(v)
					want := reference(t, p, ab, numbers, nr, highest, args)
					if got != want {
						t.Fatalf("%s nr %d args %#x: got %#x, want %#x", ab.name, nr, v, got, want)
					}
				}
			}
		}
	}
}

// reference decides a call by reading the profile: the first rule naming
// the call whose conditions hold.
func reference(t *testing.T, p *specs.LinuxSeccomp, ab abi, numbers map[string]uint32, nr, highest int, args [6]uint64) uint32 {
	if nr > highest {
		return enosys
	}
	for _, sc := range p.Syscalls {
		if !slices.ContainsFunc(sc.Names, func(name string) bool {
			n, ok := numbers[name]
			return ok && n == uint32(nr)|ab.mask
		}) {
			continue
		}
		act, err := action(sc.Action, sc.ErrnoRet)
		if err != nil {
			t.Fatal(err)
		}
		for _, set := range ruleSets(sc.Args) {
			ok := true
			for _, c := range set {
				a := args[c.Index]
				v, v2 := c.Value, c.ValueTwo
				if ab.bit32 {
					a, v, v2 = a&0xffffffff, v&0xffffffff, v2&0xffffffff
				}
				switch c.Op {
				case specs.OpEqualTo:
					ok = ok && a == v
				case specs.OpNotEqual:
					ok = ok && a != v
				case specs.OpGreaterThan:
					ok = ok && a > v
				case specs.OpGreaterEqual:
					ok = ok && a >= v
				case specs.OpLessThan:
					ok = ok && a < v
				case specs.OpLessEqual:
					ok = ok && a <= v
				case specs.OpMaskedEqual:
					ok = ok && a&v == v2
				}
			}
			if ok {
				return act
			}
		}
	}
	def, _ := action(p.DefaultAction, p.DefaultErrnoRet)
	return def
}

// TestTablesAreTheLibrarys: ztables.go is gen_tables.go's output for the
// go-seccomp-bpf version in go.mod (run `go generate` after an update).
func TestTablesAreTheLibrarys(t *testing.T) {
	for _, tt := range []struct {
		ours  abi
		their *arch.Info
	}{
		{abis[specs.ArchX86_64], arch.X86_64},
		{abis[specs.ArchX32], arch.X32},
		{abis[specs.ArchX86], arch.I386},
		{abis[specs.ArchAARCH64], arch.AARCH64},
		{abis[specs.ArchARM], arch.ARM},
	} {
		if tt.ours.id != uint32(tt.their.ID) || tt.ours.mask != uint32(tt.their.SeccompMask) {
			t.Errorf("%s: arch %#x mask %#x, the library's %#x %#x", tt.ours.name, tt.ours.id, tt.ours.mask, uint32(tt.their.ID), tt.their.SeccompMask)
		}
		if len(tt.ours.table) != len(tt.their.SyscallNumbers) {
			t.Errorf("%s: %d entries, the library's %d", tt.ours.name, len(tt.ours.table), len(tt.their.SyscallNumbers))
		}
		for _, sc := range tt.ours.table {
			if tt.their.SyscallNumbers[int(sc.nr)] != sc.name {
				t.Errorf("%s: %d is %q, the library's %q", tt.ours.name, sc.nr, sc.name, tt.their.SyscallNumbers[int(sc.nr)])
			}
		}
	}
}
