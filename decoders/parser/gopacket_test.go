package parser

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/internal/testutil"
)

func addr(ip net.IP) netip.Addr {
	if ip4 := ip.To4(); ip4 != nil && len(ip) == 4 {
		return netip.AddrFrom4([4]byte(ip4))
	}
	a, _ := netip.AddrFromSlice(ip)
	return a
}

// gopacketMain returns gopacket's layers of the main view: those after the last
// VXLAN or Geneve header, or all of them.
func gopacketMain(pkt gopacket.Packet) []gopacket.Layer {
	ls := pkt.Layers()
	for i := len(ls) - 1; i >= 0; i-- {
		if t := ls[i].LayerType(); t == layers.LayerTypeVXLAN || t == layers.LayerTypeGeneve {
			return ls[i+1:]
		}
	}
	return ls
}

// compareGopacket compares the main view of s with gopacket's decode of the
// same frame, layer by layer, up to the first layer gopacket could not
// decode. It returns a description of the first difference.
func compareGopacket(data []byte, lt decoders.LinkType, s *decoders.Summary) string {
	pkt := gopacket.NewPacket(data, layers.LinkType(lt), gopacket.Default)
	if pkt.ErrorLayer() != nil {
		// gopacket keeps partly decoded layers of a failed decode: there
		// is nothing reliable to compare with.
		return ""
	}
	var netSeen bool
	for _, l := range gopacketMain(pkt) {
		if !compared[l.LayerType()] {
			// A protocol layerscope does not decode (MPLS, GRE, PPP,
			// LLC, IP in IP, ...): the views diverge from here.
			return ""
		}
		switch g := l.(type) {
		case *layers.Ethernet:
			if netSeen {
				return ""
			}
			if !s.Layers.Has(decoders.LayerEthernet) || s.Eth.Src != [6]byte(g.SrcMAC) || s.Eth.Dst != [6]byte(g.DstMAC) {
				return fmt.Sprintf("ethernet: ours %x>%x, gopacket %v>%v", s.Eth.Src, s.Eth.Dst, g.SrcMAC, g.DstMAC)
			}
		case *layers.ARP:
			if !s.Layers.Has(decoders.LayerARP) || s.ARP.Op != g.Operation {
				return fmt.Sprintf("arp: ours %v op %d, gopacket op %d", s.Layers.Has(decoders.LayerARP), s.ARP.Op, g.Operation)
			}
			if g.AddrType == layers.LinkTypeEthernet && g.Protocol == layers.EthernetTypeIPv4 && g.HwAddressSize == 6 && g.ProtAddressSize == 4 &&
				(s.ARP.SenderIP != addr(g.SourceProtAddress) || s.ARP.TargetIP != addr(g.DstProtAddress) || s.ARP.SenderMAC != [6]byte(g.SourceHwAddress)) {
				return fmt.Sprintf("arp addresses: ours %v>%v, gopacket %v>%v", s.ARP.SenderIP, s.ARP.TargetIP, g.SourceProtAddress, g.DstProtAddress)
			}
		case *layers.IPv4:
			if netSeen {
				return "" // IP in IP: not decoded by layerscope
			}
			if g.Version != 4 {
				return "" // gopacket does not check the version nibble
			}
			netSeen = true
			ip := s.IP
			if !s.Layers.Has(decoders.LayerIPv4) || ip.Src != addr(g.SrcIP) || ip.Dst != addr(g.DstIP) || ip.TTL != g.TTL ||
				ip.ID != uint32(g.Id) || ip.Proto != uint8(g.Protocol) || ip.FragOffset != g.FragOffset*8 ||
				ip.DF != (g.Flags&layers.IPv4DontFragment != 0) || ip.MF != (g.Flags&layers.IPv4MoreFragments != 0) || int(ip.HeaderLen) != int(g.IHL)*4 {
				return fmt.Sprintf("ipv4: ours %v %+v, gopacket %v>%v ttl %d id %d proto %d frag %d flags %v ihl %d",
					s.Layers.Has(decoders.LayerIPv4), ip, g.SrcIP, g.DstIP, g.TTL, g.Id, g.Protocol, g.FragOffset, g.Flags, g.IHL)
			}
		case *layers.IPv6:
			if netSeen {
				return ""
			}
			if g.Version != 6 {
				return ""
			}
			netSeen = true
			if !s.Layers.Has(decoders.LayerIPv6) || s.IP.Src != addr(g.SrcIP) || s.IP.Dst != addr(g.DstIP) || s.IP.TTL != g.HopLimit {
				return fmt.Sprintf("ipv6: ours %v %v>%v, gopacket %v>%v", s.Layers.Has(decoders.LayerIPv6), s.IP.Src, s.IP.Dst, g.SrcIP, g.DstIP)
			}
		case *layers.IPv6Fragment:
			if !s.IP.FragHeader || s.IP.ID != g.Identification || s.IP.FragOffset != g.FragmentOffset*8 || s.IP.MF != g.MoreFragments {
				return fmt.Sprintf("ipv6 fragment: ours %+v, gopacket id %d off %d more %v", s.IP, g.Identification, g.FragmentOffset, g.MoreFragments)
			}
			if g.FragmentOffset != 0 {
				return ""
			}
		case *layers.TCP:
			t := s.L4
			if !s.Layers.Has(decoders.LayerTCP) || t.SrcPort != uint16(g.SrcPort) || t.DstPort != uint16(g.DstPort) ||
				t.Seq != g.Seq || t.Ack != g.Ack || t.Window != g.Window || t.Flags.Has(decoders.TCPSyn) != g.SYN ||
				t.Flags.Has(decoders.TCPRst) != g.RST || t.Flags.Has(decoders.TCPFin) != g.FIN || t.Flags.Has(decoders.TCPAck) != g.ACK ||
				int(t.HeaderLen) != int(g.DataOffset)*4 {
				return fmt.Sprintf("tcp: ours %v %+v, gopacket %d>%d seq %d", s.Layers.Has(decoders.LayerTCP), t, g.SrcPort, g.DstPort, g.Seq)
			}
			if g.SYN {
				var mss uint16
				for _, o := range g.Options {
					if o.OptionType == layers.TCPOptionKindMSS && len(o.OptionData) == 2 {
						mss = uint16(o.OptionData[0])<<8 | uint16(o.OptionData[1])
						break
					}
				}
				if mss != t.MSS {
					return fmt.Sprintf("tcp mss: ours %d, gopacket %d", t.MSS, mss)
				}
			}
		case *layers.UDP:
			if !s.Layers.Has(decoders.LayerUDP) && s.Tunnel.Depth == 0 || s.L4.SrcPort != uint16(g.SrcPort) || s.L4.DstPort != uint16(g.DstPort) {
				return fmt.Sprintf("udp: ours %v %d>%d, gopacket %d>%d", s.Layers.Has(decoders.LayerUDP), s.L4.SrcPort, s.L4.DstPort, g.SrcPort, g.DstPort)
			}
		case *layers.ICMPv4:
			if !s.Layers.Has(decoders.LayerICMPv4) || s.ICMP.Type != g.TypeCode.Type() || s.ICMP.Code != g.TypeCode.Code() {
				return fmt.Sprintf("icmpv4: ours %v %d/%d, gopacket %v", s.Layers.Has(decoders.LayerICMPv4), s.ICMP.Type, s.ICMP.Code, g.TypeCode)
			}
		case *layers.ICMPv6:
			if !s.Layers.Has(decoders.LayerICMPv6) || s.ICMP.Type != g.TypeCode.Type() || s.ICMP.Code != g.TypeCode.Code() {
				return fmt.Sprintf("icmpv6: ours %v %d/%d, gopacket %v", s.Layers.Has(decoders.LayerICMPv6), s.ICMP.Type, s.ICMP.Code, g.TypeCode)
			}
		case *layers.DNS:
			d := s.DNS
			if !s.Layers.Has(decoders.LayerDNS) || d.ID != g.ID || d.Response != g.QR || d.RCode != uint8(g.ResponseCode)&0x0f || // gopacket merges the OPT extended rcode; Summary keeps the header's 4 bits, like tshark's dns.flags.rcode

				d.Opcode != uint8(g.OpCode) || d.QDCount != g.QDCount || d.ANCount != g.ANCount {
				return fmt.Sprintf("dns: ours %v %+v, gopacket id %d qr %v rcode %d", s.Layers.Has(decoders.LayerDNS), d, g.ID, g.QR, g.ResponseCode)
			}
			if len(g.Questions) > 0 && (d.QType != uint16(g.Questions[0].Type) || !bytes.Equal(d.Name(), g.Questions[0].Name)) {
				return fmt.Sprintf("dns question: ours %q/%d, gopacket %q/%d", d.Name(), d.QType, g.Questions[0].Name, g.Questions[0].Type)
			}
		case *layers.VXLAN, *layers.Geneve:
		case gopacket.ErrorLayer:
			return ""
		}
	}
	return ""
}

