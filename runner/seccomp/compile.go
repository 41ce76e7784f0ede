package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// syscall is one entry of a system call table (ztables.go).
type syscall struct {
	nr   uint32
	name string
}

// abi is one system call table a filter section checks.
type abi struct {
	name  string
	id    uint32 // the audit arch, as seccomp_data.arch holds it
	mask  uint32 // set in every number of this ABI (x32)
	table []syscall
	bit32 bool // arguments are 32-bit: only their low half is compared
}

// Audit arch values (linux/audit.h): EM_* | __AUDIT_ARCH_64BIT (0x80000000)
// | __AUDIT_ARCH_LE (0x40000000).
const (
	auditArchX86_64  = 0xc000003e
	auditArchI386    = 0x40000003
	auditArchAARCH64 = 0xc00000b7
	auditArchARM     = 0x40000028
)

// x32Bit marks an x32 system call number; x32 shares x86_64's audit arch.
const x32Bit = 0x40000000

// abis are the architectures Compile knows, by the profile's names.
var abis = map[specs.Arch]abi{
	specs.ArchX86_64:  {name: "x86_64", id: auditArchX86_64, table: tableX86_64},
	specs.ArchX32:     {name: "x32", id: auditArchX86_64, mask: x32Bit, table: tableX32},
	specs.ArchX86:     {name: "i386", id: auditArchI386, table: tableI386, bit32: true},
	specs.ArchAARCH64: {name: "aarch64", id: auditArchAARCH64, table: tableAARCH64},
	specs.ArchARM:     {name: "arm", id: auditArchARM, table: tableARM, bit32: true},
}

// numbers maps the ABI's system call names to their numbers (with the
// ABI's mask). Where a table lists a name twice (x32: the 64-bit number,
// which x32 does not serve, and its own from 512 on) the higher number is
// the ABI's own, the one libseccomp resolves the name to.
func (ab abi) numbers() map[string]uint32 {
	out := make(map[string]uint32, len(ab.table))
	for _, sc := range ab.table {
		n := sc.nr | ab.mask
		if cur, ok := out[sc.name]; !ok || n > cur {
			out[sc.name] = n
		}
	}
	return out
}

// highest is the ABI's highest system call number, without the mask.
func (ab abi) highest() uint32 {
	var h uint32
	for _, sc := range ab.table {
		h = max(h, sc.nr)
	}
	return h
}

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
		a.jump(bpf.JumpEqual, ab.id, 1, 0)
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
// ABI and returns the action.
//
// The number is looked up by binary search over ranges of numbers that
// share an outcome (about ten comparisons, where a chain of comparisons
// takes hundreds): the kernel runs the filter on every system call that
// its per-number cache of constant answers does not cover, and when it
// installs the filter it runs it once for every number to fill that cache,
// which a chain makes cost milliseconds per container. A number some rule
// puts argument conditions on goes to a block of its own that tries its
// rules in the profile's order.
func (a *asm) section(p *specs.LinuxSeccomp, ab abi, defAct uint32) error {
	mask := ab.mask
	// The rules for each number, in the profile's order, up to and
	// including the first unconditional one (which always matches).
	type rule struct {
		conds []specs.LinuxSeccompArg
		act   uint32
	}
	rules := map[uint32][]rule{}
	numbers := ab.numbers()
	for _, sc := range p.Syscalls {
		act, err := action(sc.Action, sc.ErrnoRet)
		if err != nil {
			return err
		}
		for _, name := range sc.Names {
			// A name this table lacks is not on this arch (or newer than
			// the table, then ENOSYS below); libseccomp skips it too.
			nr, ok := numbers[name]
			if !ok {
				continue
			}
			rs := rules[nr]
			if len(rs) > 0 && rs[len(rs)-1].conds == nil {
				continue // an earlier rule always matches
			}
			if len(sc.Args) == 0 {
				rules[nr] = append(rs, rule{act: act})
				continue
			}
			for _, conds := range ruleSets(sc.Args) {
				for _, c := range conds {
					if c.Index > 5 {
						return fmt.Errorf("seccomp: %s: argument index %d out of range", name, c.Index)
					}
				}
				rs = append(rs, rule{conds: conds, act: act})
			}
			rules[nr] = rs
		}
	}

	// Ranges [from, next range's from) with one outcome each: a constant
	// action, or a block (label) for a number with conditions.
	type outcome struct {
		act   uint32
		block label // -1 for a constant
	}
	type span struct {
		from uint32
		out  outcome
	}
	nrs := make([]uint32, 0, len(rules))
	for nr := range rules {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	blocks := map[label]uint32{}
	spans := []span{{from: mask, out: outcome{act: defAct, block: -1}}}
	// put starts a range at from (replacing one that started there),
	// unless it has the outcome of the range before it.
	put := func(from uint32, o outcome) {
		if spans[len(spans)-1].from == from {
			spans = spans[:len(spans)-1]
		}
		if len(spans) == 0 || spans[len(spans)-1].out != o {
			spans = append(spans, span{from: from, out: o})
		}
	}
	for _, nr := range nrs {
		o := outcome{block: -1}
		if rs := rules[nr]; len(rs) == 1 && rs[0].conds == nil {
			o.act = rs[0].act
		} else {
			o.block = a.label()
			blocks[o.block] = nr
		}
		put(nr, o)
		put(nr+1, outcome{act: defAct, block: -1})
	}
	// Newer than the table: the profile cannot have meant it, and ENOSYS
	// lets a libc fall back to an older call where EPERM would fail it.
	put(ab.highest()+1|mask, outcome{act: uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.ENOSYS), block: -1})

	// The search tree: each node tests "A >= the right half's first
	// number". A left half too big for a conditional jump over it goes
	// through an unconditional one.
	var tree func(sp []span)
	tree = func(sp []span) {
		if len(sp) == 1 {
			if sp[0].out.block >= 0 {
				a.ja(sp[0].out.block)
			} else {
				a.ret(sp[0].out.act)
			}
			return
		}
		mid := len(sp) / 2
		right := a.label()
		if mid <= 60 { // at most 3 instructions a span: within 255
			a.jumpL(bpf.JumpGreaterOrEqual, sp[mid].from, right, none)
		} else {
			a.jump(bpf.JumpGreaterOrEqual, sp[mid].from, 0, 1)
			a.ja(right)
		}
		tree(sp[:mid])
		a.set(right)
		tree(sp[mid:])
	}
	tree(spans)

	// The blocks, in number order: each rule's conditions, then its
	// action; the default when none matches.
	for _, nr := range nrs {
		rs := rules[nr]
		if len(rs) == 1 && rs[0].conds == nil {
			continue
		}
		for l, n := range blocks {
			if n == nr {
				a.set(l)
			}
		}
		matched := false
		for _, r := range rs {
			if r.conds == nil {
				a.ret(r.act)
				matched = true
				break
			}
			next := a.label()
			for _, c := range r.conds {
				if err := a.condition(c, next, ab.bit32); err != nil {
					return fmt.Errorf("seccomp: %s: %w", ab.name, err)
				}
			}
			a.ret(r.act)
			a.set(next)
		}
		if !matched {
			a.ret(defAct)
		}
	}
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
