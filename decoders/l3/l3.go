package l3

import (
	"encoding/binary"
	"net/netip"

	"github.com/layerscope/layerscope/decoders"
)

const (
	ipv4MinLen = 20
	ipv6Len    = 40
	icmpLen    = 8
	// maxExtHeaders bounds the IPv6 extension headers walked per packet.
	maxExtHeaders = 8
)

// IPv6 next-header values of extension headers.
const (
	nhHopByHop = 0
	nhRouting  = 43
	nhFragment = 44
	nhAH       = 51
	nhDestOpts = 60
	nhMobility = 135
	nhHIP      = 139
	nhShim6    = 140
)

// IPv4 decodes an IPv4 header into s.IP. It returns the upper-layer protocol
// and its payload (trimmed to the total length, so Ethernet padding is
// dropped; possibly shorter than declared when the capture was cut), and the
// payload length the header declares. next is false when the payload is not
// an upper-layer header (non-first fragment) or the header is malformed (the
// reason is recorded in s).
//
// A total length of 0 is taken as a segmentation-offload capture and the
// captured length is used instead.
func IPv4(data []byte, s *decoders.Summary) (proto uint8, payload []byte, wireLen int, next bool) {
	if len(data) < ipv4MinLen {
		s.Fail(decoders.OSIL3, decoders.ReasonTruncated)
		return 0, nil, 0, false
	}
	if data[0]>>4 != 4 {
		s.Fail(decoders.OSIL3, decoders.ReasonBadVersion)
		return 0, nil, 0, false
	}
	ihl := int(data[0]&0x0f) * 4
	if ihl < ipv4MinLen {
		s.Fail(decoders.OSIL3, decoders.ReasonBadHeaderLength)
		return 0, nil, 0, false
	}
	if len(data) < ihl {
		s.Fail(decoders.OSIL3, decoders.ReasonTruncated)
		return 0, nil, 0, false
	}
	total := int(binary.BigEndian.Uint16(data[2:4]))
	if total == 0 {
		total = len(data)
	} else if total < ihl {
		s.Fail(decoders.OSIL3, decoders.ReasonBadLength)
		return 0, nil, 0, false
	}
	fl := binary.BigEndian.Uint16(data[6:8])
	// Field stores, not a composite literal: the literal is built on the
	// stack and copied, which costs more than the whole header parse.
	ip := &s.IP
	ip.Family = 4
	ip.TTL = data[8]
	ip.Proto = data[9]
	ip.DF = fl&0x4000 != 0
	ip.MF = fl&0x2000 != 0
	ip.FragHeader = false
	ip.FragOffset = (fl & 0x1fff) << 3
	ip.ID = uint32(binary.BigEndian.Uint16(data[4:6]))
	ip.TotalLen = uint16(total)
	ip.HeaderLen = uint16(ihl)
	ip.Src = netip.AddrFrom4([4]byte(data[12:16]))
	ip.Dst = netip.AddrFrom4([4]byte(data[16:20]))
	s.Layers |= decoders.LayerIPv4
	end := min(total, len(data))
	payload = data[ihl:end]
	wireLen = total - ihl
	if ip.MF || ip.FragOffset != 0 {
		s.Layers |= decoders.LayerFragment
		if ip.FragOffset != 0 {
			return ip.Proto, payload, wireLen, false
		}
	}
	return ip.Proto, payload, wireLen, true
}

// fragInfo is what an IPv6 fragment header says.
type fragInfo struct {
	present bool
	more    bool
	offset  uint16
	id      uint32
}

