package flow

import "net/netip"

// Packet is what the flow table learns from one captured packet: the inner
// (post-decapsulation) transport tuple, where and when it was seen, the TCP
// header fields the table tracks and the L7 request/response markers.
//
// Packet is a flat value without pointers of its own (netip.Addr values
// only). The per-packet pipeline keeps one Packet per worker, overwrites
// every field it knows for each frame and passes its address to the flow
// table; the table reads it during the call and keeps nothing that aliases
// it. Fields the decoders did not fill must be zero: the zero value of every
// field means "not present".
type Packet struct {
	// Key is the inner transport tuple as sent: Src is the sender. For an
	// encapsulated frame it is the tuple of the inner (pod) packet.
	Key Key
	// Time is the capture time in Unix nanoseconds. The table uses packet
	// time as its clock, so replayed captures age flows by their own time.
	Time int64
	// Len is the length of the frame on the wire (not the snap length).
	Len uint32
	// IfIndex is the interface index of the observation point on this node.
	IfIndex int32
	// Role is the role of that interface.
	Role Role
	// Dir is the direction of the packet relative to that interface.
	Dir Direction
	// Tunnel describes the outer headers when the packet was seen
	// encapsulated (VXLAN, Geneve); Tunnel.Encap is EncapNone otherwise.
	Tunnel Tunnel

	// TCPFlags holds the TCP flag bits (TCPFin … TCPCwr) for TCP packets.
	TCPFlags uint8
	// Window is the raw (unscaled) TCP receive window.
	Window uint16
	// PayloadLen is the TCP or UDP payload length as given by the IP and
	// transport headers (not limited by the snap length).
	PayloadLen uint16
	// Seq and Ack are the TCP sequence and acknowledgement numbers.
	Seq, Ack uint32

	// App names the L7 protocol the packet carries a message of; AppNone
	// when it carries none (or the decoder did not recognise one).
	App App
	// Response is true for a DNS response (QR set) or an HTTP response
	// (status line), false for a DNS query or an HTTP request line.
	Response bool
	// DNSID is the DNS message ID (App == AppDNS).
	DNSID uint16
	// DNSRcode is the DNS response code (App == AppDNS, Response).
	DNSRcode uint8
	// DNSNameTruncated says the DNS question name was longer than
	// MaxDNSName bytes (or cut by the decoder): DNSName holds its prefix.
	DNSNameTruncated bool
	// DNSNameLen is the length of DNSName (App == AppDNS); zero when the
	// message has no (readable) question. Only DNS messages fill DNSName:
	// other packets set DNSNameLen to zero and leave the bytes stale.
	DNSNameLen uint8
	// DNSName holds the first DNSNameLen bytes of the DNS question name,
	// dotted, without the final dot.
	DNSName [MaxDNSName]byte
	// HTTPStatus is the HTTP status code (App == AppHTTP, Response).
	HTTPStatus uint16
	// FilterSeq says that the capture's kernel filter tracks this TCP
	// flow's sequence numbers at this interface and counts its data
	// retransmissions (delivered with Counted): the table does not count
	// them from the packet, it only follows the sequence numbers.
	FilterSeq bool
}

// Counted is what a capture's kernel filter counted of one direction of one
// flow at one interface since its last report: the packets it did not hand
// to user space (see agent/capture's offload), merged into the flow table
// (flowtable.Table.Merge) and the per-layer counters so that both stay
// exact. Every such packet is an Ethernet/IPv4 or IPv6/TCP segment with
// ACK set and no flag but PSH besides, or such a frame in VXLAN over
// Ethernet/IPv4.
type Counted struct {
	// Key is the tuple as sent: Src is the sender.
	Key Key
	// IfIndex, Role and Dir are the interface's index, its role and the
	// direction of the packets relative to it.
	IfIndex int32
	Role    Role
	Dir     Direction
	// Encap is the tunnel the frames were seen in (EncapVXLAN) or
	// EncapNone; Key is the inner tuple then.
	Encap Encap
	// Packets and Bytes (wire length, Ethernet header included) counted;
	// Push of them had PSH set.
	Packets, Bytes, Push uint64
	// Retransmits is the number of data retransmissions the filter saw
	// in this direction (all the flow's segments at the interface, those
	// handed to user space included).
	Retransmits uint32
	// Last is the time of the last packet counted, Unix nanoseconds.
	Last int64
}

// TCPFlagNames are the names of the TCP flags in bit order, NS (bit 8 of the
// header's 9-bit flag field) last: the label values of the per-packet flag
// counters, and, in upper case, the flags of a connection in the API. A
// flow record keeps the eight flags of byte 13 (TCPFin … TCPCwr); NS is
// counted per packet (decoders.TCPNs).
var TCPFlagNames = [9]string{"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns"}

// TCP flag bits as they appear in byte 13 of the TCP header.
const (
	TCPFin uint8 = 1 << iota
	TCPSyn
	TCPRst
	TCPPsh
	TCPAck
	TCPUrg
	TCPEce
	TCPCwr
)

// Encap is the encapsulation a packet was seen in.
type Encap uint8

// Encapsulations. EncapNone is the zero value.
const (
	EncapNone Encap = iota
	EncapVXLAN
	EncapGeneve
)

// String returns "none", "vxlan" or "geneve".
func (e Encap) String() string {
	switch e {
	case EncapVXLAN:
		return "vxlan"
	case EncapGeneve:
		return "geneve"
	}
	return "none"
}

// Tunnel is the outer view of an encapsulated packet: the tunnel kind, its
// virtual network identifier and the outer (node) addresses. The zero value
// means "not encapsulated".
type Tunnel struct {
	Encap              Encap
	VNI                uint32
	OuterSrc, OuterDst netip.Addr
}

// App is an L7 protocol whose request/response exchanges the flow table
// matches.
type App uint8

// L7 protocols. AppNone is the zero value.
const (
	AppNone App = iota
	AppDNS
	AppHTTP
)

// String returns "none", "dns" or "http".
func (a App) String() string {
	switch a {
	case AppDNS:
		return "dns"
	case AppHTTP:
		return "http"
	}
	return "none"
}
