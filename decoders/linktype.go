package decoders

// LinkType is a pcap LINKTYPE_ value: the header a frame starts with. It has
// the numbering of gopacket's layers.LinkType, so a pcap reader's link type
// converts directly: decoders.LinkType(r.LinkType()).
type LinkType uint16

// Link types the parser decodes; any other is counted as
// ReasonUnsupportedLinkType.
const (
	LinkNull      LinkType = 0   // BSD loopback: 4-byte address family in the capturing host's byte order
	LinkEthernet  LinkType = 1   // Ethernet II (AF_PACKET on veth, VXLAN, NICs)
	LinkRawDLT    LinkType = 12  // DLT_RAW as written by some systems: raw IPv4/IPv6
	LinkRawDLT14  LinkType = 14  // DLT_RAW on OpenBSD: raw IPv4/IPv6
	LinkRaw       LinkType = 101 // LINKTYPE_RAW: raw IPv4/IPv6
	LinkLoop      LinkType = 108 // OpenBSD loopback: 4-byte address family, big endian
	LinkLinuxSLL  LinkType = 113 // Linux "cooked" capture v1
	LinkIPv4      LinkType = 228 // raw IPv4
	LinkIPv6      LinkType = 229 // raw IPv6
	LinkLinuxSLL2 LinkType = 276 // Linux "cooked" capture v2
)

// EtherTypes the decoders follow.
const (
	EtherTypeIPv4  = 0x0800
	EtherTypeARP   = 0x0806
	EtherTypeVLAN  = 0x8100
	EtherTypeQinQ  = 0x88a8
	EtherTypeQinQ2 = 0x9100
	EtherTypeIPv6  = 0x86dd
	EtherTypeTEB   = 0x6558 // transparent Ethernet bridging: Geneve's inner Ethernet
)

// IP protocol numbers the decoders follow.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)
