package decoders

import "net/netip"

// Layer is a bitmap of the headers a Summary holds.
type Layer uint32

// Layer bits. The tunnel bits (LayerVXLAN, LayerGeneve) describe the outer
// view kept in Summary.Tunnel; every other bit describes the main view.
const (
	LayerEthernet Layer = 1 << iota // Summary.Eth: Ethernet II (or Linux SLL/SLL2 with an EtherType)
	LayerVLAN                       // at least one 802.1Q/802.1ad tag (Summary.Eth.VLANs)
	LayerARP                        // Summary.ARP
	LayerIPv4                       // Summary.IP with Family 4
	LayerIPv6                       // Summary.IP with Family 6
	LayerFragment                   // the IP header is a fragment (IPv4 MF or offset, or an IPv6 fragment header)
	LayerICMPv4                     // Summary.ICMP
	LayerICMPv6                     // Summary.ICMP
	LayerTCP                        // Summary.L4 (with TCP fields)
	LayerUDP                        // Summary.L4
	LayerVXLAN                      // Summary.Tunnel, Kind TunnelVXLAN
	LayerGeneve                     // Summary.Tunnel, Kind TunnelGeneve
	LayerTLS                        // Summary.TLS
	LayerDNS                        // Summary.DNS
	LayerHTTP                       // Summary.HTTP
)

// Has reports whether every bit of want is set in l.
func (l Layer) Has(want Layer) bool { return l&want == want }

// Trunc is a bitmap of fixed buffers whose value did not fit and was cut.
type Trunc uint8

// Truncation bits: the value was longer than its buffer, or the capture ended
// inside the message (snap length).
const (
	TruncSNI   Trunc = 1 << iota // TLS.SNI holds a prefix of the server name
	TruncALPN                    // TLS.ALPN holds a prefix of the first protocol
	TruncQName                   // DNS.QName holds a prefix of the query name
	TruncHello                   // the TLS hello ended at the capture's end; later extensions are missing
)

// Buffer sizes of the fixed fields.
const (
	MaxSNI   = 255 // a DNS host name is at most 253 bytes
	MaxALPN  = 32  // registered ALPN ids are short ("http/1.1", "h2", "h3")
	MaxQName = 255 // presentation form of a DNS name, without the final dot
	MaxVLANs = 2   // outer and inner tag of QinQ
)

// Summary is the decoded view of one frame: fixed size, holds no pointer into
// the frame (addresses are netip.Addr values, names are copied into fixed
// arrays), so it stays valid after the capture buffer is reused.
//
// A section is meaningful only when its bit is set in Layers (the bit of
// Tunnel is LayerVXLAN or LayerGeneve). Reset clears Layers and the error but
// leaves stale values in the sections: decoders overwrite a whole section
// before they set its bit.
//
// # Tunnels
//
// When a frame carries VXLAN or Geneve, the main sections (Eth, ARP, IP, ICMP,
// L4, TLS, DNS, HTTP) hold the inner, decapsulated frame: the pod's view.
// Tunnel holds the outer view of the outermost tunnel: outer IP addresses,
// UDP ports, VNI and the outer frame's VLAN tags. Other fields of the outer
// Ethernet header are not kept.
//
// A Summary is owned by one goroutine; it is meant to be reused frame after
// frame.
type Summary struct {
	Layers Layer // sections that hold decoded values
	Trunc  Trunc // buffers that were cut
	err    DecodeError

	Eth    Ethernet
	ARP    ARP
	IP     IP
	ICMP   ICMP
	Tunnel Tunnel
	L4     Transport
	TLS    TLS
	DNS    DNS
	HTTP   HTTP
}

// Reset prepares s for the next frame: clears Layers, Trunc and the error.
// It costs a few stores; the sections are overwritten by the decoders.
func (s *Summary) Reset() {
	s.Layers = 0
	s.Trunc = 0
	s.err = DecodeError{}
}

// Fail records that decoding stopped at layer for reason. Only the first
// error of a frame is kept.
func (s *Summary) Fail(layer OSILayer, reason Reason) {
	if s.err.Reason == ReasonNone {
		s.err = DecodeError{Layer: layer, Reason: reason}
	}
}

// Err returns the frame's decode error, or nil. The returned pointer aliases
// s and is valid until the next Reset; it does not allocate. Use errors.Is
// with the sentinels (ErrTruncated, ...) or ErrInfo for metric labels.
func (s *Summary) Err() error {
	if s.err.Reason == ReasonNone {
		return nil
	}
	return &s.err
}

