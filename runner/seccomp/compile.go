package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// abi is one system call table a filter section checks.
type abi struct {
	info  *arch.Info
	bit32 bool // arguments are 32-bit: only their low half is compared
}

// abis are the architectures Compile knows, by the profile's names.
var abis = map[specs.Arch]abi{
	specs.ArchX86_64:  {info: arch.X86_64},
	specs.ArchX32:     {info: arch.X32},
	specs.ArchX86:     {info: arch.I386, bit32: true},
	specs.ArchAARCH64: {info: arch.AARCH64},
	specs.ArchARM:     {info: arch.ARM, bit32: true},
}

// x32Bit marks an x32 system call number; x32 shares x86_64's audit arch.
const x32Bit = 0x40000000

// seccomp_data offsets: nr, arch, instruction pointer, then six u64 args.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// Compile compiles the resolved profile p into a seccomp BPF program.
// Architectures p lists that have no table here are left out (a call from
// one of them is killed, as one from any arch p does not list).
func Compile(p *specs.LinuxSeccomp) ([]unix.SockFilter, error) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return nil, errors.New("seccomp: only little-endian hosts are supported")
	}
	defAct, err := action(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	var a asm
	a.ld(offArch)
	listed := map[specs.Arch]bool{}
	for _, ar := range p.Architectures {
		listed[ar] = true
	}
	// x32 is a sub-ABI of x86_64: same audit arch, numbers with x32Bit.
	// Either one brings the x86_64 section.
	done := map[specs.Arch]bool{}
	for _, ar := range p.Architectures {
		if ar == specs.ArchX32 {
			ar = specs.ArchX86_64
		}
		ab, ok := abis[ar]
		if !ok || done[ar] {
			continue
		}
		done[ar] = true
		next := a.label()
		a.jump(bpf.JumpEqual, uint32(ab.info.ID), 1, 0)
		a.ja(next)
		a.ld(offNr)
		if ar == specs.ArchX86_64 {
			x32 := a.label()
			a.jump(bpf.JumpGreaterOrEqual, x32Bit, 0, 1)
			a.ja(x32)
			if listed[specs.ArchX86_64] {
				if err := a.section(p, ab, defAct); err != nil {
					return nil, err
				}
			} else {
				a.ret(uint32(unix.SECCOMP_RET_KILL_THREAD))
			}
			a.set(x32)
			if listed[specs.ArchX32] {
				if err := a.section(p, abis[specs.ArchX32], defAct); err != nil {
					return nil, err
				}
			} else {
				a.ret(uint32(unix.SECCOMP_RET_KILL_THREAD))
			}
		} else if err := a.section(p, ab, defAct); err != nil {
			return nil, err
		}
		a.set(next)
	}
	// An arch the profile does not list: killed, libseccomp's default.
	a.ret(uint32(unix.SECCOMP_RET_KILL_THREAD))
	return a.assemble()
}

// section checks the system call number in A against p's rules for one
// ABI and returns; it ends with p's default action.
func (a *asm) section(p *specs.LinuxSeccomp, ab abi, defAct uint32) error {
	mask := uint32(ab.info.SeccompMask)
	highest := 0
	for nr := range ab.info.SyscallNumbers {
		highest = max(highest, nr)
	}
	// Newer than the table: the profile cannot have meant it, and ENOSYS
	// lets a libc fall back to an older call where EPERM would fail it.
	a.jump(bpf.JumpGreaterThan, uint32(highest)|mask, 0, 1)
	a.ret(uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.ENOSYS))

	var run []uint32 // unconditional numbers waiting for runAct
	var runAct uint32
	flush := func() {
		// A chain of comparisons to one return; chunks keep every jump
		// short (a conditional jump skips at most 255 instructions).
		for len(run) > 0 {
			n := min(len(run), 200)
			for i, nr := range run[:n] {
				if i < n-1 {
					a.jump(bpf.JumpEqual, nr, uint8(n-1-i), 0)
				} else {
					a.jump(bpf.JumpEqual, nr, 0, 1)
				}
			}
			a.ret(runAct)
			run = run[n:]
		}
	}
	for _, sc := range p.Syscalls {
		act, err := action(sc.Action, sc.ErrnoRet)
		if err != nil {
			return err
		}
		var nrs []uint32
		for _, name := range sc.Names {
			// A name this table lacks is not on this arch (or newer than
			// the table, then ENOSYS above); libseccomp skips it too.
			if nr, ok := ab.info.SyscallNames[name]; ok && !slices.Contains(nrs, uint32(nr)|mask) {
				nrs = append(nrs, uint32(nr)|mask)
			}
		}
		if len(nrs) == 0 {
			continue
		}
		if len(sc.Args) == 0 {
			if len(run) > 0 && runAct != act {
				flush()
			}
			run, runAct = append(run, nrs...), act
			continue
		}
		flush()
		for _, nr := range nrs {
			for _, conds := range ruleSets(sc.Args) {
				if err := a.conditional(nr, conds, act, ab.bit32); err != nil {
					return fmt.Errorf("seccomp: %s: %w", ab.info.Name, err)
				}
			}
		}
	}
	flush()
	a.ret(defAct)
	return nil
}

