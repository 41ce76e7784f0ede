package seccomp

import (
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// label names an instruction a jump goes to, set once the instruction is
// emitted; jumps only go forward.
type label int

// none is "the next instruction" as a jump target.
const none label = -1

// asm collects instructions and resolves the jumps to labels.
type asm struct {
	ins    []bpf.Instruction
	labels []int // label -> instruction index; -1 until set
	fixups []fixup
}

type fixup struct {
	at     int
	tr, fa label // JumpIf targets; for a Jump, tr only
}

func (a *asm) label() label {
	a.labels = append(a.labels, -1)
	return label(len(a.labels) - 1)
}

// set puts l at the next instruction.
func (a *asm) set(l label) { a.labels[l] = len(a.ins) }

func (a *asm) ld(off uint32) { a.ins = append(a.ins, bpf.LoadAbsolute{Off: off, Size: 4}) }

func (a *asm) and(v uint32) {
	a.ins = append(a.ins, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: v})
}

func (a *asm) ret(v uint32) { a.ins = append(a.ins, bpf.RetConstant{Val: v}) }

// jump is a conditional jump with literal skips.
func (a *asm) jump(cond bpf.JumpTest, v uint32, skipTrue, skipFalse uint8) {
	a.ins = append(a.ins, bpf.JumpIf{Cond: cond, Val: v, SkipTrue: skipTrue, SkipFalse: skipFalse})
}

// jumpL is a conditional jump to labels.
func (a *asm) jumpL(cond bpf.JumpTest, v uint32, tr, fa label) {
	a.fixups = append(a.fixups, fixup{at: len(a.ins), tr: tr, fa: fa})
	a.jump(cond, v, 0, 0)
}

// ja is an unconditional jump, which may be long.
func (a *asm) ja(l label) {
	a.fixups = append(a.fixups, fixup{at: len(a.ins), tr: l, fa: none})
	a.ins = append(a.ins, bpf.Jump{})
}

func (a *asm) assemble() ([]unix.SockFilter, error) {
	skip := func(at int, l label) (int, error) {
		if l == none {
			return 0, nil
		}
		to := a.labels[l]
		if to <= at {
			return 0, fmt.Errorf("seccomp: jump from %d to unset or earlier label", at)
		}
		return to - at - 1, nil
	}
	for _, f := range a.fixups {
		t, err := skip(f.at, f.tr)
		if err != nil {
			return nil, err
		}
		switch in := a.ins[f.at].(type) {
		case bpf.Jump:
			in.Skip = uint32(t)
			a.ins[f.at] = in
		case bpf.JumpIf:
			fl, err := skip(f.at, f.fa)
			if err != nil {
				return nil, err
			}
			if t > 255 || fl > 255 {
				return nil, fmt.Errorf("seccomp: conditional jump at %d too long", f.at)
			}
			in.SkipTrue, in.SkipFalse = uint8(t), uint8(fl)
			a.ins[f.at] = in
		}
	}
	// The kernel's limit (BPF_MAXINSNS).
	if len(a.ins) > 4096 {
		return nil, fmt.Errorf("seccomp: program of %d instructions is over the kernel's 4096", len(a.ins))
	}
	raw, err := bpf.Assemble(a.ins)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}
