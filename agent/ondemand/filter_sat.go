package ondemand

import (
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/net/bpf"
)

// satBudget bounds the work of the never-matches check of one expression,
// in jumps followed.
const satBudget = 1 << 18

// A fact is what a path through the program knows of a load's value: the
// outcome of one comparison.
type fact struct {
	term  int32
	jset  bool
	truth bool
	k     uint32
}

// walker looks for a path from the start of a program to its accepting
// return. A path that compares a load with a constant knows the outcome of
// the same comparison later (and, when the value was equal, the outcome of
// comparing it with any other constant), and only follows the branch it
// knows. Loads that differ (offset, size, mask) are taken as independent
// values; that is also what libpcap's optimizer knows when it reports that
// an expression rejects all packets.
type walker struct {
	g      *program
	facts  []fact
	rel    []uint64 // per position, a bitmap of the terms tested from there on
	words  int
	seen   map[string]struct{}
	budget *int
	out    bool // budget exhausted
	scr    []fact
	key    []byte
}

// satisfiable reports whether some path reaches the accepting return; ok
// is false when the budget ran out first.
func (g *program) satisfiable(budget *int) (sat, ok bool) {
	w := &walker{g: g, budget: budget, seen: map[string]struct{}{}}
	w.words = (len(g.terms) + 63) / 64
	n := len(g.code)
	w.rel = make([]uint64, (n+1)*w.words)
	for i := n - 1; i >= 0; i-- {
		r := w.rel[i*w.words : (i+1)*w.words]
		c := g.code[i]
		switch {
		case c.ins == nil:
			t, f := g.targets(i)
			copy(r, w.rel[t*w.words:(t+1)*w.words])
			for j, x := range w.rel[f*w.words : (f+1)*w.words] {
				r[j] |= x
			}
			r[c.term/64] |= 1 << (c.term % 64)
		case isRet(c):
		default:
			copy(r, w.rel[(i+1)*w.words:(i+2)*w.words])
		}
	}
	sat = w.walk(0)
	return sat, !w.out
}

func isRet(c insn) bool {
	_, ok := c.ins.(bpf.RetConstant)
	return ok
}

func (w *walker) known(term int32, jset bool, k uint32) (known, truth bool) {
	for i := len(w.facts) - 1; i >= 0; i-- {
		f := w.facts[i]
		if f.term != term || f.jset != jset {
			continue
		}
		if f.k == k {
			return true, f.truth
		}
		if !jset && f.truth {
			return true, false
		}
	}
	return false, false
}

func (w *walker) walk(pc int) bool {
	for {
		c := w.g.code[pc]
		if c.ins != nil {
			if r, ok := c.ins.(bpf.RetConstant); ok {
				return r.Val != 0
			}
			pc++
			continue
		}
		if *w.budget--; *w.budget < 0 {
			w.out = true
			return true
		}
		t, f := w.g.targets(pc)
		if kn, truth := w.known(c.term, c.jset, c.k); kn {
			if truth {
				pc = t
			} else {
				pc = f
			}
			continue
		}
		if !w.first(pc) {
			return false
		}
		for _, truth := range []bool{true, false} {
			w.facts = append(w.facts, fact{term: c.term, jset: c.jset, truth: truth, k: c.k})
			to := f
			if truth {
				to = t
			}
			found := w.walk(to)
			w.facts = w.facts[:len(w.facts)-1]
			if found {
				return true
			}
		}
		return false
	}
}

// first records that the walk reached pc knowing what it knows now, and
// reports whether that is new. Only facts about loads tested from pc on
// are kept, in a canonical order.
func (w *walker) first(pc int) bool {
	rel := w.rel[pc*w.words : (pc+1)*w.words]
	w.scr = w.scr[:0]
	for _, f := range w.facts {
		if rel[f.term/64]&(1<<(f.term%64)) != 0 {
			w.scr = append(w.scr, f)
		}
	}
	slices.SortFunc(w.scr, func(a, b fact) int {
		switch {
		case a.term != b.term:
			return int(a.term - b.term)
		case a.k != b.k:
			if a.k < b.k {
				return -1
			}
			return 1
		case a.jset != b.jset:
			if a.jset {
				return 1
			}
			return -1
		}
		return 0
	})
	w.key = binary.LittleEndian.AppendUint32(w.key[:0], uint32(pc))
	for _, f := range w.scr {
		x := uint32(0)
		if f.jset {
			x |= 1
		}
		if f.truth {
			x |= 2
		}
		w.key = binary.LittleEndian.AppendUint32(w.key, uint32(f.term))
		w.key = binary.LittleEndian.AppendUint32(w.key, f.k)
		w.key = append(w.key, byte(x))
	}
	if _, ok := w.seen[string(w.key)]; ok {
		return false
	}
	w.seen[string(w.key)] = struct{}{}
	return true
}

// neverMatches is the error for an expression that rejects every packet.
// It names the term that makes it so: the last term of the outermost
// and/or chain that the chain cannot match with, looked for inside that
// term when the term cannot match even on its own.
func neverMatches(src string, root *node, budget *int) error {
	n := culprit(root, budget)
	what := "can never match together with what precedes it"
	if n == root || n.kind == nodeNot {
		what = "can never match"
	}
	return fmt.Errorf("%w: %w: column %d: %s %s", ErrFilter, ErrFilterNeverMatches, n.pos+1, quote(src[n.pos:n.end]), what)
}

func culprit(n *node, budget *int) *node {
	satisfiable := func(n *node) bool {
		g, err := generate(n)
		if err != nil {
			return true
		}
		sat, ok := g.satisfiable(budget)
		return sat || !ok
	}
	for n.kind == nodeAnd || n.kind == nodeOr {
		var spine []*node // spine[i+1] is spine[i].l
		for m := n; m.kind == nodeAnd || m.kind == nodeOr; m = m.l {
			spine = append(spine, m)
		}
		next := spine[len(spine)-1].l // the first term, when every prefix fails
		for _, s := range spine {
			if *budget <= 0 || satisfiable(s.l) {
				next = s.r
				break
			}
		}
		if *budget <= 0 || satisfiable(next) {
			return next
		}
		n = next
	}
	return n
}
