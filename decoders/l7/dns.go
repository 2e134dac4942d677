package l7

import (
	"encoding/binary"

	"github.com/layerscope/layerscope/decoders"
)

const (
	dnsHeaderLen = 12
	// maxPointers bounds the compression pointers followed in one name.
	maxPointers = 16
)

// DNS decodes a DNS message (as carried over UDP) into s.DNS: header and
// first question. It returns false when the payload is too short for a
// header (recorded as truncated). A question cut by the capture's end is
// recorded as truncated with the header still decoded.
func DNS(msg []byte, s *decoders.Summary) bool {
	if len(msg) < dnsHeaderLen {
		s.Fail(decoders.OSIL7, decoders.ReasonTruncated)
		return false
	}
	fl := binary.BigEndian.Uint16(msg[2:4])
	d := &s.DNS
	d.ID = binary.BigEndian.Uint16(msg[0:2])
	d.Flags = fl
	d.Response = fl&0x8000 != 0
	d.Opcode = uint8(fl>>11) & 0x0f
	d.RCode = uint8(fl & 0x0f)
	d.QDCount = binary.BigEndian.Uint16(msg[4:6])
	d.ANCount = binary.BigEndian.Uint16(msg[6:8])
	d.QType, d.QClass, d.QNameLen = 0, 0, 0
	s.Layers |= decoders.LayerDNS
	if d.QDCount == 0 {
		return true
	}
	end, reason := name(msg, dnsHeaderLen, s)
	if reason != decoders.ReasonNone {
		s.Fail(decoders.OSIL7, reason)
		return true
	}
	if len(msg) < end+4 {
		s.Fail(decoders.OSIL7, decoders.ReasonTruncated)
		return true
	}
	d.QType = binary.BigEndian.Uint16(msg[end:])
	d.QClass = binary.BigEndian.Uint16(msg[end+2:])
	return true
}

// DNSOverTCP decodes a DNS message that starts a TCP payload after its
// 2-byte length prefix. It returns false when the payload does not start
// with a plausible message (length shorter than a header).
func DNSOverTCP(payload []byte, s *decoders.Summary) bool {
	if len(payload) < 2 {
		return false
	}
	n := int(binary.BigEndian.Uint16(payload))
	if n < dnsHeaderLen {
		return false
	}
	msg := payload[2:]
	if len(msg) > n {
		msg = msg[:n]
	}
	return DNS(msg, s)
}

// name copies the name at msg[off:] into s.DNS.QName in dotted form and
// returns the offset just after it in the question.
func name(msg []byte, off int, s *decoders.Summary) (end int, reason decoders.Reason) {
	d := &s.DNS
	n := 0
	end = -1
	jumps := 0
	for {
		if off >= len(msg) {
			return 0, decoders.ReasonTruncated
		}
		l := int(msg[off])
		switch l & 0xc0 {
		case 0xc0:
			if off+1 >= len(msg) {
				return 0, decoders.ReasonTruncated
			}
			if end < 0 {
				end = off + 2
			}
			jumps++
			if jumps > maxPointers {
				return 0, decoders.ReasonBadName
			}
			off = int(binary.BigEndian.Uint16(msg[off:]) & 0x3fff)
			continue
		case 0x00:
		default: // 0x40, 0x80: extended label types, obsolete
			return 0, decoders.ReasonBadName
		}
		if l == 0 {
			if end < 0 {
				end = off + 1
			}
			d.QNameLen = uint8(n)
			return end, decoders.ReasonNone
		}
		if off+1+l > len(msg) {
			return 0, decoders.ReasonTruncated
		}
		label := msg[off+1 : off+1+l]
		if n > 0 {
			if n < decoders.MaxQName {
				d.QName[n] = '.'
				n++
			} else {
				s.Trunc |= decoders.TruncQName
			}
		}
		c := copy(d.QName[n:], label)
		if c < len(label) {
			s.Trunc |= decoders.TruncQName
		}
		n += c
		off += 1 + l
	}
}
