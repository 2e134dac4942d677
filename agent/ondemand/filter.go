package ondemand

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// acceptLen is what the compiled program returns for a matching frame (the
// capture ring lowers it to its snap length), as libpcap does.
const acceptLen = 0x40000

// maxJump is the farthest a classic BPF conditional jump reaches.
const maxJump = 255

// Filter is a compiled filter expression. The zero value matches every
// frame.
type Filter struct {
	// Expr is the expression as given.
	Expr string
	// Program is the classic BPF program (for Ethernet frames), nil when
	// Expr is empty.
	Program []bpf.RawInstruction
}

// CompileFilter compiles a tcpdump-style expression (see the package
// documentation for the grammar) to a classic BPF program for Ethernet
// frames. An empty expression compiles to the nil program (every frame).
// Errors wrap ErrFilter and name the column of the offending token.
func CompileFilter(expr string) (Filter, error) {
	f := Filter{Expr: expr}
	toks, err := lex(expr)
	if err != nil {
		return f, err
	}
	if len(toks) == 0 {
		return f, nil
	}
	p := &parser{toks: toks, src: expr}
	n, err := p.or()
	if err != nil {
		return f, err
	}
	if !p.done() {
		t := p.peek()
		return f, p.errAt(t, "unexpected %q after a complete expression (missing and/or?)", t.s)
	}
	var g gen
	accept, reject := g.label(), g.label()
	g.node(n, accept, reject)
	g.place(accept)
	g.emit(bpf.RetConstant{Val: acceptLen})
	g.place(reject)
	g.emit(bpf.RetConstant{Val: 0})
	prog, err := g.assemble()
	if err != nil {
		return f, err
	}
	f.Program = prog
	return f, nil
}

// ---- lexer

type token struct {
	s   string
	pos int // byte offset in the expression
}

func lex(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == '!':
			out = append(out, token{s[i : i+1], i})
			i++
		case c == '&' || c == '|':
			if i+1 >= len(s) || s[i+1] != c {
				return nil, fmt.Errorf("%w: column %d: %q: want %q", ErrFilter, i+1, string(c), string([]byte{c, c}))
			}
			out = append(out, token{s[i : i+2], i})
			i += 2
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			out = append(out, token{s[i:j], i})
			i = j
		default:
			return nil, fmt.Errorf("%w: column %d: unexpected character %q", ErrFilter, i+1, string(c))
		}
	}
	return out, nil
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == ':' || c == '/' || c == '_' || c == '-'
}

// ---- parser: expressions to trees of and/or/not over leaves

type node interface{ isNode() }

type (
	andNode struct{ l, r node }
	orNode  struct{ l, r node }
	notNode struct{ x node }
	// leaf is a conjunction of tests run in order.
	leaf struct{ tests []test }
)

func (andNode) isNode() {}
func (orNode) isNode()  {}
func (notNode) isNode() {}
func (leaf) isNode()    {}

// test loads a value (pre) and checks it: equal to one of vals, or, with
// bitsClear, none of the bits of vals[0] set.
type test struct {
	pre       []bpf.Instruction
	vals      []uint32
	bitsClear bool
}

type parser struct {
	toks []token
	i    int
	src  string
}

func (p *parser) done() bool  { return p.i >= len(p.toks) }
func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }
func (p *parser) is(s ...string) bool {
	if p.done() {
		return false
	}
	w := strings.ToLower(p.peek().s)
	for _, x := range s {
		if w == x {
			return true
		}
	}
	return false
}

func (p *parser) errAt(t token, format string, args ...any) error {
	return fmt.Errorf("%w: column %d: %s", ErrFilter, t.pos+1, fmt.Sprintf(format, args...))
}

func (p *parser) errEnd(format string, args ...any) error {
	return fmt.Errorf("%w: column %d (end): %s", ErrFilter, len(p.src)+1, fmt.Sprintf(format, args...))
}

func (p *parser) or() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.is("or", "||") {
		p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = orNode{l, r}
	}
	return l, nil
}

func (p *parser) and() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.is("and", "&&") {
		p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
	return l, nil
}

