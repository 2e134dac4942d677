package conntrack

import (
	"encoding/binary"
	"net/netip"

	"github.com/layerscope/layerscope/agent/flow"
)

// Netlink and ctnetlink constants (linux/netlink.h, linux/netfilter/nfnetlink.h,
// linux/netfilter/nfnetlink_conntrack.h).
const (
	nlmsgHdrLen = 16
	nfgenHdrLen = 4

	nlmsgError = 2
	nlmsgDone  = 3

	nlmFMulti  = 0x2
	nlmFExcl   = 0x200
	nlmFCreate = 0x400

	subsysCTNetlink = 1

	ctMsgNew         = 0
	ctMsgGet         = 1
	ctMsgDelete      = 2
	ctMsgGetStatsCPU = 4

	// Multicast groups NFNLGRP_CONNTRACK_NEW, _UPDATE and _DESTROY as a
	// bind(2) bitmask (group g is bit g-1).
	groupsNewUpdateDestroy = 1<<0 | 1<<1 | 1<<2

	attrTypeMask = 0x3fff // ^(NLA_F_NESTED | NLA_F_NET_BYTEORDER)

	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaStatus     = 3
	ctaProtoinfo  = 4
	ctaID         = 12
	ctaZone       = 18

	ctaTupleIP    = 1
	ctaTupleProto = 2

	ctaIPv4Src = 1
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum      = 1
	ctaProtoSrcPort  = 2
	ctaProtoDstPort  = 3
	ctaProtoICMPID   = 4
	ctaProtoICMPType = 5
	ctaProtoICMPCode = 6
	ctaProtoICMPv6ID = 7
	ctaProtoICMPv6Ty = 8
	ctaProtoICMPv6Co = 9

	ctaProtoinfoTCP      = 1
	ctaProtoinfoTCPState = 1
)

// Status bits of a conntrack entry (enum ip_conntrack_status).
const (
	StatusExpected  uint32 = 1 << 0
	StatusSeenReply uint32 = 1 << 1
	StatusAssured   uint32 = 1 << 2
	StatusConfirmed uint32 = 1 << 3
	StatusSrcNAT    uint32 = 1 << 4
	StatusDstNAT    uint32 = 1 << 5
	StatusDying     uint32 = 1 << 9
)

// msgKind is what a ctnetlink flow message reports.
type msgKind uint8

const (
	kindDump msgKind = iota
	kindNew
	kindUpdate
	kindDestroy
)

// tuple is one direction of a conntrack entry in a pointer-free form, so
// that a table of hundreds of thousands of them costs the garbage collector
// nothing to scan. IPv4 addresses sit in the first four bytes of src and dst.
// For ICMP and ICMPv6, sport is the echo identifier and dport is
// type<<8 | code.
type tuple struct {
	src, dst     [16]byte
	sport, dport uint16
	proto        uint8
	v6           bool
}

func (t tuple) reverse() tuple {
	return tuple{src: t.dst, dst: t.src, sport: t.dport, dport: t.sport, proto: t.proto, v6: t.v6}
}

func (t tuple) addr(b *[16]byte) netip.Addr {
	if t.v6 {
		return netip.AddrFrom16(*b)
	}
	return netip.AddrFrom4([4]byte(b[:4]))
}

// Tuple converts the tuple to its exported form.
func (t tuple) Tuple() Tuple {
	return Tuple{Src: t.addr(&t.src), Dst: t.addr(&t.dst), SrcPort: t.sport, DstPort: t.dport, Proto: t.proto}
}

// tupleOf converts a flow key. An IPv4-mapped IPv6 address is taken as
// IPv4, as the kernel tracks such packets in the IPv4 table.
func tupleOf(src, dst netip.Addr, sport, dport uint16, proto uint8) tuple {
	t := tuple{sport: sport, dport: dport, proto: proto}
	src, dst = src.Unmap(), dst.Unmap()
	if src.Is4() && dst.Is4() {
		a, b := src.As4(), dst.As4()
		copy(t.src[:4], a[:])
		copy(t.dst[:4], b[:])
		return t
	}
	t.v6 = true
	t.src, t.dst = src.As16(), dst.As16()
	return t
}

func tupleOfKey(k flow.Key) tuple { return tupleOf(k.Src, k.Dst, k.SrcPort, k.DstPort, k.Proto) }

// ctMsg is one decoded ctnetlink flow message. Decoding fills it in place
// and allocates nothing.
type ctMsg struct {
	kind        msgKind
	orig, reply tuple
	zone        uint16
	id          uint32
	status      uint32
	tcpState    uint8
	hasTCPState bool
	hasOrig     bool
	hasReply    bool
}

// nextAttr splits the first netlink attribute off b.
func nextAttr(b []byte) (typ uint16, val, rest []byte, err error) {
	if len(b) < 4 {
		return 0, nil, nil, errShortAttr
	}
	l := int(binary.NativeEndian.Uint16(b[0:2]))
	if l < 4 || l > len(b) {
		return 0, nil, nil, errBadAttrLen
	}
	typ = binary.NativeEndian.Uint16(b[2:4]) & attrTypeMask
	adv := (l + 3) &^ 3
	if adv > len(b) {
		adv = len(b)
	}
	return typ, b[4:l], b[adv:], nil
}

