package parser

import (
	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/l2"
	"github.com/layerscope/layerscope/decoders/l3"
	"github.com/layerscope/layerscope/decoders/l4"
	"github.com/layerscope/layerscope/decoders/l6"
	"github.com/layerscope/layerscope/decoders/l7"
)

// maxPorts is the number of ports each port set holds.
const maxPorts = 8

// Config configures a Parser. The zero value means the defaults.
type Config struct {
	// VXLANPorts are the UDP destination ports decoded as VXLAN. Empty
	// means {4789} (IANA). Flannel and Linux's historical default use 8472.
	VXLANPorts []uint16
	// GenevePorts are the UDP destination ports decoded as Geneve. Empty
	// means {6081}.
	GenevePorts []uint16
	// DNSPorts are the UDP or TCP ports (source or destination) decoded as
	// DNS. Empty means {53, 5353}.
	DNSPorts []uint16
	// MaxTunnels is the number of nested tunnel headers decapsulated. 0
	// means 2; beyond it the frame is counted as ReasonTooManyHeaders.
	MaxTunnels int
	// SkipApplication turns off L6/L7 decoding (TLS, DNS, HTTP).
	SkipApplication bool
}

// portSet is a small fixed set of ports, scanned linearly.
type portSet struct {
	n     int
	ports [maxPorts]uint16
}

func newPortSet(ports, def []uint16) (portSet, error) {
	if len(ports) == 0 {
		ports = def
	}
	if len(ports) > maxPorts {
		return portSet{}, ErrTooManyPorts
	}
	var ps portSet
	for _, p := range ports {
		if p == 0 {
			return portSet{}, ErrBadPort
		}
		ps.ports[ps.n] = p
		ps.n++
	}
	return ps, nil
}

func (ps *portSet) has(p uint16) bool {
	for i := 0; i < ps.n; i++ {
		if ps.ports[i] == p {
			return true
		}
	}
	return false
}

// Parser decodes frames into a decoders.Summary. It holds no per-frame state
// beyond its configuration, but it is meant to be owned by one capture
// worker: it is not safe for concurrent use (future caches may rely on it).
type Parser struct {
	vxlan, geneve, dns portSet
	maxTunnels         int
	noApp              bool
}

// New returns a Parser for cfg.
func New(cfg Config) (*Parser, error) {
	p := &Parser{noApp: cfg.SkipApplication, maxTunnels: cfg.MaxTunnels}
	var err error
	if p.vxlan, err = newPortSet(cfg.VXLANPorts, []uint16{4789}); err != nil {
		return nil, err
	}
	if p.geneve, err = newPortSet(cfg.GenevePorts, []uint16{6081}); err != nil {
		return nil, err
	}
	if p.dns, err = newPortSet(cfg.DNSPorts, []uint16{53, 5353}); err != nil {
		return nil, err
	}
	if p.maxTunnels < 0 {
		return nil, ErrBadMaxTunnels
	}
	if p.maxTunnels == 0 {
		p.maxTunnels = 2
	}
	return p, nil
}

// Decode decodes data, a frame starting with a header of linkType, into s.
// s is Reset first. Decoding never allocates and never panics; it stops at
// the first unknown protocol (not an error) or malformed header (recorded in
// s, see Summary.Err). s holds no reference to data afterwards.
func (p *Parser) Decode(data []byte, linkType decoders.LinkType, s *decoders.Summary) {
	s.Reset()
	var (
		etype uint16
		off   int
		ok    bool
	)
	switch linkType {
	case decoders.LinkEthernet:
		etype, off, ok = l2.Ethernet(data, s)
	case decoders.LinkLinuxSLL:
		etype, off, ok = l2.LinuxSLL(data, s)
	case decoders.LinkLinuxSLL2:
		etype, off, ok = l2.LinuxSLL2(data, s)
	case decoders.LinkRaw, decoders.LinkRawDLT, decoders.LinkRawDLT14, decoders.LinkIPv4, decoders.LinkIPv6:
		etype, ok = rawType(data, linkType, s)
	case decoders.LinkNull:
		etype, off, ok = l2.Null(data, s, false)
	case decoders.LinkLoop:
		etype, off, ok = l2.Null(data, s, true)
	default:
		s.Fail(decoders.OSIL2, decoders.ReasonUnsupportedLinkType)
		return
	}
	if ok {
		p.network(data[off:], etype, 0, s)
	}
}