// compared are the gopacket layer types whose fields are compared; any other
// layer ends the comparison of a frame.
var compared = map[gopacket.LayerType]bool{
	layers.LayerTypeEthernet: true, layers.LayerTypeDot1Q: true, layers.LayerTypeLinuxSLL: true, layers.LayerTypeLoopback: true,
	layers.LayerTypeARP: true, layers.LayerTypeIPv4: true, layers.LayerTypeIPv6: true,
	layers.LayerTypeIPv6HopByHop: true, layers.LayerTypeIPv6Routing: true, layers.LayerTypeIPv6Destination: true,
	layers.LayerTypeIPv6Fragment: true, layers.LayerTypeTCP: true, layers.LayerTypeUDP: true,
	layers.LayerTypeICMPv4: true, layers.LayerTypeICMPv6: true, layers.LayerTypeVXLAN: true, layers.LayerTypeGeneve: true,
	layers.LayerTypeDNS: true,
}

// crossCheckFiles are captures of Ethernet, SLL and raw IP traffic whose
// every frame is decoded by both layerscope and gopacket and compared.
var crossCheckFiles = []string{
	"print-flags.pcap", "dns_tcp.pcap", "dns_udp.pcap", "dns_udp_2.pcap", "dnssec.pcap", "edns-opts.pcap",
	"icmpv6.pcap", "vxlan.pcap", "geneve.pcap", "geneve-gcp.pcap", "ipv4_tcp_http_xml.pcap",
	"tcp-handshake-nano.pcap", "mptcp-v1.pcap", "bigtcp-ipv4-vxlan-ipv6.pcap", "bigtcp-ipv6-geneve-ipv4.pcap",
	"arp-too-long-tha.pcap", "tcp_rst_data.pcap", "ip6_frag_asan.pcap",
}