func (p *parser) unary() (node, error) {
	if p.done() {
		return nil, p.errEnd("expression ends where a primitive (host, net, port, tcp, ...) is expected")
	}
	switch {
	case p.is("not", "!"):
		p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	case p.is("("):
		open := p.next()
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.is(")") {
			return nil, p.errAt(open, "parenthesis not closed")
		}
		p.next()
		return x, nil
	}
	return p.primitive()
}

// Ethernet frame offsets (no VLAN tag).
const (
	offEtherType = 12
	offIP4       = 14
	etherIP4     = 0x0800
	etherIP6     = 0x86dd
	etherARP     = 0x0806
	etherRARP    = 0x8035
	protoICMP    = 1
	protoTCP     = 6
	protoUDP     = 17
	protoSCTP    = 132
	protoICMP6   = 58
	protoFrag6   = 44
)

type dir int

const (
	dirAny dir = iota
	dirSrc
	dirDst
)

func (p *parser) primitive() (node, error) {
	t := p.next()
	w := strings.ToLower(t.s)
	switch w {
	case "ip":
		return etherIs(etherIP4), nil
	case "ip6":
		return etherIs(etherIP6), nil
	case "arp":
		return etherIs(etherARP), nil
	case "icmp":
		return ip4Proto(protoICMP), nil
	case "icmp6":
		return orNode{ip6Proto(protoICMP6), ip6FragProto(protoICMP6)}, nil
	case "tcp", "udp", "sctp":
		proto := map[string]uint32{"tcp": protoTCP, "udp": protoUDP, "sctp": protoSCTP}[w]
		if p.is("port", "src", "dst") { // "tcp [src|dst] port N"
			d := p.dir()
			return p.port(d, []uint32{proto})
		}
		return orNode{orNode{ip4Proto(proto), ip6Proto(proto)}, ip6FragProto(proto)}, nil
	case "src", "dst", "host", "net", "port":
		p.i--
		d := p.dir()
		if p.done() {
			return nil, p.errEnd("want host, net or port after %q", t.s)
		}
		switch {
		case p.is("host"):
			return p.host(d)
		case p.is("net"):
			return p.net(d)
		case p.is("port"):
			return p.port(d, []uint32{protoSCTP, protoTCP, protoUDP})
		}
		n := p.peek()
		return nil, p.errAt(n, "want host, net or port, not %q", n.s)
	case "and", "or", "&&", "||":
		return nil, p.errAt(t, "%q where a primitive (host, net, port, tcp, ...) is expected", t.s)
	case ")":
		return nil, p.errAt(t, "unbalanced %q", t.s)
	}
	return nil, p.errAt(t, "unknown primitive %q (supported: [src|dst] host ADDR, [src|dst] net CIDR, [tcp|udp|sctp] [src|dst] port N, ip, ip6, arp, tcp, udp, sctp, icmp, icmp6; and, or, not, parentheses)", t.s)
}

// dir consumes an optional src or dst.
func (p *parser) dir() dir {
	switch {
	case p.is("src"):
		p.next()
		return dirSrc
	case p.is("dst"):
		p.next()
		return dirDst
	}
	return dirAny
}

// operand consumes the word after a keyword.
func (p *parser) operand(kw token) (token, error) {
	if p.done() {
		return token{}, p.errEnd("%q needs a value", kw.s)
	}
	v := p.next()
	if v.s == "(" || v.s == ")" || v.s == "!" || v.s == "&&" || v.s == "||" {
		return token{}, p.errAt(v, "%q needs a value, not %q", kw.s, v.s)
	}
	return v, nil
}

func eitherDir(d dir, f func(dir) node) node {
	if d != dirAny {
		return f(d)
	}
	return orNode{f(dirSrc), f(dirDst)}
}

func (p *parser) host(d dir) (node, error) {
	kw := p.next()
	v, err := p.operand(kw)
	if err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(v.s)
	if err != nil || a.Zone() != "" {
		return nil, p.errAt(v, "host %q is not an IPv4 or IPv6 address (names are not resolved)", v.s)
	}
	return eitherDir(d, func(d dir) node { return addrMatch(netip.PrefixFrom(a, a.BitLen()), d) }), nil
}

