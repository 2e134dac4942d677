package parser

import (
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/internal/testutil"
)

func ipv4(src, dst net.IP, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src, DstIP: dst, Flags: layers.IPv4DontFragment}
}

func tcpTo(tb testing.TB, ip gopacket.NetworkLayer, t *layers.TCP) *layers.TCP {
	if err := t.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return t
}

func udpTo(tb testing.TB, ip gopacket.NetworkLayer, sport, dport uint16) *layers.UDP {
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := u.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return u
}

var (
	podA  = net.IPv4(10, 244, 0, 5)
	podC  = net.IPv4(10, 244, 1, 8)
	node1 = net.IPv4(10, 0, 0, 10)
	node2 = net.IPv4(10, 0, 0, 11)
)

// vxlanFrame is pod-a → pod-c TCP SYN as seen on node-1's eth0.
func vxlanFrame(tb testing.TB) []byte {
	inIP := ipv4(podA, podC, layers.IPProtocolTCP)
	inner := testutil.Build(tb, testutil.Eth(layers.EthernetTypeIPv4), inIP,
		tcpTo(tb, inIP, &layers.TCP{SrcPort: 40000, DstPort: 8080, SYN: true, Seq: 99, Window: 64000,
			Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0x82}}}}))
	outIP := ipv4(node1, node2, layers.IPProtocolUDP)
	return testutil.Build(tb, testutil.Eth(layers.EthernetTypeIPv4), outIP, udpTo(tb, outIP, 51000, 4789),
		&layers.VXLAN{ValidIDFlag: true, VNI: 1}, gopacket.Payload(inner))
}