// walkExt walks IPv6 extension headers starting at data (the bytes after the
// fixed header) with next header nh. It returns the upper-layer protocol and
// the offset of its header in data.
func walkExt(data []byte, nh uint8) (proto uint8, off int, frag fragInfo, reason decoders.Reason) {
	for i := 0; ; i++ {
		var hlen int
		switch nh {
		case nhHopByHop, nhRouting, nhDestOpts, nhMobility, nhHIP, nhShim6:
			if len(data) < off+2 {
				return nh, off, frag, decoders.ReasonTruncated
			}
			hlen = (int(data[off+1]) + 1) * 8
		case nhAH:
			if len(data) < off+2 {
				return nh, off, frag, decoders.ReasonTruncated
			}
			hlen = (int(data[off+1]) + 2) * 4
		case nhFragment:
			if len(data) < off+8 {
				return nh, off, frag, decoders.ReasonTruncated
			}
			fo := binary.BigEndian.Uint16(data[off+2 : off+4])
			frag = fragInfo{present: true, more: fo&1 != 0, offset: fo & 0xfff8, id: binary.BigEndian.Uint32(data[off+4 : off+8])}
			hlen = 8
		default:
			return nh, off, frag, decoders.ReasonNone
		}
		if i >= maxExtHeaders {
			return nh, off, frag, decoders.ReasonTooManyHeaders
		}
		if len(data) < off+hlen {
			return nh, off, frag, decoders.ReasonTruncated
		}
		nh = data[off]
		off += hlen
		if frag.present && frag.offset != 0 {
			// The rest is a later fragment's payload, not headers.
			return nh, off, frag, decoders.ReasonNone
		}
	}
}

// IPv6 decodes an IPv6 header and its extension headers into s.IP (see
// IPv4 for the results). A payload length of 0 (jumbogram or offload
// capture) is taken as the captured length.
func IPv6(data []byte, s *decoders.Summary) (proto uint8, payload []byte, wireLen int, next bool) {
	if len(data) < ipv6Len {
		s.Fail(decoders.OSIL3, decoders.ReasonTruncated)
		return 0, nil, 0, false
	}
	if data[0]>>4 != 6 {
		s.Fail(decoders.OSIL3, decoders.ReasonBadVersion)
		return 0, nil, 0, false
	}
	plen := int(binary.BigEndian.Uint16(data[4:6]))
	if plen == 0 {
		plen = len(data) - ipv6Len
	}
	ip := &s.IP
	ip.Family = 6
	ip.TTL = data[7]
	ip.Proto = data[6]
	ip.DF, ip.MF, ip.FragHeader = false, false, false
	ip.FragOffset = 0
	ip.ID = 0
	ip.TotalLen = uint16(min(plen+ipv6Len, 0xffff))
	ip.HeaderLen = ipv6Len
	ip.Src = netip.AddrFrom16([16]byte(data[8:24]))
	ip.Dst = netip.AddrFrom16([16]byte(data[24:40]))
	s.Layers |= decoders.LayerIPv6
	end := min(ipv6Len+plen, len(data))
	rest := data[ipv6Len:end]
	nh := data[6]
	if nh != decoders.ProtoTCP && nh != decoders.ProtoUDP && nh != decoders.ProtoICMPv6 {
		p, off, frag, reason := walkExt(rest, nh)
		if frag.present {
			ip.FragHeader = true
			ip.MF = frag.more
			ip.FragOffset = frag.offset
			ip.ID = frag.id
			s.Layers |= decoders.LayerFragment
		}
		ip.Proto = p
		ip.HeaderLen = uint16(min(ipv6Len+off, 0xffff))
		if reason != decoders.ReasonNone {
			s.Fail(decoders.OSIL3, reason)
			return p, nil, 0, false
		}
		if off > plen {
			s.Fail(decoders.OSIL3, decoders.ReasonBadLength)
			return p, nil, 0, false
		}
		rest = rest[off:]
		plen -= off
		if frag.offset != 0 {
			return p, rest, plen, false
		}
		nh = p
	}
	return nh, rest, plen, true
}

