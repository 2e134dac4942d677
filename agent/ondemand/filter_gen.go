package ondemand

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// ---- code generation: forward jumps to labels, resolved by assemble

type label int32

// next is the target "the instruction after this one".
const next label = -1

// maxSkip is the farthest a classic BPF conditional jump reaches; farther
// targets are reached through an unconditional jump (32-bit offset).
const maxSkip = 255

type insn struct {
	ins  bpf.Instruction // a load, ALU or return; nil for a conditional jump
	jset bool            // JumpBitsSet rather than JumpEqual
	k    uint32
	term int32 // the load the jump tests, an index into program.terms
	t, f label
}

type program struct {
	code     []insn
	labels   []int // position of each label, -1 until placed
	terms    map[load]int32
	overflow bool // more than MaxFilterInsns: emission stopped
}

// generate compiles n to a program that returns acceptLen when n matches
// and 0 otherwise.
func generate(n *node) (*program, error) {
	g := &program{terms: map[load]int32{}}
	accept, reject := g.label(), g.label()
	g.node(n, accept, reject)
	g.place(accept)
	g.emit(bpf.RetConstant{Val: acceptLen})
	g.place(reject)
	g.emit(bpf.RetConstant{Val: 0})
	if g.overflow {
		return nil, errTooManyInsns()
	}
	return g, nil
}

func errTooManyInsns() error {
	return fmt.Errorf("%w: %w: more than %d instructions (the kernel's limit); simplify the expression or split the capture", ErrFilter, ErrFilterTooLarge, MaxFilterInsns)
}

func (g *program) label() label {
	g.labels = append(g.labels, -1)
	return label(len(g.labels) - 1)
}

func (g *program) place(l label) { g.labels[l] = len(g.code) }

func (g *program) add(i insn) {
	if len(g.code) >= MaxFilterInsns {
		g.overflow = true
		return
	}
	g.code = append(g.code, i)
}

func (g *program) emit(i bpf.Instruction) { g.add(insn{ins: i}) }

func (g *program) term(ld load) int32 {
	id, ok := g.terms[ld]
	if !ok {
		id = int32(len(g.terms))
		g.terms[ld] = id
	}
	return id
}

// node emits code that jumps to t when n matches and to f otherwise. A
// chain of and/or (the parser builds them leaning left) is walked without
// recursion; recursion is as deep as parentheses and nots nest.
func (g *program) node(n *node, t, f label) {
	type level struct {
		n         *node
		t, f, mid label
	}
	var spine []level
	for (n.kind == nodeAnd || n.kind == nodeOr) && !g.overflow {
		mid := g.label()
		spine = append(spine, level{n, t, f, mid})
		if n.kind == nodeAnd {
			t = mid
		} else {
			f = mid
		}
		n = n.l
	}
	g.simple(n, t, f)
	for i := len(spine) - 1; i >= 0 && !g.overflow; i-- {
		s := spine[i]
		g.place(s.mid)
		g.node(s.n.r, s.t, s.f)
	}
}

func (g *program) simple(n *node, t, f label) {
	switch n.kind {
	case nodeNot:
		g.node(n.l, f, t)
	case nodeLeaf:
		for i, ts := range n.tests {
			ok := t
			if i < len(n.tests)-1 {
				ok = g.label()
			}
			g.load(ts.ld)
			term := g.term(ts.ld)
			if ts.bitsClear {
				g.add(insn{jset: true, k: ts.vals[0], term: term, t: f, f: ok})
			} else {
				for j, v := range ts.vals {
					if j < len(ts.vals)-1 {
						g.add(insn{k: v, term: term, t: ok, f: next})
					} else {
						g.add(insn{k: v, term: term, t: ok, f: f})
					}
				}
			}
			if ok != t {
				g.place(ok)
			}
		}
	}
}

func (g *program) load(ld load) {
	if ld.ind {
		g.emit(bpf.LoadMemShift{Off: offIP4})
		g.emit(bpf.LoadIndirect{Off: ld.off, Size: ld.size})
		return
	}
	g.emit(bpf.LoadAbsolute{Off: ld.off, Size: ld.size})
	if ld.mask != 0 {
		g.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ld.mask})
	}
}

// targets returns the positions jump i goes to when true and when false.
func (g *program) targets(i int) (int, int) {
	c := g.code[i]
	at := func(l label) int {
		if l == next {
			return i + 1
		}
		return g.labels[l]
	}
	return at(c.t), at(c.f)
}

// assemble resolves the labels. A conditional jump whose target is more
// than maxSkip instructions away goes through an unconditional jump
// placed right after it; placing those can push other jumps out of reach,
// so layout repeats until it is stable (each round only adds).
func (g *program) assemble() ([]bpf.RawInstruction, error) {
	n := len(g.code)
	far := make([]uint8, n) // bit 0: true target through a jump, bit 1: false target
	pos := make([]int, n+1)
	for {
		p := 0
		for i := range g.code {
			pos[i] = p
			p += 1 + int(far[i]&1) + int(far[i]>>1)
		}
		pos[n] = p
		if p > MaxFilterInsns {
			return nil, errTooManyInsns()
		}
		changed := false
		for i, c := range g.code {
			if c.ins != nil {
				continue
			}
			t, f := g.targets(i)
			if far[i]&1 == 0 && pos[t]-pos[i]-1 > maxSkip {
				far[i] |= 1
				changed = true
			}
			if far[i]&2 == 0 && pos[f]-pos[i]-1 > maxSkip {
				far[i] |= 2
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	prog := make([]bpf.Instruction, 0, pos[n])
	for i, c := range g.code {
		if c.ins != nil {
			prog = append(prog, c.ins)
			continue
		}
		t, f := g.targets(i)
		cond := bpf.JumpEqual
		if c.jset {
			cond = bpf.JumpBitsSet
		}
		j := bpf.JumpIf{Cond: cond, Val: c.k}
		slot := 0 // trampolines follow the jump
		var tramps []int
		if far[i]&1 != 0 {
			j.SkipTrue = uint8(slot)
			tramps = append(tramps, t)
			slot++
		} else {
			j.SkipTrue = uint8(pos[t] - pos[i] - 1)
		}
		if far[i]&2 != 0 {
			j.SkipFalse = uint8(slot)
			tramps = append(tramps, f)
		} else {
			j.SkipFalse = uint8(pos[f] - pos[i] - 1)
		}
		prog = append(prog, j)
		for k, to := range tramps {
			prog = append(prog, bpf.Jump{Skip: uint32(pos[to] - (pos[i] + 1 + k) - 1)})
		}
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFilter, err)
	}
	return raw, nil
}
