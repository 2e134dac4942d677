package l2

import (
	"encoding/binary"
	"net/netip"

	"github.com/layerscope/layerscope/decoders"
)

const (
	ethLen  = 14
	sllLen  = 16
	sll2Len = 20
	nullLen = 4
	arpLen  = 28 // Ethernet/IPv4 ARP
	// maxTags bounds the VLAN tags walked before giving up.
	maxTags = 8
)

// Ethernet decodes an Ethernet II header and its 802.1Q/802.1ad tags into
// s.Eth. It returns the EtherType after the tags and the offset of the
// payload; ok is false when the frame is malformed (the reason is recorded
// in s). An 802.3 length field (< 0x0600) is returned as is: the caller
// stops there.
func Ethernet(data []byte, s *decoders.Summary) (etype uint16, off int, ok bool) {
	if len(data) < ethLen {
		s.Fail(decoders.OSIL2, decoders.ReasonTruncated)
		return 0, 0, false
	}
	e := &s.Eth
	e.Dst = [6]byte(data[0:6])
	e.Src = [6]byte(data[6:12])
	e.NumVLANs = 0
	e.VLANs = [decoders.MaxVLANs]uint16{}
	etype = binary.BigEndian.Uint16(data[12:14])
	s.Layers |= decoders.LayerEthernet
	off = ethLen
	if etype == decoders.EtherTypeVLAN || etype == decoders.EtherTypeQinQ || etype == decoders.EtherTypeQinQ2 {
		etype, off, ok = vlans(data, off, etype, s)
		if !ok {
			return 0, 0, false
		}
	}
	e.EtherType = etype
	return etype, off, true
}

// vlans walks stacked VLAN tags starting at data[off:] (etype is a tag
// protocol identifier).
func vlans(data []byte, off int, etype uint16, s *decoders.Summary) (uint16, int, bool) {
	e := &s.Eth
	for etype == decoders.EtherTypeVLAN || etype == decoders.EtherTypeQinQ || etype == decoders.EtherTypeQinQ2 {
		if len(data) < off+4 {
			s.Fail(decoders.OSIL2, decoders.ReasonTruncated)
			return 0, 0, false
		}
		if e.NumVLANs >= maxTags {
			s.Fail(decoders.OSIL2, decoders.ReasonTooManyHeaders)
			return 0, 0, false
		}
		if int(e.NumVLANs) < decoders.MaxVLANs {
			e.VLANs[e.NumVLANs] = binary.BigEndian.Uint16(data[off:]) & 0x0fff
		}
		e.NumVLANs++
		etype = binary.BigEndian.Uint16(data[off+2:])
		off += 4
	}
	s.Layers |= decoders.LayerVLAN
	return etype, off, true
}

// sllProtocol maps the protocol field of a Linux cooked header to an
// EtherType, following the kernel's ARPHRD conventions: the values below
// 0x0600 are pseudo protocols (802.3, 802.2 LLC, CAN, ...) and not decoded.
func sllProtocol(hatype, proto uint16) (uint16, bool) {
	switch hatype {
	case 824, 825: // ARPHRD_NETLINK, ARPHRD_NETLINK (nlmon): netlink messages
		return 0, false
	}
	if proto < 0x0600 {
		return 0, false
	}
	return proto, true
}

// LinuxSLL decodes a Linux cooked capture v1 header. The link address, when
// 6 bytes long, is stored in s.Eth.Src. A protocol that is not an EtherType
// returns ok with etype 0.
func LinuxSLL(data []byte, s *decoders.Summary) (etype uint16, off int, ok bool) {
	if len(data) < sllLen {
		s.Fail(decoders.OSIL2, decoders.ReasonTruncated)
		return 0, 0, false
	}
	hatype := binary.BigEndian.Uint16(data[2:4])
	alen := binary.BigEndian.Uint16(data[4:6])
	proto := binary.BigEndian.Uint16(data[14:16])
	return cooked(data, s, hatype, alen, data[6:14], proto, sllLen)
}

// LinuxSLL2 decodes a Linux cooked capture v2 header (see LinuxSLL).
func LinuxSLL2(data []byte, s *decoders.Summary) (etype uint16, off int, ok bool) {
	if len(data) < sll2Len {
		s.Fail(decoders.OSIL2, decoders.ReasonTruncated)
		return 0, 0, false
	}
	proto := binary.BigEndian.Uint16(data[0:2])
	hatype := binary.BigEndian.Uint16(data[8:10])
	alen := uint16(data[11])
	return cooked(data, s, hatype, alen, data[12:20], proto, sll2Len)
}

func cooked(data []byte, s *decoders.Summary, hatype, alen uint16, addr []byte, proto uint16, hlen int) (uint16, int, bool) {
	e := &s.Eth
	*e = decoders.Ethernet{}
	if alen == 6 {
		e.Src = [6]byte(addr[:6])
	}
	etype, known := sllProtocol(hatype, proto)
	if !known {
		return 0, hlen, true
	}
	s.Layers |= decoders.LayerEthernet
	off := hlen
	if etype == decoders.EtherTypeVLAN || etype == decoders.EtherTypeQinQ || etype == decoders.EtherTypeQinQ2 {
		var ok bool
		etype, off, ok = vlans(data, off, etype, s)
		if !ok {
			return 0, 0, false
		}
	}
	e.EtherType = etype
	return etype, off, true
}

// Null decodes the 4-byte address family header of BSD loopback captures
// (LINKTYPE_NULL in the capturing host's byte order, LINKTYPE_LOOP big
// endian) and returns the matching EtherType, 0 for other families.
func Null(data []byte, s *decoders.Summary, bigEndian bool) (etype uint16, off int, ok bool) {
	if len(data) < nullLen {
		s.Fail(decoders.OSIL2, decoders.ReasonTruncated)
		return 0, 0, false
	}
	var fam uint32
	if bigEndian {
		fam = binary.BigEndian.Uint32(data)
	} else {
		fam = binary.LittleEndian.Uint32(data)
		if fam&0xffff0000 != 0 { // written by a big-endian host
			fam = binary.BigEndian.Uint32(data)
		}
	}
	switch fam {
	case 2: // AF_INET everywhere
		return decoders.EtherTypeIPv4, nullLen, true
	case 10, 24, 28, 30: // AF_INET6 of Linux, NetBSD/OpenBSD, FreeBSD, Darwin
		return decoders.EtherTypeIPv6, nullLen, true
	}
	return 0, nullLen, true
}

// ARP decodes an ARP packet into s.ARP. Only Ethernet/IPv4 ARP (hardware
// length 6, protocol length 4) fills addresses; other kinds record the
// operation only.
func ARP(data []byte, s *decoders.Summary) bool {
	if len(data) < 8 {
		s.Fail(decoders.OSIL2, decoders.ReasonTruncated)
		return false
	}
	a := &s.ARP
	*a = decoders.ARP{Op: binary.BigEndian.Uint16(data[6:8])}
	hlen, plen := int(data[4]), int(data[5])
	if len(data) < 8+2*hlen+2*plen {
		s.Fail(decoders.OSIL2, decoders.ReasonTruncated)
		return false
	}
	if hlen == 6 && plen == 4 {
		a.SenderMAC = [6]byte(data[8:14])
		a.SenderIP = netip.AddrFrom4([4]byte(data[14:18]))
		a.TargetMAC = [6]byte(data[18:24])
		a.TargetIP = netip.AddrFrom4([4]byte(data[24:28]))
	}
	s.Layers |= decoders.LayerARP
	return true
}