func TestDecode(t *testing.T) {
	ip := ipv4(podA, podC, layers.IPProtocolTCP)
	synFrame := testutil.Build(t, testutil.Eth(layers.EthernetTypeIPv4), ip, tcpTo(t, ip, &layers.TCP{SrcPort: 40000, DstPort: 8080, SYN: true,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}}))
	dnsIP := ipv4(podA, net.IPv4(10, 96, 0, 10), layers.IPProtocolUDP)
	dnsFrame := testutil.Build(t, testutil.Eth(layers.EthernetTypeIPv4), dnsIP, udpTo(t, dnsIP, 53, 33000), &layers.DNS{ID: 7, QR: true,
		ResponseCode: layers.DNSResponseCodeNXDomain, Questions: []layers.DNSQuestion{{Name: []byte("typo.default.svc"), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}})
	httpIP := ipv4(podA, podC, layers.IPProtocolTCP)
	httpFrame := testutil.Build(t, testutil.Eth(layers.EthernetTypeIPv4), httpIP, tcpTo(t, httpIP, &layers.TCP{SrcPort: 40000, DstPort: 31000, ACK: true, PSH: true}),
		gopacket.Payload("DELETE /items/3 HTTP/1.1\r\n\r\n"))
	v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
	rawV6 := testutil.Build(t, v6, udpTo(t, v6, 1000, 2000))
	// Geneve carrying IPv4 directly (protocol 0x0800), VNI 77.
	inIP := ipv4(podA, podC, layers.IPProtocolUDP)
	innerPkt := testutil.Build(t, inIP, udpTo(t, inIP, 5000, 6000))
	outIP := ipv4(node1, node2, layers.IPProtocolUDP)
	geneveFrame := testutil.Build(t, testutil.Eth(layers.EthernetTypeIPv4), outIP, udpTo(t, outIP, 52000, 6081),
		gopacket.Payload(append([]byte{0, 0, 0x08, 0x00, 0, 0, 77, 0}, innerPkt...)))

	tests := []struct {
		name   string
		frame  []byte
		link   decoders.LinkType
		layers decoders.Layer
		reason decoders.Reason
		check  func(t *testing.T, s *decoders.Summary)
	}{
		{"syn", synFrame, decoders.LinkEthernet, decoders.LayerEthernet | decoders.LayerIPv4 | decoders.LayerTCP, 0, func(t *testing.T, s *decoders.Summary) {
			if s.L4.MSS != 1460 || !s.L4.Flags.Has(decoders.TCPSyn) || s.IP.Src != netip.MustParseAddr("10.244.0.5") || !s.IP.DF {
				t.Fatalf("%+v %+v", s.L4, s.IP)
			}
		}},
		{"vxlan", vxlanFrame(t), decoders.LinkEthernet, decoders.LayerEthernet | decoders.LayerIPv4 | decoders.LayerTCP | decoders.LayerVXLAN, 0, func(t *testing.T, s *decoders.Summary) {
			tu := s.Tunnel
			if tu.Kind != decoders.TunnelVXLAN || tu.VNI != 1 || tu.Depth != 1 || tu.OuterSrc != netip.MustParseAddr("10.0.0.10") ||
				tu.OuterDst != netip.MustParseAddr("10.0.0.11") || tu.OuterDstPort != 4789 || tu.OuterSrcPort != 51000 {
				t.Fatalf("tunnel %+v", tu)
			}
			if s.IP.Src != netip.MustParseAddr("10.244.0.5") || s.IP.Dst != netip.MustParseAddr("10.244.1.8") || s.L4.DstPort != 8080 || s.L4.MSS != 1410 {
				t.Fatalf("inner view %+v %+v", s.IP, s.L4)
			}
			if s.Layers.Has(decoders.LayerUDP) {
				t.Fatal("outer UDP left in the main view")
			}
		}},
		{"geneve ipv4 payload", geneveFrame, decoders.LinkEthernet, decoders.LayerIPv4 | decoders.LayerUDP | decoders.LayerGeneve, 0, func(t *testing.T, s *decoders.Summary) {
			if s.Tunnel.VNI != 77 || s.Tunnel.Kind != decoders.TunnelGeneve || s.L4.DstPort != 6000 || s.Layers.Has(decoders.LayerEthernet) {
				t.Fatalf("tunnel %+v l4 %+v layers %b", s.Tunnel, s.L4, s.Layers)
			}
		}},
		{"dns nxdomain", dnsFrame, decoders.LinkEthernet, decoders.LayerUDP | decoders.LayerDNS, 0, func(t *testing.T, s *decoders.Summary) {
			if !s.DNS.Response || s.DNS.RCode != decoders.RCodeNXDomain || string(s.DNS.Name()) != "typo.default.svc" {
				t.Fatalf("%+v", s.DNS)
			}
		}},
		{"http on any port", httpFrame, decoders.LinkEthernet, decoders.LayerTCP | decoders.LayerHTTP, 0, func(t *testing.T, s *decoders.Summary) {
			if s.HTTP.Method != decoders.MethodDelete {
				t.Fatalf("%+v", s.HTTP)
			}
		}},
		{"raw ipv6", rawV6, decoders.LinkRaw, decoders.LayerIPv6 | decoders.LayerUDP, 0, nil},
		{"ipv6 link type", rawV6, decoders.LinkIPv6, decoders.LayerIPv6 | decoders.LayerUDP, 0, nil},
		{"null ipv6", append([]byte{30, 0, 0, 0}, rawV6...), decoders.LinkNull, decoders.LayerIPv6 | decoders.LayerUDP, 0, nil},
		{"unsupported link", synFrame, decoders.LinkType(105), 0, decoders.ReasonUnsupportedLinkType, nil},
		{"cut tcp", synFrame[:40], decoders.LinkEthernet, decoders.LayerIPv4, decoders.ReasonTruncated, nil},
	}
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var s decoders.Summary
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.Decode(tt.frame, tt.link, &s) // one Summary reused across cases, as workers do
			if !s.Layers.Has(tt.layers) {
				t.Fatalf("layers %b, want %b (err %v)", s.Layers, tt.layers, s.Err())
			}
			if _, r := s.ErrInfo(); r != tt.reason {
				t.Fatalf("reason %v, want %v", r, tt.reason)
			}
			if tt.reason != decoders.ReasonNone && !errors.Is(s.Err(), tt.reason.Err()) {
				t.Fatalf("Err %v", s.Err())
			}
			if tt.check != nil {
				tt.check(t, &s)
			}
			if err := checkInvariants(tt.frame, &s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{VXLANPorts: make([]uint16, 9)}); !errors.Is(err, ErrTooManyPorts) {
		t.Fatalf("9 ports: %v", err)
	}
	if _, err := New(Config{DNSPorts: []uint16{0}}); !errors.Is(err, ErrBadPort) {
		t.Fatalf("port 0: %v", err)
	}
	if _, err := New(Config{MaxTunnels: -1}); !errors.Is(err, ErrBadMaxTunnels) {
		t.Fatalf("negative tunnels: %v", err)
	}
	// Flannel's VXLAN port is decoded only when configured.
	frame := vxlanFrame(t)
	frame[14+20+2], frame[14+20+3] = 0x21, 0x18 // UDP dst 8472
	var s decoders.Summary
	def, _ := New(Config{})
	def.Decode(frame, decoders.LinkEthernet, &s)
	if s.Layers.Has(decoders.LayerVXLAN) {
		t.Fatal("8472 decoded as VXLAN by default")
	}
	fl, err := New(Config{VXLANPorts: []uint16{4789, 8472}})
	if err != nil {
		t.Fatal(err)
	}
	fl.Decode(frame, decoders.LinkEthernet, &s)
	if !s.Layers.Has(decoders.LayerVXLAN | decoders.LayerTCP) {
		t.Fatalf("8472 not decoded when configured: %b", s.Layers)
	}
	noApp, _ := New(Config{SkipApplication: true})
	noApp.Decode(frame, decoders.LinkEthernet, &s)
	if s.Layers&(decoders.LayerDNS|decoders.LayerHTTP|decoders.LayerTLS) != 0 {
		t.Fatal("application decoded with SkipApplication")
	}
}

func TestDecodeAllocs(t *testing.T) {
	p, _ := New(Config{})
	frame := vxlanFrame(t)
	var s decoders.Summary
	if n := testing.AllocsPerRun(1000, func() { p.Decode(frame, decoders.LinkEthernet, &s) }); n != 0 {
		t.Fatalf("%v allocs per decode", n)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(vxlanFrame(f), uint16(decoders.LinkEthernet))
	if dir, ok := pcapDirIfPresent(); ok {
		for _, name := range replayFiles {
			fs, _ := testutil.ReadFile(dir + "/" + name)
			for _, fr := range fs {
				f.Add(fr.Data, uint16(fr.Link))
			}
		}
	}
	for _, name := range fidelityFiles {
		fs, _ := testutil.ReadFile(filepath.Join(fidelityDir(f), name))
		for _, fr := range fs {
			f.Add(fr.Data, uint16(fr.Link))
		}
	}
	p, _ := New(Config{VXLANPorts: []uint16{4789, 8472}})
	f.Fuzz(func(t *testing.T, data []byte, link uint16) {
		var s decoders.Summary
		p.Decode(data, decoders.LinkType(link), &s)
		if err := checkInvariants(data, &s); err != nil {
			t.Fatal(err)
		}
	})
}