// TestCrossCheckGopacket decodes every frame of several captures with both
// decoders and requires the same header fields.
func TestCrossCheckGopacket(t *testing.T) {
	dir := testutil.PcapDir(t)
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var s decoders.Summary
	total := 0
	for _, name := range crossCheckFiles {
		fs, err := testutil.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		bad := 0
		for i, f := range fs {
			p.Decode(f.Data, f.Link, &s)
			if diff := compareGopacket(f.Data, f.Link, &s); diff != "" {
				bad++
				if bad <= 3 {
					t.Errorf("%s frame %d: %s", name, i+1, diff)
				}
			}
		}
		total += len(fs)
	}
	t.Logf("%d frames compared", total)
}

// TestCrossCheckAllCaptures compares every frame of every capture and
// reports the share of frames that differ; run with -v to see them.
func TestCrossCheckAllCaptures(t *testing.T) {
	dir := testutil.PcapDir(t)
	p, _ := New(Config{})
	var s decoders.Summary
	files := testutil.Files(t, dir)
	diffs := 0
	for _, path := range files {
		fs, _ := testutil.ReadFile(path)
		for i, f := range fs {
			p.Decode(f.Data, f.Link, &s)
			if d := compareGopacket(f.Data, f.Link, &s); d != "" {
				diffs++
				t.Logf("%s frame %d: %s", filepath.Base(path), i+1, d)
			}
		}
	}
	if diffs > 0 {
		t.Errorf("%d frames differ", diffs)
	}
}