// rawType picks the EtherType of a raw IP frame from its version nibble.
func rawType(data []byte, lt decoders.LinkType, s *decoders.Summary) (uint16, bool) {
	switch lt {
	case decoders.LinkIPv4:
		return decoders.EtherTypeIPv4, true
	case decoders.LinkIPv6:
		return decoders.EtherTypeIPv6, true
	}
	if len(data) < 1 {
		s.Fail(decoders.OSIL3, decoders.ReasonTruncated)
		return 0, false
	}
	switch data[0] >> 4 {
	case 4:
		return decoders.EtherTypeIPv4, true
	case 6:
		return decoders.EtherTypeIPv6, true
	}
	s.Fail(decoders.OSIL3, decoders.ReasonBadVersion)
	return 0, false
}

// network decodes from the network layer down. depth counts the tunnels
// already decapsulated.
func (p *Parser) network(data []byte, etype uint16, depth int, s *decoders.Summary) {
	var (
		proto   uint8
		payload []byte
		wireLen int
		next    bool
	)
	switch etype {
	case decoders.EtherTypeIPv4:
		proto, payload, wireLen, next = l3.IPv4(data, s)
	case decoders.EtherTypeIPv6:
		proto, payload, wireLen, next = l3.IPv6(data, s)
	case decoders.EtherTypeARP:
		l2.ARP(data, s)
		return
	default:
		return
	}
	if !next {
		return
	}
	switch proto {
	case decoders.ProtoTCP:
		pl, ok := l4.TCP(payload, wireLen, s)
		if ok && len(pl) > 0 && !p.noApp {
			p.tcpApp(pl, s)
		}
	case decoders.ProtoUDP:
		pl, ok := l4.UDP(payload, wireLen, s)
		if ok {
			p.udpApp(pl, depth, s)
		}
	case decoders.ProtoICMP:
		if s.IP.Family == 4 {
			l3.ICMPv4(payload, s)
		}
	case decoders.ProtoICMPv6:
		if s.IP.Family == 6 {
			l3.ICMPv6(payload, s)
		}
	}
}

func (p *Parser) tcpApp(pl []byte, s *decoders.Summary) {
	if p.dns.has(s.L4.SrcPort) || p.dns.has(s.L4.DstPort) {
		l7.DNSOverTCP(pl, s)
		return
	}
	if l6.IsRecord(pl) {
		l6.TLS(pl, s)
		return
	}
	l7.HTTP(pl, s)
}

// mainView are the Layer bits of the main (innermost) view, cleared when a
// tunnel is decapsulated.
const mainView = decoders.LayerEthernet | decoders.LayerVLAN | decoders.LayerARP |
	decoders.LayerIPv4 | decoders.LayerIPv6 | decoders.LayerFragment |
	decoders.LayerICMPv4 | decoders.LayerICMPv6 | decoders.LayerTCP | decoders.LayerUDP

func (p *Parser) udpApp(pl []byte, depth int, s *decoders.Summary) {
	dport := s.L4.DstPort
	vx, gn := p.vxlan.has(dport), p.geneve.has(dport)
	if vx || gn {
		p.decap(pl, vx, depth, s)
		return
	}
	if !p.noApp && (p.dns.has(dport) || p.dns.has(s.L4.SrcPort)) {
		l7.DNS(pl, s)
	}
}

// decap decodes a VXLAN (vx) or Geneve tunnel header and the frame inside.
// The outermost tunnel's outer view is kept in s.Tunnel.
func (p *Parser) decap(pl []byte, vx bool, depth int, s *decoders.Summary) {
	if depth >= p.maxTunnels {
		s.Fail(decoders.OSIL4, decoders.ReasonTooManyHeaders)
		return
	}
	outer := s.Tunnel
	if depth == 0 {
		outer = decoders.Tunnel{
			OuterSrc: s.IP.Src, OuterDst: s.IP.Dst, OuterTTL: s.IP.TTL,
			OuterSrcPort: s.L4.SrcPort, OuterDstPort: s.L4.DstPort,
			OuterFragment: s.Layers.Has(decoders.LayerFragment),
		}
		if s.Layers&decoders.LayerVLAN != 0 {
			outer.OuterVLANs, outer.OuterNumVLANs = s.Eth.VLANs, s.Eth.NumVLANs
		}
	}
	var (
		inner []byte
		proto uint16 = decoders.EtherTypeTEB
		ok    bool
	)
	if vx {
		inner, ok = l4.VXLAN(pl, s)
	} else {
		inner, proto, ok = l4.Geneve(pl, s)
	}
	if !ok {
		return
	}
	if depth == 0 {
		outer.Kind, outer.VNI, outer.InnerProto = s.Tunnel.Kind, s.Tunnel.VNI, s.Tunnel.InnerProto
	}
	outer.Depth = uint8(depth + 1)
	s.Tunnel = outer
	s.Layers &^= mainView
	if proto == decoders.EtherTypeTEB {
		etype, off, ok := l2.Ethernet(inner, s)
		if !ok {
			return
		}
		inner = inner[off:]
		proto = etype
	}
	p.network(inner, proto, depth+1, s)
}
