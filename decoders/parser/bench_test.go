package parser

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/internal/testutil"
)

func ethIPv4TCP(tb testing.TB) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: net.IPv4(10, 244, 0, 5), DstIP: net.IPv4(10, 244, 1, 8)}
	tcp := &layers.TCP{SrcPort: 43210, DstPort: 8080, Seq: 1000, Ack: 2000, ACK: true, PSH: true, Window: 502,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	payload := make([]byte, 100)
	return testutil.Build(tb, testutil.Eth(layers.EthernetTypeIPv4), ip, tcp, gopacket.Payload(payload))
}

func BenchmarkDecodeEthIPv4TCP(b *testing.B) {
	frame := ethIPv4TCP(b)
	p, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	var s decoders.Summary
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		p.Decode(frame, decoders.LinkEthernet, &s)
	}
	if !s.Layers.Has(decoders.LayerTCP) {
		b.Fatalf("TCP not decoded: %v", s.Err())
	}
}

// replayFiles are captures of varied traffic decoded by the mixed-replay
// benchmark: TCP, UDP, DNS, ICMP, IPv6, VXLAN, Geneve, fragments, TLS, HTTP.
var replayFiles = []string{
	"print-flags.pcap", "dns_tcp.pcap", "dns_udp.pcap", "icmpv6.pcap", "vxlan.pcap", "geneve.pcap",
	"ipv4_tcp_http_xml.pcap", "tcp-handshake-nano.pcap", "mptcp-v1.pcap", "bigtcp-ipv4-vxlan-ipv6.pcap", "ip6_frag_asan.pcap", "arp-too-long-tha.pcap",
}

func BenchmarkDecodeMixedReplay(b *testing.B) {
	dir := testutil.PcapDir(b)
	var frames []testutil.Frame
	for _, name := range replayFiles {
		fs, err := testutil.ReadFile(filepath.Join(dir, name))
		if err != nil && len(fs) == 0 {
			b.Fatalf("%s: %v", name, err)
		}
		frames = append(frames, fs...)
	}
	if len(frames) == 0 {
		b.Fatal("no frames")
	}
	p, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	var s decoders.Summary
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range frames {
			p.Decode(frames[i].Data, frames[i].Link, &s)
		}
		n += len(frames)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/packet")
	b.ReportMetric(float64(len(frames)), "frames")
}
