package ondemand

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
)

// synthFrame describes a synthetic Ethernet frame for filter tests.
type synthFrame struct {
	ether        uint16
	proto        uint8 // IPv4 protocol or IPv6 next header after the fixed header (and fragment header)
	src, dst     netip.Addr
	sport, dport uint16
	frag6        bool   // IPv6: a fragment header before proto
	fragOff      uint16 // IPv4: fragment offset (8-byte units)
	optWords     int    // IPv4: option words (0..10)
	cut          int    // keep only this many bytes (0: all)
}

func (f synthFrame) bytes() []byte {
	b := make([]byte, 0, 128)
	b = append(b, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1)
	b = binary.BigEndian.AppendUint16(b, f.ether)
	ports := func(b []byte) []byte {
		b = binary.BigEndian.AppendUint16(b, f.sport)
		b = binary.BigEndian.AppendUint16(b, f.dport)
		return append(b, make([]byte, 16)...)
	}
	switch f.ether {
	case etherIP4:
		s, d := f.src.As4(), f.dst.As4()
		b = append(b, 0x45+byte(f.optWords), 0, 0, byte(40+4*f.optWords), 0, 1)
		b = binary.BigEndian.AppendUint16(b, f.fragOff&0x1fff)
		b = append(b, 64, f.proto, 0, 0)
		b = append(b, s[:]...)
		b = append(b, d[:]...)
		for range f.optWords {
			b = append(b, 1, 1, 1, 1)
		}
		b = ports(b)
	case etherIP6:
		s, d := f.src.As16(), f.dst.As16()
		nh := f.proto
		if f.frag6 {
			nh = protoFrag6
		}
		b = append(b, 0x60, 0, 0, 0, 0, 28, nh, 64)
		b = append(b, s[:]...)
		b = append(b, d[:]...)
		if f.frag6 {
			b = append(b, f.proto, 0, 0, 0, 0, 0, 0, 1)
		}
		b = ports(b)
	case etherARP, etherRARP:
		s, d := f.src.As4(), f.dst.As4()
		b = append(b, 0, 1, 8, 0, 6, 4, 0, 1)
		b = append(b, 2, 0, 0, 0, 0, 1)
		b = append(b, s[:]...)
		b = append(b, 0, 0, 0, 0, 0, 0)
		b = append(b, d[:]...)
	default:
		b = append(b, make([]byte, 46)...)
	}
	if f.cut > 0 && f.cut < len(b) {
		b = b[:f.cut]
	}
	return b
}

// Pools that expressions and frames draw from, so that matches happen.
var (
	poolHost4 = []string{"10.0.0.1", "10.0.0.2", "10.244.1.8", "192.168.1.1"}
	poolNet4  = []string{"10.0.0.0/8", "10.244.0.0/16", "10.0.0.0/24", "192.168.0.0/16", "0.0.0.0/0", "10.0.0.1/32", "10.0.0.0/31"}
	poolHost6 = []string{"2001:db8::1", "2001:db8::2", "fe80::1", "::1", "2001:db8:0:1::1"}
	poolNet6  = []string{"2001:db8::/32", "2001:db8::/64", "fe80::/10", "::/0", "2001:db8::1/128", "2001:db8:0:1::/64", "2001:db8::/100"}
	poolPort  = []string{"53", "80", "8080", "443", "0", "65535", "0x50", "0120"}
	poolProto = []string{"ip", "ip6", "arp", "rarp", "tcp", "udp", "sctp", "icmp", "icmp6"}
	poolDir   = []string{"", "src ", "dst ", "src or dst ", "src and dst ", "dst or src ", "dst and src ", "src || dst ", "src && dst "}
)

// randFrame draws a frame from the pools, sometimes with a neighbouring
// address, an odd protocol, a later fragment or a cut.
func randFrame(r *rand.Rand) synthFrame {
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	addr := func(v6 bool) netip.Addr {
		var a netip.Addr
		if v6 {
			a = netip.MustParseAddr(pick(poolHost6))
		} else {
			a = netip.MustParseAddr(pick(poolHost4))
		}
		if r.IntN(4) == 0 {
			a = a.Next()
		}
		return a
	}
	port := func() uint16 {
		if r.IntN(5) == 0 {
			return uint16(r.IntN(65536))
		}
		return []uint16{53, 80, 8080, 443, 0, 65535}[r.IntN(6)]
	}
	f := synthFrame{sport: port(), dport: port()}
	f.ether = []uint16{etherIP4, etherIP4, etherIP6, etherIP6, etherARP, etherRARP, 0x88cc}[r.IntN(7)]
	f.proto = []uint8{protoTCP, protoUDP, protoSCTP, protoICMP, protoICMP6, 2, protoFrag6}[r.IntN(7)]
	v6 := f.ether == etherIP6
	f.src, f.dst = addr(v6), addr(v6)
	if v6 {
		f.frag6 = r.IntN(4) == 0
	} else {
		if r.IntN(6) == 0 {
			f.fragOff = uint16(1 + r.IntN(100))
		}
		if r.IntN(4) == 0 {
			f.optWords = r.IntN(11)
		}
	}
	if r.IntN(10) == 0 {
		f.cut = r.IntN(80)
	}
	return f
}

// randExpr draws an expression of the supported grammar with at most
// depth levels of nesting.
func randExpr(r *rand.Rand, depth int) string {
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	if depth > 0 {
		switch r.IntN(8) {
		case 0, 1:
			return pick([]string{"not ", "!", "! "}) + randExpr(r, depth-1)
		case 2:
			return "(" + randExpr(r, depth-1) + ")"
		case 3, 4, 5:
			ops := []string{" and ", " or ", " && ", " || "}
			s := randExpr(r, depth-1)
			for range 1 + r.IntN(3) {
				s += pick(ops) + randExpr(r, depth-1)
			}
			return s
		}
	}
	switch r.IntN(6) {
	case 0:
		return pick(poolProto)
	case 1:
		h := pick(poolHost4)
		if r.IntN(3) == 0 {
			h = pick(poolHost6)
		}
		return pick(poolDir) + "host " + h
	case 2:
		n := pick(poolNet4)
		if r.IntN(3) == 0 {
			n = pick(poolNet6)
		}
		return pick(poolDir) + "net " + n
	case 3:
		return pick(poolDir) + "port " + pick(poolPort)
	default:
		return pick([]string{"tcp ", "udp ", "sctp "}) + pick([]string{"", "src ", "dst ", "src or dst ", "src and dst "}) + "port " + pick(poolPort)
	}
}
