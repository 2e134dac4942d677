package ondemand

import (
	"fmt"
	"net/netip"
	"strconv"
)

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

// ---- syntax tree

type nodeKind uint8

const (
	nodeAnd nodeKind = iota
	nodeOr
	nodeNot
	nodeLeaf
)

// node is a term of the expression. pos and end delimit its source text
// (parentheses around it included), for error messages.
type node struct {
	kind     nodeKind
	l, r     *node // and, or: both; not: l
	tests    []test
	pos, end int
}

// test loads a value and checks it: equal to one of vals, or, with
// bitsClear, none of the bits of vals[0] set.
type test struct {
	ld        load
	vals      []uint32
	bitsClear bool
}

// load is what a test puts in the accumulator: a word, half word or byte
// of the frame at a fixed offset (or, with ind, at an offset from the end
// of the IPv4 header's options), optionally masked. Tests with equal loads
// see the same value.
type load struct {
	ind  bool
	off  uint32
	size int
	mask uint32 // 0: none
}

func leaf(tests ...test) *node { return &node{kind: nodeLeaf, tests: tests} }
func and(l, r *node) *node     { return &node{kind: nodeAnd, l: l, r: r} }
func or(l, r *node) *node      { return &node{kind: nodeOr, l: l, r: r} }

// ---- parser
//
//	expr := term { ("and" | "&&" | "or" | "||") term }   left to right, equal precedence
//	term := ("not" | "!") term | "(" expr ")" | primitive

type parser struct {
	toks []token
	i    int
	src  string
}

func (p *parser) done() bool  { return p.i >= len(p.toks) }
func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

// is reports whether the next token is one of s (keywords are case
// sensitive, as in tcpdump).
func (p *parser) is(s ...string) bool { return p.isAt(0, s...) }

func (p *parser) isAt(k int, s ...string) bool {
	if p.i+k >= len(p.toks) {
		return false
	}
	w := p.toks[p.i+k].s
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

// end is the offset just past the last token consumed.
func (p *parser) end() int {
	t := p.toks[p.i-1]
	return t.pos + len(t.s)
}

func (p *parser) expr() (*node, error) {
	l, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		var k nodeKind
		switch {
		case p.is("and", "&&"):
			k = nodeAnd
		case p.is("or", "||"):
			k = nodeOr
		default:
			return l, nil
		}
		p.next()
		r, err := p.term()
		if err != nil {
			return nil, err
		}
		l = &node{kind: k, l: l, r: r, pos: l.pos, end: r.end}
	}
}

func (p *parser) term() (*node, error) {
	if p.done() {
		return nil, p.errEnd("expression ends where a primitive (host, net, port, tcp, ...) is expected")
	}
	switch {
	case p.is("not", "!"):
		op := p.next()
		x, err := p.term()
		if err != nil {
			return nil, err
		}
		return &node{kind: nodeNot, l: x, pos: op.pos, end: x.end}, nil
	case p.is("("):
		open := p.next()
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if !p.is(")") {
			return nil, p.errAt(open, "parenthesis not closed")
		}
		p.next()
		x.pos, x.end = open.pos, p.end()
		return x, nil
	}
	start := p.peek().pos
	n, err := p.primitive()
	if err != nil {
		return nil, err
	}
	n.pos, n.end = start, p.end()
	return n, nil
}

// Ethernet frame offsets (no VLAN tag) and protocol numbers.
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

// dir is a direction qualifier.
type dir int

const (
	dirAny  dir = iota // src or dst (the default)
	dirSrc             // src
	dirDst             // dst
	dirBoth            // src and dst
)

const primitives = "[src|dst] host ADDR, [src|dst] net CIDR, [tcp|udp|sctp] [src|dst] port N, ip, ip6, arp, rarp, tcp, udp, sctp, icmp, icmp6"