// parseFlow decodes the payload of a ctnetlink flow message (nfgenmsg and
// attributes, without the netlink header) into m.
func parseFlow(b []byte, kind msgKind, m *ctMsg) error {
	*m = ctMsg{kind: kind}
	if len(b) < nfgenHdrLen {
		return errShortMsg
	}
	b = b[nfgenHdrLen:]
	for len(b) > 0 {
		typ, val, rest, err := nextAttr(b)
		if err != nil {
			return err
		}
		b = rest
		switch typ {
		case ctaTupleOrig:
			if err := parseTuple(val, &m.orig); err != nil {
				return err
			}
			m.hasOrig = true
		case ctaTupleReply:
			if err := parseTuple(val, &m.reply); err != nil {
				return err
			}
			m.hasReply = true
		case ctaStatus:
			if len(val) < 4 {
				return errBadAttrLen
			}
			m.status = binary.BigEndian.Uint32(val)
		case ctaID:
			if len(val) < 4 {
				return errBadAttrLen
			}
			m.id = binary.BigEndian.Uint32(val)
		case ctaZone:
			if len(val) < 2 {
				return errBadAttrLen
			}
			m.zone = binary.BigEndian.Uint16(val)
		case ctaProtoinfo:
			if err := parseProtoinfo(val, m); err != nil {
				return err
			}
		}
	}
	if !m.hasOrig {
		return errNoTuple
	}
	if !m.hasReply {
		// Only a destroy event may omit it; the kernel always sends both.
		m.reply = m.orig.reverse()
	}
	if m.reply.v6 != m.orig.v6 {
		return errFamilies
	}
	return nil
}

func parseProtoinfo(b []byte, m *ctMsg) error {
	for len(b) > 0 {
		typ, val, rest, err := nextAttr(b)
		if err != nil {
			return err
		}
		b = rest
		if typ != ctaProtoinfoTCP {
			continue
		}
		for len(val) > 0 {
			t2, v2, r2, err := nextAttr(val)
			if err != nil {
				return err
			}
			val = r2
			if t2 == ctaProtoinfoTCPState && len(v2) >= 1 {
				m.tcpState, m.hasTCPState = v2[0], true
			}
		}
	}
	return nil
}

func parseTuple(b []byte, t *tuple) error {
	var icmpType, icmpCode uint8
	icmp := false
	for len(b) > 0 {
		typ, val, rest, err := nextAttr(b)
		if err != nil {
			return err
		}
		b = rest
		switch typ {
		case ctaTupleIP:
			for len(val) > 0 {
				t2, v2, r2, err := nextAttr(val)
				if err != nil {
					return err
				}
				val = r2
				switch t2 {
				case ctaIPv4Src, ctaIPv4Dst:
					if len(v2) != 4 {
						return errBadAttrLen
					}
					if t2 == ctaIPv4Src {
						copy(t.src[:4], v2)
					} else {
						copy(t.dst[:4], v2)
					}
				case ctaIPv6Src, ctaIPv6Dst:
					if len(v2) != 16 {
						return errBadAttrLen
					}
					t.v6 = true
					if t2 == ctaIPv6Src {
						copy(t.src[:], v2)
					} else {
						copy(t.dst[:], v2)
					}
				}
			}
		case ctaTupleProto:
			for len(val) > 0 {
				t2, v2, r2, err := nextAttr(val)
				if err != nil {
					return err
				}
				val = r2
				switch t2 {
				case ctaProtoNum:
					if len(v2) < 1 {
						return errBadAttrLen
					}
					t.proto = v2[0]
				case ctaProtoSrcPort, ctaProtoDstPort, ctaProtoICMPID, ctaProtoICMPv6ID:
					if len(v2) < 2 {
						return errBadAttrLen
					}
					p := binary.BigEndian.Uint16(v2)
					if t2 == ctaProtoDstPort {
						t.dport = p
					} else {
						t.sport = p
					}
				case ctaProtoICMPType, ctaProtoICMPv6Ty, ctaProtoICMPCode, ctaProtoICMPv6Co:
					if len(v2) < 1 {
						return errBadAttrLen
					}
					icmp = true
					if t2 == ctaProtoICMPType || t2 == ctaProtoICMPv6Ty {
						icmpType = v2[0]
					} else {
						icmpCode = v2[0]
					}
				}
			}
		}
	}
	if icmp {
		t.dport = uint16(icmpType)<<8 | uint16(icmpCode)
	}
	return nil
}

// flowKind classifies a ctnetlink message header: a multicast NEW message
// with NLM_F_CREATE is a new entry, without it an update, and a DELETE a
// destroy. ok is false for anything else.
func flowKind(typ, flags uint16) (msgKind, bool) {
	if typ>>8 != subsysCTNetlink {
		return 0, false
	}
	switch typ & 0xff {
	case ctMsgNew:
		if flags&(nlmFCreate|nlmFExcl) != 0 {
			return kindNew, true
		}
		return kindUpdate, true
	case ctMsgDelete:
		return kindDestroy, true
	}
	return 0, false
}
