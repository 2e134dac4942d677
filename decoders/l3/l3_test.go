package l3

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/internal/testutil"
)

var (
	src4 = net.IPv4(10, 244, 0, 5)
	dst4 = net.IPv4(10, 244, 1, 8)
	src6 = net.ParseIP("fd00::5")
	dst6 = net.ParseIP("fd00::8")
)

func udp(tb testing.TB, nl gopacket.NetworkLayer) *layers.UDP {
	u := &layers.UDP{SrcPort: 5000, DstPort: 53}
	if err := u.SetNetworkLayerForChecksum(nl); err != nil {
		tb.Fatal(err)
	}
	return u
}

func ipv4UDP(tb testing.TB, ip *layers.IPv4) []byte {
	return testutil.Build(tb, ip, udp(tb, ip), gopacket.Payload(make([]byte, 12)))
}

// fragNeeded builds an ICMP fragmentation-needed quoting a TCP packet.
func fragNeeded(tb testing.TB) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 63, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment, SrcIP: src4, DstIP: dst4}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 8080, Seq: 1, Window: 100}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	inner := testutil.Build(tb, ip, tcp)
	return testutil.Build(tb, &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IPv4(10, 0, 0, 1), DstIP: src4},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1450}, gopacket.Payload(inner))
}

func TestIPv4(t *testing.T) {
	tests := []struct {
		name     string
		pkt      []byte
		reason   decoders.Reason
		next     bool
		frag     bool
		df, mf   bool
		offset   uint16
		hdrLen   uint16
		wireLen  int
		payloadN int
	}{
		{name: "udp df", pkt: ipv4UDP(t, &layers.IPv4{Version: 4, TTL: 64, Id: 7, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP, SrcIP: src4, DstIP: dst4}),
			next: true, df: true, hdrLen: 20, wireLen: 20, payloadN: 20},
		{name: "first fragment", pkt: ipv4UDP(t, &layers.IPv4{Version: 4, TTL: 64, Id: 7, Flags: layers.IPv4MoreFragments, Protocol: layers.IPProtocolUDP, SrcIP: src4, DstIP: dst4}),
			next: true, frag: true, mf: true, hdrLen: 20, wireLen: 20, payloadN: 20},
		{name: "later fragment", pkt: ipv4UDP(t, &layers.IPv4{Version: 4, TTL: 64, Id: 7, FragOffset: 185, Protocol: layers.IPProtocolUDP, SrcIP: src4, DstIP: dst4}),
			next: false, frag: true, offset: 1480, hdrLen: 20, wireLen: 20, payloadN: 20},
		{name: "options", pkt: ipv4UDP(t, &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src4, DstIP: dst4,
			Options: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}}),
			next: true, hdrLen: 24, wireLen: 20, payloadN: 20},
		{name: "ethernet padding", pkt: append(ipv4UDP(t, &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src4, DstIP: dst4}), 0, 0, 0, 0),
			next: true, hdrLen: 20, wireLen: 20, payloadN: 20},
		{name: "truncated", pkt: make([]byte, 19), reason: decoders.ReasonTruncated},
		{name: "bad version", pkt: append([]byte{0x65}, make([]byte, 39)...), reason: decoders.ReasonBadVersion},
		{name: "bad ihl", pkt: append([]byte{0x44}, make([]byte, 39)...), reason: decoders.ReasonBadHeaderLength},
		{name: "ihl beyond data", pkt: append([]byte{0x4f}, make([]byte, 39)...), reason: decoders.ReasonTruncated},
		{name: "total length below header", pkt: append([]byte{0x45, 0, 0, 10}, make([]byte, 36)...), reason: decoders.ReasonBadLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s decoders.Summary
			proto, payload, wireLen, next := IPv4(tt.pkt, &s)
			if _, r := s.ErrInfo(); r != tt.reason {
				t.Fatalf("reason %v, want %v", r, tt.reason)
			}
			if tt.reason != decoders.ReasonNone {
				if next || !errors.Is(s.Err(), tt.reason.Err()) {
					t.Fatalf("next %v err %v", next, s.Err())
				}
				return
			}
			ip := s.IP
			if next != tt.next || proto != decoders.ProtoUDP || ip.DF != tt.df || ip.MF != tt.mf || ip.FragOffset != tt.offset ||
				s.Layers.Has(decoders.LayerFragment) != tt.frag || ip.HeaderLen != tt.hdrLen || wireLen != tt.wireLen || len(payload) != tt.payloadN {
				t.Fatalf("next %v proto %d ip %+v wire %d payload %d layers %b", next, proto, ip, wireLen, len(payload), s.Layers)
			}
			if ip.Src != netip.MustParseAddr("10.244.0.5") || ip.Dst != netip.MustParseAddr("10.244.1.8") || ip.TTL != 64 {
				t.Fatalf("addresses %v %v ttl %d", ip.Src, ip.Dst, ip.TTL)
			}
		})
	}
}

