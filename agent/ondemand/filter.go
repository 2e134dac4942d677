package ondemand

import (
	"fmt"
	"strconv"

	"golang.org/x/net/bpf"
)

// Limits on a filter expression. CheckFilter enforces the first two before
// any other work; CompileFilter enforces all three.
const (
	// MaxFilterLen is the longest accepted expression, in bytes.
	MaxFilterLen = 8192
	// MaxFilterDepth is the deepest accepted nesting: each open
	// parenthesis and each not (or !) that applies to a term counts one
	// level, so "!(!(tcp))" is 4 levels deep.
	MaxFilterDepth = 64
	// MaxFilterInsns is the longest program CompileFilter produces: the
	// kernel's limit on a classic BPF program (BPF_MAXINSNS).
	MaxFilterInsns = 4096
)

// acceptLen is what the compiled program returns for a matching frame (the
// capture ring lowers it to its snap length), as libpcap does.
const acceptLen = 0x40000

// Filter is a compiled filter expression. The zero value matches every
// frame.
type Filter struct {
	// Expr is the expression as given.
	Expr string
	// Program is the classic BPF program (for Ethernet frames), nil when
	// Expr is empty.
	Program []bpf.RawInstruction
}

// CheckFilter reports whether expr is within MaxFilterLen and
// MaxFilterDepth, in one pass over it that allocates nothing (except for
// the error). Callers that admit requests by concurrency should call it
// first: it is the cheap part of CompileFilter, which calls it too. The
// error wraps ErrFilterTooLarge and ErrFilter and does not quote expr.
func CheckFilter(expr string) error {
	if len(expr) > MaxFilterLen {
		return fmt.Errorf("%w: %w: %d bytes, more than %d", ErrFilter, ErrFilterTooLarge, len(expr), MaxFilterLen)
	}
	// Nesting is counted as the parser will recurse: base is the depth of
	// the enclosing parentheses (with the nots applied to them), pending
	// the nots applied to the term that comes next.
	var stack [MaxFilterDepth]int
	sp, base, pending := 0, 0, 0
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '(':
			if base+pending+1 > MaxFilterDepth {
				return errTooDeep(i)
			}
			stack[sp] = base
			sp++
			base, pending = base+pending+1, 0
			i++
		case c == ')':
			if sp > 0 {
				sp--
				base = stack[sp]
			}
			pending = 0
			i++
		case c == '!':
			if pending++; base+pending > MaxFilterDepth {
				return errTooDeep(i)
			}
			i++
		case isWordByte(c):
			j := i
			for j < len(expr) && isWordByte(expr[j]) {
				j++
			}
			if expr[i:j] == "not" {
				if pending++; base+pending > MaxFilterDepth {
					return errTooDeep(i)
				}
			} else {
				pending = 0
			}
			i = j
		default:
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				pending = 0
			}
			i++
		}
	}
	return nil
}

func errTooDeep(i int) error {
	return fmt.Errorf("%w: %w: column %d: nested deeper than %d (parentheses and nots)", ErrFilter, ErrFilterTooLarge, i+1, MaxFilterDepth)
}

// CompileFilter compiles a tcpdump-style expression (see the package
// documentation for the grammar) to a classic BPF program for Ethernet
// frames. An empty expression compiles to the nil program (every frame).
//
// It first calls CheckFilter. Errors wrap ErrFilter, name the column of
// the offending token or term, and quote at most a short prefix of it. An
// expression that can never match is refused with ErrFilterNeverMatches
// (naming the term that contradicts what precedes it), one that needs more
// than MaxFilterInsns instructions with ErrFilterTooLarge.
//
// Time and memory are linear in the length of expr, except for the check
// for never-matching expressions, which has a fixed budget of 2^18 steps
// (about 20 ms of one core at worst) and lets the expression through when
// the budget runs out.
func CompileFilter(expr string) (Filter, error) {
	f := Filter{Expr: expr}
	if err := CheckFilter(expr); err != nil {
		return f, err
	}
	toks, err := lex(expr)
	if err != nil {
		return f, err
	}
	if len(toks) == 0 {
		return f, nil
	}
	p := &parser{toks: toks, src: expr}
	n, err := p.expr()
	if err != nil {
		return f, err
	}
	if !p.done() {
		t := p.peek()
		return f, p.errAt(t, "unexpected %s after a complete expression (missing and/or?)", quote(t.s))
	}
	code, err := generate(n)
	if err != nil {
		return f, err
	}
	budget := satBudget
	if sat, ok := code.satisfiable(&budget); ok && !sat {
		return f, neverMatches(expr, n, &budget)
	}
	f.Program, err = code.assemble()
	if err != nil {
		return f, err
	}
	return f, nil
}

// quoteMax is the longest piece of an expression an error quotes.
const quoteMax = 32

// quote quotes s for an error message, cut to quoteMax bytes.
func quote(s string) string {
	if len(s) > quoteMax {
		return strconv.Quote(s[:quoteMax]) + "..."
	}
	return strconv.Quote(s)
}

// CompileBPF compiles expr and returns its classic BPF program, nil for the
// empty expression: the same language for the agent's always-on capture
// (--capture-filter) as for on-demand captures.
func CompileBPF(expr string) ([]bpf.RawInstruction, error) {
	f, err := CompileFilter(expr)
	return f.Program, err
}