func (p *parser) primitive() (*node, error) {
	t := p.next()
	switch t.s {
	case "ip":
		return etherIs(etherIP4), nil
	case "ip6":
		return etherIs(etherIP6), nil
	case "arp":
		return etherIs(etherARP), nil
	case "rarp":
		return etherIs(etherRARP), nil
	case "icmp":
		return ip4Proto(protoICMP), nil
	case "icmp6":
		return or(ip6Proto(protoICMP6), ip6FragProto(protoICMP6)), nil
	case "tcp", "udp", "sctp":
		proto := map[string]uint32{"tcp": protoTCP, "udp": protoUDP, "sctp": protoSCTP}[t.s]
		if p.is("port", "src", "dst") { // "tcp [src|dst] port N"
			d := p.dir()
			if !p.is("port") {
				return nil, p.wantAfter(p.toks[p.i-1], "port")
			}
			return p.port(d, []uint32{proto})
		}
		if p.is("host", "net") {
			return nil, p.errAt(p.peek(), "%s applied to %s (write %s and %s ...)", quote(t.s), p.peek().s, t.s, p.peek().s)
		}
		return or(or(ip4Proto(proto), ip6Proto(proto)), ip6FragProto(proto)), nil
	case "src", "dst", "host", "net", "port":
		p.i--
		d := p.dir()
		switch {
		case p.is("host"):
			return p.host(d)
		case p.is("net"):
			return p.net(d)
		case p.is("port"):
			return p.port(d, []uint32{protoSCTP, protoTCP, protoUDP})
		}
		return nil, p.wantAfter(p.toks[p.i-1], "host, net or port")
	case "and", "or", "&&", "||":
		return nil, p.errAt(t, "%s where a primitive (host, net, port, tcp, ...) is expected", quote(t.s))
	case ")":
		return nil, p.errAt(t, "unbalanced %s", quote(t.s))
	}
	return nil, p.errAt(t, "unknown primitive %s (supported: %s; and, or, not, parentheses)", quote(t.s), primitives)
}

// wantAfter is the error for a missing keyword after token t.
func (p *parser) wantAfter(t token, want string) error {
	if p.done() {
		return p.errEnd("want %s after %s", want, quote(t.s))
	}
	n := p.peek()
	return p.errAt(n, "want %s, not %s", want, quote(n.s))
}

// dir consumes an optional direction: src, dst, "src or dst", "src and
// dst" (either order, with "||" and "&&" as well).
func (p *parser) dir() dir {
	var d dir
	switch {
	case p.is("src"):
		d = dirSrc
	case p.is("dst"):
		d = dirDst
	default:
		return dirAny
	}
	p.next()
	other := "dst"
	if d == dirDst {
		other = "src"
	}
	switch {
	case p.is("or", "||") && p.isAt(1, other):
		d = dirAny
	case p.is("and", "&&") && p.isAt(1, other):
		d = dirBoth
	default:
		return d
	}
	p.i += 2
	return d
}

// operand consumes the word after a keyword.
func (p *parser) operand(kw token) (token, error) {
	if p.done() {
		return token{}, p.errEnd("%s needs a value", quote(kw.s))
	}
	v := p.next()
	if !isWordByte(v.s[0]) {
		return token{}, p.errAt(v, "%s needs a value, not %s", quote(kw.s), quote(v.s))
	}
	return v, nil
}

func eitherDir(d dir, f func(dir) *node) *node {
	switch d {
	case dirAny:
		return or(f(dirSrc), f(dirDst))
	case dirBoth:
		return and(f(dirSrc), f(dirDst))
	}
	return f(d)
}

func (p *parser) host(d dir) (*node, error) {
	kw := p.next()
	v, err := p.operand(kw)
	if err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(v.s)
	if err != nil || a.Zone() != "" {
		return nil, p.errAt(v, "host %s is not an IPv4 or IPv6 address (names are not resolved)", quote(v.s))
	}
	return addrMatch(netip.PrefixFrom(a, a.BitLen()), d), nil
}

func (p *parser) net(d dir) (*node, error) {
	kw := p.next()
	v, err := p.operand(kw)
	if err != nil {
		return nil, err
	}
	pf, err := netip.ParsePrefix(v.s)
	if err != nil {
		return nil, p.errAt(v, "net %s is not a CIDR prefix such as 10.244.0.0/16", quote(v.s))
	}
	if pf.Masked() != pf {
		return nil, p.errAt(v, "net %s has host bits set (did you mean %s?)", quote(v.s), pf.Masked())
	}
	return addrMatch(pf, d), nil
}

// parseNumber reads an unsigned number as tcpdump does: 0x or 0X for
// hexadecimal, a leading 0 for octal, decimal otherwise.
func parseNumber(s string) (uint64, error) {
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		return strconv.ParseUint(s[2:], 16, 32)
	case len(s) > 1 && s[0] == '0':
		return strconv.ParseUint(s[1:], 8, 32)
	}
	return strconv.ParseUint(s, 10, 32)
}