func TestIPv6(t *testing.T) {
	base := func() *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: 60, NextHeader: layers.IPProtocolUDP, SrcIP: src6, DstIP: dst6}
	}
	plain := base()
	hbh := base()
	hbh.NextHeader = layers.IPProtocolIPv6HopByHop
	hbhHdr := &layers.IPv6HopByHop{}
	hbhHdr.NextHeader = layers.IPProtocolUDP
	hbhHdr.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}}
	fragPkt := func(offset uint16, more bool) []byte {
		ip := base()
		ip.NextHeader = layers.IPProtocolIPv6Fragment
		// Fragment header: next UDP, offset, M flag, identification 0x01020304.
		fo := offset<<3 | map[bool]uint16{true: 1}[more]
		fh := []byte{byte(layers.IPProtocolUDP), 0, byte(fo >> 8), byte(fo), 1, 2, 3, 4}
		return testutil.Build(t, ip, gopacket.Payload(append(fh, make([]byte, 16)...)))
	}
	tests := []struct {
		name    string
		pkt     []byte
		reason  decoders.Reason
		next    bool
		frag    bool
		offset  uint16
		hdrLen  uint16
		wireLen int
	}{
		{name: "udp", pkt: testutil.Build(t, plain, udp(t, plain), gopacket.Payload(make([]byte, 4))), next: true, hdrLen: 40, wireLen: 12},
		{name: "hop by hop", pkt: testutil.Build(t, hbh, hbhHdr, udp(t, hbh), gopacket.Payload(make([]byte, 4))), next: true, hdrLen: 48, wireLen: 12},
		{name: "first fragment", pkt: fragPkt(0, true), next: true, frag: true, hdrLen: 48, wireLen: 16},
		{name: "later fragment", pkt: fragPkt(100, false), next: false, frag: true, offset: 800, hdrLen: 48, wireLen: 16},
		{name: "truncated", pkt: make([]byte, 39), reason: decoders.ReasonTruncated},
		{name: "bad version", pkt: append([]byte{0x40}, make([]byte, 39)...), reason: decoders.ReasonBadVersion},
		{name: "cut extension header", pkt: fragPkt(0, true)[:44], reason: decoders.ReasonTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s decoders.Summary
			proto, _, wireLen, next := IPv6(tt.pkt, &s)
			if _, r := s.ErrInfo(); r != tt.reason {
				t.Fatalf("reason %v, want %v", r, tt.reason)
			}
			if tt.reason != decoders.ReasonNone {
				if next || !errors.Is(s.Err(), tt.reason.Err()) {
					t.Fatalf("next %v err %v", next, s.Err())
				}
				return
			}
			ip := s.IP
			if next != tt.next || proto != decoders.ProtoUDP || ip.FragHeader != tt.frag || ip.FragOffset != tt.offset ||
				ip.HeaderLen != tt.hdrLen || wireLen != tt.wireLen || s.Layers.Has(decoders.LayerFragment) != tt.frag {
				t.Fatalf("next %v proto %d ip %+v wire %d", next, proto, ip, wireLen)
			}
			if tt.frag && (ip.ID != 0x01020304 || ip.MF != (tt.offset == 0)) {
				t.Fatalf("fragment id %#x mf %v", ip.ID, ip.MF)
			}
			if ip.Src != netip.MustParseAddr("fd00::5") || ip.TTL != 60 {
				t.Fatalf("src %v hop limit %d", ip.Src, ip.TTL)
			}
		})
	}
}