func (p *parser) net(d dir) (node, error) {
	kw := p.next()
	v, err := p.operand(kw)
	if err != nil {
		return nil, err
	}
	pf, err := netip.ParsePrefix(v.s)
	if err != nil {
		return nil, p.errAt(v, "net %q is not a CIDR prefix such as 10.244.0.0/16", v.s)
	}
	if pf.Masked() != pf {
		return nil, p.errAt(v, "net %q has host bits set (did you mean %s?)", v.s, pf.Masked())
	}
	return eitherDir(d, func(d dir) node { return addrMatch(pf, d) }), nil
}

func (p *parser) port(d dir, protos []uint32) (node, error) {
	kw := p.next()
	if strings.ToLower(kw.s) != "port" {
		return nil, p.errAt(kw, "want port, not %q", kw.s)
	}
	v, err := p.operand(kw)
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(v.s, 10, 32)
	if err != nil || n > 65535 {
		return nil, p.errAt(v, "port %q is not a number from 0 to 65535", v.s)
	}
	port := uint32(n)
	return eitherDir(d, func(d dir) node {
		off4, off6 := uint32(offIP4), uint32(54)
		if d == dirDst {
			off4, off6 = offIP4+2, 56
		}
		v4 := leaf{tests: []test{
			{pre: []bpf.Instruction{bpf.LoadAbsolute{Off: offEtherType, Size: 2}}, vals: []uint32{etherIP4}},
			{pre: []bpf.Instruction{bpf.LoadAbsolute{Off: 23, Size: 1}}, vals: protos},
			{pre: []bpf.Instruction{bpf.LoadAbsolute{Off: 20, Size: 2}}, vals: []uint32{0x1fff}, bitsClear: true},
			{pre: []bpf.Instruction{bpf.LoadMemShift{Off: offIP4}, bpf.LoadIndirect{Off: off4, Size: 2}}, vals: []uint32{port}},
		}}
		v6 := leaf{tests: []test{
			{pre: []bpf.Instruction{bpf.LoadAbsolute{Off: offEtherType, Size: 2}}, vals: []uint32{etherIP6}},
			{pre: []bpf.Instruction{bpf.LoadAbsolute{Off: 20, Size: 1}}, vals: protos},
			{pre: []bpf.Instruction{bpf.LoadAbsolute{Off: off6, Size: 2}}, vals: []uint32{port}},
		}}
		return orNode{v6, v4}
	}), nil
}

func etherIs(t uint32) leaf {
	return leaf{tests: []test{{pre: []bpf.Instruction{bpf.LoadAbsolute{Off: offEtherType, Size: 2}}, vals: []uint32{t}}}}
}

func withTest(l leaf, t test) leaf {
	l.tests = append(l.tests, t)
	return l
}

func ip4Proto(p uint32) leaf {
	return withTest(etherIs(etherIP4), test{pre: []bpf.Instruction{bpf.LoadAbsolute{Off: 23, Size: 1}}, vals: []uint32{p}})
}

func ip6Proto(p uint32) leaf {
	return withTest(etherIs(etherIP6), test{pre: []bpf.Instruction{bpf.LoadAbsolute{Off: 20, Size: 1}}, vals: []uint32{p}})
}

// ip6FragProto matches an IPv6 fragment header followed by protocol p.
func ip6FragProto(p uint32) leaf {
	l := withTest(etherIs(etherIP6), test{pre: []bpf.Instruction{bpf.LoadAbsolute{Off: 20, Size: 1}}, vals: []uint32{protoFrag6}})
	return withTest(l, test{pre: []bpf.Instruction{bpf.LoadAbsolute{Off: 54, Size: 1}}, vals: []uint32{p}})
}

