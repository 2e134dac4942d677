package l4

import (
	"encoding/binary"

	"github.com/layerscope/layerscope/decoders"
)

const (
	tcpMinLen    = 20
	udpLen       = 8
	vxlanLen     = 8
	geneveMinLen = 8
)

// TCP decodes a TCP header into s.L4. data is the IP payload as captured,
// wireLen the payload length the IP header declares. It returns the captured
// TCP payload. The MSS option is looked for in SYN segments only (it is not
// valid elsewhere).
func TCP(data []byte, wireLen int, s *decoders.Summary) (payload []byte, ok bool) {
	if len(data) < tcpMinLen {
		s.Fail(decoders.OSIL4, decoders.ReasonTruncated)
		return nil, false
	}
	doff := int(data[12]>>4) * 4
	if doff < tcpMinLen {
		s.Fail(decoders.OSIL4, decoders.ReasonBadHeaderLength)
		return nil, false
	}
	if len(data) < doff {
		s.Fail(decoders.OSIL4, decoders.ReasonTruncated)
		return nil, false
	}
	t := &s.L4
	t.SrcPort = binary.BigEndian.Uint16(data[0:2])
	t.DstPort = binary.BigEndian.Uint16(data[2:4])
	t.Seq = binary.BigEndian.Uint32(data[4:8])
	t.Ack = binary.BigEndian.Uint32(data[8:12])
	t.Flags = decoders.TCPFlags(binary.BigEndian.Uint16(data[12:14]) & 0x01ff)
	t.Window = binary.BigEndian.Uint16(data[14:16])
	t.HeaderLen = uint16(doff)
	t.MSS = 0
	t.PayloadLen = 0
	if wireLen > doff {
		t.PayloadLen = uint16(wireLen - doff)
	}
	s.Layers |= decoders.LayerTCP
	if t.Flags&decoders.TCPSyn != 0 && doff > tcpMinLen {
		mss, reason := findMSS(data[tcpMinLen:doff])
		if reason != decoders.ReasonNone {
			s.Fail(decoders.OSIL4, reason)
			return data[doff:], true
		}
		t.MSS = mss
	}
	return data[doff:], true
}

// findMSS scans TCP options for MSS (kind 2, length 4).
func findMSS(opts []byte) (uint16, decoders.Reason) {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0: // end of options
			return 0, decoders.ReasonNone
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(opts) {
			return 0, decoders.ReasonBadOption
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return 0, decoders.ReasonBadOption
		}
		if opts[i] == 2 && l == 4 {
			return binary.BigEndian.Uint16(opts[i+2 : i+4]), decoders.ReasonNone
		}
		i += l
	}
	return 0, decoders.ReasonNone
}

// UDP decodes a UDP header into s.L4 and returns the captured payload,
// trimmed to the UDP length. A UDP length of 0 (jumbogram, offload capture)
// is taken from wireLen.
func UDP(data []byte, wireLen int, s *decoders.Summary) (payload []byte, ok bool) {
	if len(data) < udpLen {
		s.Fail(decoders.OSIL4, decoders.ReasonTruncated)
		return nil, false
	}
	ulen := int(binary.BigEndian.Uint16(data[4:6]))
	if ulen == 0 {
		ulen = wireLen
	}
	if ulen < udpLen {
		s.Fail(decoders.OSIL4, decoders.ReasonBadLength)
		return nil, false
	}
	s.L4 = decoders.Transport{
		SrcPort:    binary.BigEndian.Uint16(data[0:2]),
		DstPort:    binary.BigEndian.Uint16(data[2:4]),
		HeaderLen:  udpLen,
		PayloadLen: uint16(ulen - udpLen),
	}
	s.Layers |= decoders.LayerUDP
	return data[udpLen:min(ulen, len(data))], true
}

// VXLAN decodes a VXLAN header into s.Tunnel.VNI and returns the inner
// Ethernet frame. The I flag is not required: like Wireshark, any payload of
// a VXLAN port is decoded as VXLAN. The outer fields of s.Tunnel are the
// caller's to fill.
func VXLAN(data []byte, s *decoders.Summary) (inner []byte, ok bool) {
	if len(data) < vxlanLen {
		s.Fail(decoders.OSIL4, decoders.ReasonTruncated)
		return nil, false
	}
	s.Tunnel.Kind = decoders.TunnelVXLAN
	s.Tunnel.VNI = binary.BigEndian.Uint32(data[4:8]) >> 8
	s.Tunnel.InnerProto = decoders.EtherTypeTEB
	s.Layers |= decoders.LayerVXLAN
	return data[vxlanLen:], true
}

// Geneve decodes a Geneve header (version 0) into s.Tunnel and returns the
// payload after the options and its protocol (an EtherType; 0x6558 for an
// inner Ethernet frame).
func Geneve(data []byte, s *decoders.Summary) (inner []byte, proto uint16, ok bool) {
	if len(data) < geneveMinLen {
		s.Fail(decoders.OSIL4, decoders.ReasonTruncated)
		return nil, 0, false
	}
	if data[0]>>6 != 0 {
		s.Fail(decoders.OSIL4, decoders.ReasonBadVersion)
		return nil, 0, false
	}
	hlen := geneveMinLen + int(data[0]&0x3f)*4
	if len(data) < hlen {
		s.Fail(decoders.OSIL4, decoders.ReasonTruncated)
		return nil, 0, false
	}
	proto = binary.BigEndian.Uint16(data[2:4])
	s.Tunnel.Kind = decoders.TunnelGeneve
	s.Tunnel.VNI = binary.BigEndian.Uint32(data[4:8]) >> 8
	s.Tunnel.InnerProto = proto
	s.Layers |= decoders.LayerGeneve
	return data[hlen:], proto, true
}