// ErrInfo returns the layer and reason of the frame's decode error
// (OSINone, ReasonNone when the frame decoded cleanly).
func (s *Summary) ErrInfo() (OSILayer, Reason) { return s.err.Layer, s.err.Reason }

// Ethernet holds the link-layer header (LayerEthernet, LayerVLAN).
type Ethernet struct {
	Dst, Src  [6]byte          // zero for Linux SLL/SLL2 (Src holds the SLL address when it is 6 bytes)
	EtherType uint16           // the EtherType after the VLAN tags
	VLANs     [MaxVLANs]uint16 // VLAN IDs, outermost first
	NumVLANs  uint8            // tags seen (may exceed MaxVLANs; IDs beyond are not kept)
}

// ARP holds an ARP packet for IPv4 over Ethernet (LayerARP).
type ARP struct {
	Op                   uint16 // 1 request, 2 reply
	SenderMAC, TargetMAC [6]byte
	SenderIP, TargetIP   netip.Addr
}

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
)

// IP holds the network header (LayerIPv4 or LayerIPv6; LayerFragment).
type IP struct {
	Family     uint8  // 4 or 6
	TTL        uint8  // TTL or hop limit
	Proto      uint8  // upper-layer protocol (IPv6: after the extension headers)
	DF, MF     bool   // IPv4 flags; MF is also the IPv6 fragment header's M flag
	FragHeader bool   // IPv6 fragment header present
	FragOffset uint16 // fragment offset in bytes
	ID         uint32 // IPv4 identification, or the IPv6 fragment header's identification
	TotalLen   uint16 // IPv4 total length; IPv6 40 + payload length
	HeaderLen  uint16 // IPv4 IHL*4; IPv6 40 + extension headers
	Src, Dst   netip.Addr
}

// ICMP holds an ICMPv4 or ICMPv6 message (LayerICMPv4, LayerICMPv6).
type ICMP struct {
	Type, Code uint8
	ID, Seq    uint16 // echo request/reply identifier and sequence
	// MTU is the next-hop MTU of an ICMPv4 fragmentation-needed
	// (type 3 code 4) or the MTU of an ICMPv6 packet-too-big (type 2).
	MTU uint32
	// Quoted reports that the message is an error quoting the header of the
	// packet that caused it; the Inner fields hold that header.
	Quoted                     bool
	InnerPorts                 bool // InnerSrcPort/InnerDstPort are set (TCP, UDP, SCTP quoted)
	InnerProto                 uint8
	InnerSrcPort, InnerDstPort uint16
	InnerSrc, InnerDst         netip.Addr
}

// ICMP types the decoders look into.
const (
	ICMPv4EchoReply       = 0
	ICMPv4DestUnreachable = 3
	ICMPv4Echo            = 8
	ICMPv4TimeExceeded    = 11
	ICMPv4CodeFragNeeded  = 4
	ICMPv6DestUnreachable = 1
	ICMPv6PacketTooBig    = 2
	ICMPv6TimeExceeded    = 3
	ICMPv6ParamProblem    = 4
	ICMPv6EchoRequest     = 128
	ICMPv6EchoReply       = 129
)

// TunnelKind says which encapsulation Tunnel describes.
type TunnelKind uint8

// Tunnel kinds.
const (
	TunnelNone TunnelKind = iota
	TunnelVXLAN
	TunnelGeneve
)

// String returns "none", "vxlan" or "geneve".
func (k TunnelKind) String() string {
	switch k {
	case TunnelVXLAN:
		return "vxlan"
	case TunnelGeneve:
		return "geneve"
	}
	return "none"
}

// Tunnel is the outer view of an encapsulated frame (LayerVXLAN or
// LayerGeneve): the outermost tunnel when tunnels nest.
type Tunnel struct {
	Kind                       TunnelKind
	Depth                      uint8  // number of tunnel headers decapsulated
	VNI                        uint32 // 24-bit virtual network identifier
	OuterSrcPort, OuterDstPort uint16
	OuterTTL                   uint8
	OuterFragment              bool // the outer IP packet is a fragment (the first: it carries the tunnel header)
	OuterSrc, OuterDst         netip.Addr
	InnerProto                 uint16 // EtherType of the payload (0x6558 for Ethernet)
	// OuterVLANs are the VLAN IDs of the outer frame's 802.1Q/802.1ad
	// tags, outermost first; OuterNumVLANs counts the tags (it may exceed
	// MaxVLANs). Zero when the outer frame is untagged.
	OuterVLANs    [MaxVLANs]uint16
	OuterNumVLANs uint8
}