// ICMPv4 decodes an ICMP message into s.ICMP, including the next-hop MTU of
// fragmentation-needed and the header quoted by error messages.
func ICMPv4(data []byte, s *decoders.Summary) bool {
	if len(data) < icmpLen {
		s.Fail(decoders.OSIL3, decoders.ReasonTruncated)
		return false
	}
	c := &s.ICMP
	*c = decoders.ICMP{Type: data[0], Code: data[1]}
	s.Layers |= decoders.LayerICMPv4
	switch c.Type {
	case decoders.ICMPv4EchoReply, decoders.ICMPv4Echo, 13, 14: // echo, timestamp
		c.ID = binary.BigEndian.Uint16(data[4:6])
		c.Seq = binary.BigEndian.Uint16(data[6:8])
	case decoders.ICMPv4DestUnreachable, 4, 5, decoders.ICMPv4TimeExceeded, 12:
		if c.Type == decoders.ICMPv4DestUnreachable && c.Code == decoders.ICMPv4CodeFragNeeded {
			c.MTU = uint32(binary.BigEndian.Uint16(data[6:8]))
		}
		quoted4(data[icmpLen:], c)
	}
	return true
}

// quoted4 fills the Inner fields from an IPv4 header quoted in an ICMP
// error. A quote too short to hold the addresses leaves Quoted false.
func quoted4(q []byte, c *decoders.ICMP) {
	if len(q) < ipv4MinLen || q[0]>>4 != 4 {
		return
	}
	ihl := int(q[0]&0x0f) * 4
	if ihl < ipv4MinLen {
		return
	}
	c.Quoted = true
	c.InnerProto = q[9]
	c.InnerSrc = netip.AddrFrom4([4]byte(q[12:16]))
	c.InnerDst = netip.AddrFrom4([4]byte(q[16:20]))
	fo := binary.BigEndian.Uint16(q[6:8]) & 0x1fff
	if fo == 0 {
		innerPorts(q, ihl, c)
	}
}

func innerPorts(q []byte, off int, c *decoders.ICMP) {
	switch c.InnerProto {
	case decoders.ProtoTCP, decoders.ProtoUDP, 132, 136: // TCP, UDP, SCTP, UDP-Lite
		if len(q) >= off+4 {
			c.InnerPorts = true
			c.InnerSrcPort = binary.BigEndian.Uint16(q[off : off+2])
			c.InnerDstPort = binary.BigEndian.Uint16(q[off+2 : off+4])
		}
	}
}

// ICMPv6 decodes an ICMPv6 message into s.ICMP, including the MTU of
// packet-too-big and the header quoted by error messages.
func ICMPv6(data []byte, s *decoders.Summary) bool {
	if len(data) < 4 {
		s.Fail(decoders.OSIL3, decoders.ReasonTruncated)
		return false
	}
	c := &s.ICMP
	*c = decoders.ICMP{Type: data[0], Code: data[1]}
	s.Layers |= decoders.LayerICMPv6
	if len(data) < icmpLen {
		return true
	}
	switch c.Type {
	case decoders.ICMPv6EchoRequest, decoders.ICMPv6EchoReply:
		c.ID = binary.BigEndian.Uint16(data[4:6])
		c.Seq = binary.BigEndian.Uint16(data[6:8])
	case decoders.ICMPv6DestUnreachable, decoders.ICMPv6PacketTooBig, decoders.ICMPv6TimeExceeded, decoders.ICMPv6ParamProblem:
		if c.Type == decoders.ICMPv6PacketTooBig {
			c.MTU = binary.BigEndian.Uint32(data[4:8])
		}
		quoted6(data[icmpLen:], c)
	}
	return true
}

func quoted6(q []byte, c *decoders.ICMP) {
	if len(q) < ipv6Len || q[0]>>4 != 6 {
		return
	}
	c.Quoted = true
	c.InnerSrc = netip.AddrFrom16([16]byte(q[8:24]))
	c.InnerDst = netip.AddrFrom16([16]byte(q[24:40]))
	p, off, frag, reason := walkExt(q[ipv6Len:], q[6])
	c.InnerProto = p
	if reason == decoders.ReasonNone && frag.offset == 0 {
		innerPorts(q, ipv6Len+off, c)
	}
}