// ruleSets splits a rule's argument conditions into the sets that each
// must hold entirely (AND), any of which matches (OR). As runc does, a
// rule naming one argument more than once is read as one set per
// condition; otherwise all conditions form one set.
func ruleSets(args []specs.LinuxSeccompArg) [][]specs.LinuxSeccompArg {
	seen := map[uint]bool{}
	for _, c := range args {
		if seen[c.Index] {
			out := make([][]specs.LinuxSeccompArg, len(args))
			for i, c := range args {
				out[i] = []specs.LinuxSeccompArg{c}
			}
			return out
		}
		seen[c.Index] = true
	}
	return [][]specs.LinuxSeccompArg{args}
}

// conditional emits: if nr matches and every condition holds, return act;
// otherwise continue with the number back in A.
func (a *asm) conditional(nr uint32, conds []specs.LinuxSeccompArg, act uint32, bit32 bool) error {
	skip := a.label() // past the rule, A still the number
	fail := a.label() // a condition failed: reload the number
	a.jumpL(bpf.JumpEqual, nr, none, skip)
	for _, c := range conds {
		if c.Index > 5 {
			return fmt.Errorf("argument index %d out of range", c.Index)
		}
		if err := a.condition(c, fail, bit32); err != nil {
			return err
		}
	}
	a.ret(act)
	a.set(fail)
	a.ld(offNr)
	a.set(skip)
	return nil
}

// condition emits the test of one argument: on to the next instruction
// when it holds, to fail when it does not.
func (a *asm) condition(c specs.LinuxSeccompArg, fail label, bit32 bool) error {
	lo := uint32(offArgs + 8*c.Index) // little-endian: the low half first
	hi := lo + 4
	v, v2 := c.Value, c.ValueTwo
	ok := a.label()
	if !bit32 {
		// The high halves decide unless they are equal.
		a.ld(hi)
		vh := uint32(v >> 32)
		switch c.Op {
		case specs.OpEqualTo:
			a.jumpL(bpf.JumpEqual, vh, none, fail)
		case specs.OpNotEqual:
			a.jumpL(bpf.JumpEqual, vh, none, ok)
		case specs.OpGreaterThan, specs.OpGreaterEqual:
			a.jumpL(bpf.JumpGreaterThan, vh, ok, none)
			a.jumpL(bpf.JumpEqual, vh, none, fail)
		case specs.OpLessThan, specs.OpLessEqual:
			a.jumpL(bpf.JumpGreaterOrEqual, vh, none, ok)
			a.jumpL(bpf.JumpEqual, vh, none, fail)
		case specs.OpMaskedEqual:
			a.and(uint32(v >> 32))
			a.jumpL(bpf.JumpEqual, uint32(v2>>32), none, fail)
		default:
			return fmt.Errorf("unknown operator %q", c.Op)
		}
	}
	a.ld(lo)
	vl := uint32(v)
	switch c.Op {
	case specs.OpEqualTo:
		a.jumpL(bpf.JumpEqual, vl, ok, fail)
	case specs.OpNotEqual:
		a.jumpL(bpf.JumpEqual, vl, fail, ok)
	case specs.OpGreaterThan:
		a.jumpL(bpf.JumpGreaterThan, vl, ok, fail)
	case specs.OpGreaterEqual:
		a.jumpL(bpf.JumpGreaterOrEqual, vl, ok, fail)
	case specs.OpLessThan:
		a.jumpL(bpf.JumpGreaterOrEqual, vl, fail, ok)
	case specs.OpLessEqual:
		a.jumpL(bpf.JumpGreaterThan, vl, fail, ok)
	case specs.OpMaskedEqual:
		a.and(uint32(v))
		a.jumpL(bpf.JumpEqual, uint32(v2), ok, fail)
	default:
		return fmt.Errorf("unknown operator %q", c.Op)
	}
	a.set(ok)
	return nil
}

// action is the filter's return value for a profile action.
func action(act specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	errno := uint32(unix.EPERM)
	if errnoRet != nil {
		errno = uint32(*errnoRet)
	}
	switch act {
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActErrno:
		return unix.SECCOMP_RET_ERRNO | errno&unix.SECCOMP_RET_DATA, nil
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActTrace:
		return unix.SECCOMP_RET_TRACE | errno&unix.SECCOMP_RET_DATA, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	}
	return 0, fmt.Errorf("seccomp: unsupported action %q", act)
}
