// Package parser holds the per-worker Parser that decodes a frame through
// every layer into a decoders.Summary.
//
// # Usage
//
//	p, err := parser.New(parser.Config{})
//	var s decoders.Summary
//	for each frame {
//		p.Decode(frame, decoders.LinkEthernet, &s)
//		if l, r := s.ErrInfo(); r != decoders.ReasonNone { count(l, r) }
//		... read s.Layers, s.IP, s.L4, s.Tunnel ...
//	}
//
// # Concurrency
//
// A Parser belongs to one capture worker and is not safe for concurrent use;
// build one per worker. Decode never allocates.
//
// # What is decoded
//
// Link types Ethernet, Linux SLL and SLL2, raw IP (LINKTYPE_RAW, IPV4,
// IPV6, DLT_RAW 12/14) and BSD NULL/LOOP; any other link type is recorded
// as ReasonUnsupportedLinkType. Then ARP, IPv4, IPv6, ICMP, TCP and UDP;
// VXLAN and Geneve on their configured UDP destination ports are
// decapsulated (the Summary's main sections hold the inner frame, Tunnel the
// outer view); DNS on the configured ports over UDP and over TCP (with its
// 2-byte length); TLS hellos on any TCP port when the payload starts a
// handshake record; HTTP/1.x on any TCP port when the payload starts a
// request or status line. The first fragment of an IP packet is decoded
// through its transport header; later fragments stop at the IP layer. Other
// encapsulations (GRE, MPLS, PPPoE, IP in IP) stop decoding without error.
//
// # Performance
//
// The hot path is fixed-offset parsing without gopacket: Ethernet/IPv4/TCP
// decodes in about 30-40 ns with 0 allocations on the development machine
// (BenchmarkDecodeEthIPv4TCP); see BenchmarkDecodeMixedReplay for a mix of
// real captures.
package parser