func (p *parser) port(d dir, protos []uint32) (*node, error) {
	kw := p.next()
	v, err := p.operand(kw)
	if err != nil {
		return nil, err
	}
	n, err := parseNumber(v.s)
	if err != nil || n > 65535 {
		return nil, p.errAt(v, "port %s is not a number from 0 to 65535", quote(v.s))
	}
	port := uint32(n)
	v4 := leaf(
		test{ld: load{off: offEtherType, size: 2}, vals: []uint32{etherIP4}},
		test{ld: load{off: 23, size: 1}, vals: protos},
		test{ld: load{off: 20, size: 2}, vals: []uint32{0x1fff}, bitsClear: true},
	)
	v6 := leaf(
		test{ld: load{off: offEtherType, size: 2}, vals: []uint32{etherIP6}},
		test{ld: load{off: 20, size: 1}, vals: protos},
	)
	return or(
		and(v6, eitherDir(d, func(d dir) *node {
			off := uint32(54)
			if d == dirDst {
				off = 56
			}
			return leaf(test{ld: load{off: off, size: 2}, vals: []uint32{port}})
		})),
		and(v4, eitherDir(d, func(d dir) *node {
			off := uint32(offIP4)
			if d == dirDst {
				off += 2
			}
			return leaf(test{ld: load{ind: true, off: off, size: 2}, vals: []uint32{port}})
		})),
	), nil
}

func etherIs(t uint32) *node {
	return leaf(test{ld: load{off: offEtherType, size: 2}, vals: []uint32{t}})
}

func withTest(l *node, t test) *node {
	l.tests = append(l.tests, t)
	return l
}

func ip4Proto(p uint32) *node {
	return withTest(etherIs(etherIP4), test{ld: load{off: 23, size: 1}, vals: []uint32{p}})
}

func ip6Proto(p uint32) *node {
	return withTest(etherIs(etherIP6), test{ld: load{off: 20, size: 1}, vals: []uint32{p}})
}

// ip6FragProto matches an IPv6 fragment header followed by protocol p.
func ip6FragProto(p uint32) *node {
	l := withTest(etherIs(etherIP6), test{ld: load{off: 20, size: 1}, vals: []uint32{protoFrag6}})
	return withTest(l, test{ld: load{off: 54, size: 1}, vals: []uint32{p}})
}

// addrMatch matches the source or destination address (as d says) in
// prefix pf: for IPv4 in IPv4 headers and in ARP and RARP (sender,
// target), for IPv6 in IPv6 headers. The link type is tested once, then
// the addresses.
func addrMatch(pf netip.Prefix, d dir) *node {
	a := pf.Addr()
	if a.Is4() {
		arp := leaf(test{ld: load{off: offEtherType, size: 2}, vals: []uint32{etherARP, etherRARP}})
		if pf.Bits() == 0 { // no bits to compare: load nothing
			return or(etherIs(etherIP4), arp)
		}
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		mask := ^uint32(0) << (32 - pf.Bits())
		word := func(off uint32) *node {
			ld := load{off: off, size: 4}
			if mask != ^uint32(0) {
				ld.mask = mask
			}
			return leaf(test{ld: ld, vals: []uint32{v & mask}})
		}
		return or(
			and(etherIs(etherIP4), eitherDir(d, func(d dir) *node {
				if d == dirDst {
					return word(30)
				}
				return word(26)
			})),
			and(arp, eitherDir(d, func(d dir) *node {
				if d == dirDst {
					return word(38)
				}
				return word(28)
			})),
		)
	}
	if pf.Bits() == 0 {
		return etherIs(etherIP6)
	}
	b := a.As16()
	words := func(off uint32) *node {
		l := leaf()
		for i := range 4 {
			bits := min(max(pf.Bits()-32*i, 0), 32)
			if bits == 0 {
				break
			}
			v := uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
			mask := ^uint32(0) << (32 - bits)
			ld := load{off: off + uint32(4*i), size: 4}
			if bits < 32 {
				ld.mask = mask
			}
			l = withTest(l, test{ld: ld, vals: []uint32{v & mask}})
		}
		return l
	}
	return and(etherIs(etherIP6), eitherDir(d, func(d dir) *node {
		if d == dirDst {
			return words(38)
		}
		return words(22)
	}))
}