// VLANTagged reports whether the frame carries an 802.1Q or 802.1ad tag:
// in its main view or, for a tunnelled frame, in the outer frame.
func (s *Summary) VLANTagged() bool {
	return s.Layers&LayerVLAN != 0 || (s.Layers&(LayerVXLAN|LayerGeneve) != 0 && s.Tunnel.OuterNumVLANs != 0)
}

// TCPFlags is the TCP flag bits, NS in bit 8.
type TCPFlags uint16

// TCP flags.
const (
	TCPFin TCPFlags = 1 << iota
	TCPSyn
	TCPRst
	TCPPsh
	TCPAck
	TCPUrg
	TCPEce
	TCPCwr
	TCPNs
)

// Has reports whether every flag of want is set.
func (f TCPFlags) Has(want TCPFlags) bool { return f&want == want }

// Transport holds the TCP or UDP header (LayerTCP or LayerUDP).
type Transport struct {
	SrcPort, DstPort uint16
	Flags            TCPFlags // TCP only
	Window           uint16   // TCP only, unscaled
	MSS              uint16   // TCP MSS option of a SYN; 0 when absent
	Seq, Ack         uint32   // TCP only
	HeaderLen        uint16   // TCP data offset in bytes, 8 for UDP
	// PayloadLen is the payload length the IP header declares (it may
	// exceed what was captured); for UDP the UDP length minus 8.
	PayloadLen uint16
}

// TLS holds a TLS ClientHello or ServerHello (LayerTLS).
type TLS struct {
	HandshakeType uint8  // 1 ClientHello, 2 ServerHello
	RecordVersion uint16 // version of the record layer
	LegacyVersion uint16 // the hello's legacy_version field
	// Version is the negotiated version: for a ServerHello the
	// supported_versions selection when present, else LegacyVersion; for a
	// ClientHello the highest non-GREASE supported_versions entry when
	// present, else LegacyVersion.
	Version     uint16
	CipherSuite uint16 // ServerHello only
	SNILen      uint8
	ALPNLen     uint8
	SNI         [MaxSNI]byte  // server_name (host_name), SNI[:SNILen]
	ALPN        [MaxALPN]byte // first protocol of the ALPN list, ALPN[:ALPNLen]
}

// TLS handshake types.
const (
	TLSClientHello = 1
	TLSServerHello = 2
)

// ServerName returns the SNI as a byte slice aliasing s.
func (t *TLS) ServerName() []byte { return t.SNI[:t.SNILen] }

// Protocol returns the first ALPN protocol as a byte slice aliasing s.
func (t *TLS) Protocol() []byte { return t.ALPN[:t.ALPNLen] }

// DNS holds a DNS message header and its first question (LayerDNS).
type DNS struct {
	ID       uint16
	Response bool // QR bit
	Opcode   uint8
	RCode    uint8 // header RCODE (4 bits)
	Flags    uint16
	QDCount  uint16
	ANCount  uint16
	QType    uint16 // first question; 0 when there is none
	QClass   uint16
	QNameLen uint8
	QName    [MaxQName]byte // first question's name, dotted, no final dot; "" is the root
}

// Name returns the query name as a byte slice aliasing d.
func (d *DNS) Name() []byte { return d.QName[:d.QNameLen] }

// DNS response codes.
const (
	RCodeNoError  = 0
	RCodeFormErr  = 1
	RCodeServFail = 2
	RCodeNXDomain = 3
	RCodeNotImp   = 4
	RCodeRefused  = 5
)

// HTTPMethod is an HTTP/1.x request method.
type HTTPMethod uint8

// HTTP methods: the nine of RFC 9110 and RFC 5789 by name, any other token
// method (WebDAV's PROPFIND, PURGE, ...) as MethodOther.
const (
	MethodNone HTTPMethod = iota
	MethodGet
	MethodHead
	MethodPost
	MethodPut
	MethodDelete
	MethodConnect
	MethodOptions
	MethodTrace
	MethodPatch
	MethodOther
	numMethods
)

var methodNames = [numMethods]string{"none", "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other"}

// String returns the method token ("GET"), "none", or "other".
func (m HTTPMethod) String() string {
	if m < numMethods {
		return methodNames[m]
	}
	return "other"
}

// HTTP holds the start line of an HTTP/1.x request or response (LayerHTTP).
// Bodies and headers are never stored.
type HTTP struct {
	Response     bool
	Method       HTTPMethod // requests
	Status       uint16     // responses
	VersionMinor uint8      // 0 or 1 when known (responses, and requests whose line was captured whole)
}