func TestICMPv4FragNeeded(t *testing.T) {
	var s decoders.Summary
	proto, payload, _, next := IPv4(fragNeeded(t), &s)
	if !next || proto != decoders.ProtoICMP {
		t.Fatalf("ip: next %v proto %d", next, proto)
	}
	if !ICMPv4(payload, &s) {
		t.Fatal(s.Err())
	}
	c := s.ICMP
	if c.Type != 3 || c.Code != 4 || c.MTU != 1450 || !c.Quoted || !c.InnerPorts || c.InnerProto != decoders.ProtoTCP ||
		c.InnerSrc != netip.MustParseAddr("10.244.0.5") || c.InnerDst != netip.MustParseAddr("10.244.1.8") ||
		c.InnerSrcPort != 40000 || c.InnerDstPort != 8080 {
		t.Fatalf("icmp %+v", c)
	}
	var s2 decoders.Summary
	if ICMPv4(payload[:7], &s2) || !errors.Is(s2.Err(), decoders.ErrTruncated) {
		t.Fatalf("short icmp: %v", s2.Err())
	}
	var s3 decoders.Summary
	if !ICMPv4(payload[:8+10], &s3) || s3.ICMP.Quoted {
		t.Fatalf("cut quote must decode without the inner header: %+v", s3.ICMP)
	}
}

func TestICMPv6PacketTooBig(t *testing.T) {
	innerIP := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: src6, DstIP: dst6}
	inner := testutil.Build(t, innerIP, udp(t, innerIP))
	outer := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: net.ParseIP("fd00::1"), DstIP: src6}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(2, 0)}
	if err := icmp.SetNetworkLayerForChecksum(outer); err != nil {
		t.Fatal(err)
	}
	body := append([]byte{0, 0, 0x05, 0xaa}, inner...) // MTU 1450
	pkt := testutil.Build(t, outer, icmp, gopacket.Payload(body))
	var s decoders.Summary
	proto, payload, _, next := IPv6(pkt, &s)
	if !next || proto != decoders.ProtoICMPv6 || !ICMPv6(payload, &s) {
		t.Fatalf("decode: %v", s.Err())
	}
	c := s.ICMP
	if c.Type != 2 || c.MTU != 1450 || !c.Quoted || c.InnerProto != decoders.ProtoUDP || c.InnerDstPort != 53 || c.InnerDst != netip.MustParseAddr("fd00::8") {
		t.Fatalf("icmpv6 %+v", c)
	}
}

func BenchmarkIPv4(b *testing.B) {
	pkt := ipv4UDP(b, &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src4, DstIP: dst4})
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		IPv4(pkt, &s)
	}
}

func BenchmarkIPv6(b *testing.B) {
	ip := &layers.IPv6{Version: 6, HopLimit: 60, NextHeader: layers.IPProtocolUDP, SrcIP: src6, DstIP: dst6}
	pkt := testutil.Build(b, ip, udp(b, ip))
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		IPv6(pkt, &s)
	}
}

func BenchmarkICMPv4Quoted(b *testing.B) {
	pkt := fragNeeded(b)[20:]
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		ICMPv4(pkt, &s)
	}
}

func FuzzL3(f *testing.F) {
	f.Add(fragNeeded(f))
	f.Add(ipv4UDP(f, &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4MoreFragments, Protocol: layers.IPProtocolUDP, SrcIP: src4, DstIP: dst4}))
	ip := &layers.IPv6{Version: 6, HopLimit: 60, NextHeader: layers.IPProtocolICMPv6, SrcIP: src6, DstIP: dst6}
	f.Add(testutil.Build(f, ip, gopacket.Payload([]byte{2, 0, 0, 0, 0, 0, 5, 0xaa})))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s decoders.Summary
		var proto uint8
		var payload []byte
		var wireLen int
		var next bool
		if len(data) > 0 && data[0]>>4 == 6 {
			proto, payload, wireLen, next = IPv6(data, &s)
		} else {
			proto, payload, wireLen, next = IPv4(data, &s)
		}
		if s.Err() != nil && next {
			t.Fatalf("next with error %v", s.Err())
		}
		if s.Layers&(decoders.LayerIPv4|decoders.LayerIPv6) != 0 {
			if int(s.IP.HeaderLen) > len(data) {
				t.Fatalf("header length %d beyond %d bytes", s.IP.HeaderLen, len(data))
			}
			if len(payload) > len(data) || wireLen < 0 {
				t.Fatalf("payload %d wire %d of %d bytes", len(payload), wireLen, len(data))
			}
		}
		if !next {
			return
		}
		switch proto {
		case decoders.ProtoICMP:
			ICMPv4(payload, &s)
		case decoders.ProtoICMPv6:
			ICMPv6(payload, &s)
		}
		if s.ICMP.Quoted && s.Layers&(decoders.LayerICMPv4|decoders.LayerICMPv6) != 0 && !s.ICMP.InnerSrc.IsValid() {
			t.Fatal("quoted header without inner source")
		}
	})
}