// addrMatch matches the source or destination address in prefix pf: for
// IPv4 in IPv4 headers and in ARP and RARP (sender, target), for IPv6 in
// IPv6 headers.
func addrMatch(pf netip.Prefix, d dir) node {
	a := pf.Addr()
	if a.Is4() {
		ipOff, arpOff := uint32(26), uint32(28)
		if d == dirDst {
			ipOff, arpOff = 30, 38
		}
		word := func(l leaf, off uint32) leaf {
			if pf.Bits() == 0 { // no bits to compare: like libpcap, load nothing
				return l
			}
			b := a.As4()
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			mask := ^uint32(0) << (32 - pf.Bits())
			pre := []bpf.Instruction{bpf.LoadAbsolute{Off: off, Size: 4}}
			if mask != ^uint32(0) {
				pre = append(pre, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
			}
			return withTest(l, test{pre: pre, vals: []uint32{v & mask}})
		}
		return orNode{
			word(etherIs(etherIP4), ipOff),
			orNode{word(etherIs(etherARP), arpOff), word(etherIs(etherRARP), arpOff)},
		}
	}
	off := uint32(22)
	if d == dirDst {
		off = 38
	}
	l := etherIs(etherIP6)
	b := a.As16()
	for i := range 4 {
		bits := min(max(pf.Bits()-32*i, 0), 32)
		if bits == 0 {
			break
		}
		v := uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
		mask := ^uint32(0) << (32 - bits)
		pre := []bpf.Instruction{bpf.LoadAbsolute{Off: off + uint32(4*i), Size: 4}}
		if bits < 32 {
			pre = append(pre, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
		}
		l = withTest(l, test{pre: pre, vals: []uint32{v & mask}})
	}
	return l
}

// ---- code generation: forward jumps to labels, resolved at the end

type label int

// next is the target "the instruction after this one".
const next label = -1

type insn struct {
	ins  bpf.Instruction // a non-jump, or nil for a jump
	cond bpf.JumpTest    // JumpEqual or JumpBitsSet
	k    uint32
	t, f label
}

type gen struct {
	code   []insn
	labels []int // position of each label, -1 until placed
}

func (g *gen) label() label {
	g.labels = append(g.labels, -1)
	return label(len(g.labels) - 1)
}

func (g *gen) place(l label)          { g.labels[l] = len(g.code) }
func (g *gen) emit(i bpf.Instruction) { g.code = append(g.code, insn{ins: i}) }
func (g *gen) jump(c bpf.JumpTest, k uint32, t, f label) {
	g.code = append(g.code, insn{cond: c, k: k, t: t, f: f})
}

// node emits code that jumps to t when n matches and to f otherwise.
func (g *gen) node(n node, t, f label) {
	switch n := n.(type) {
	case andNode:
		mid := g.label()
		g.node(n.l, mid, f)
		g.place(mid)
		g.node(n.r, t, f)
	case orNode:
		mid := g.label()
		g.node(n.l, t, mid)
		g.place(mid)
		g.node(n.r, t, f)
	case notNode:
		g.node(n.x, f, t)
	case leaf:
		for i, ts := range n.tests {
			ok := t
			if i < len(n.tests)-1 {
				ok = g.label()
			}
			for _, in := range ts.pre {
				g.emit(in)
			}
			if ts.bitsClear {
				g.jump(bpf.JumpBitsSet, ts.vals[0], f, ok)
			} else {
				for j, v := range ts.vals {
					if j < len(ts.vals)-1 {
						g.jump(bpf.JumpEqual, v, ok, next)
					} else {
						g.jump(bpf.JumpEqual, v, ok, f)
					}
				}
			}
			if ok != t {
				g.place(ok)
			}
		}
	}
}

func (g *gen) assemble() ([]bpf.RawInstruction, error) {
	if len(g.code) > bpfMaxInsns {
		return nil, fmt.Errorf("%w: %d instructions, more than the kernel's %d; simplify the expression", ErrFilter, len(g.code), bpfMaxInsns)
	}
	prog := make([]bpf.Instruction, len(g.code))
	for i, c := range g.code {
		if c.ins != nil {
			prog[i] = c.ins
			continue
		}
		skip := func(l label) (uint8, error) {
			if l == next {
				return 0, nil
			}
			d := g.labels[l] - i - 1
			if d < 0 || d > maxJump {
				return 0, fmt.Errorf("%w: expression too long for classic BPF (a jump over %d instructions); simplify it or split the capture", ErrFilter, d)
			}
			return uint8(d), nil
		}
		st, err := skip(c.t)
		if err != nil {
			return nil, err
		}
		sf, err := skip(c.f)
		if err != nil {
			return nil, err
		}
		prog[i] = bpf.JumpIf{Cond: c.cond, Val: c.k, SkipTrue: st, SkipFalse: sf}
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFilter, err)
	}
	return raw, nil
}

// bpfMaxInsns is the kernel's limit on a classic BPF program's length.
const bpfMaxInsns = 4096
