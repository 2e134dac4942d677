package pipeline

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/miekg/dns"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/parser"
)

// dnsFrame is an Ethernet/IPv4/UDP frame carrying a DNS query for name from
// 10.244.0.5:sport to 10.244.0.10:53, or its answer with rcode.
func dnsFrame(tb testing.TB, sport, id uint16, name string, response bool, rcode int) []byte {
	tb.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.Id = id
	src, dst := net.IP{10, 244, 0, 5}, net.IP{10, 244, 0, 10}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 53}
	if response {
		r := new(dns.Msg)
		r.SetRcode(m, rcode)
		m = r
		src, dst = dst, src
		udp.SrcPort, udp.DstPort = udp.DstPort, udp.SrcPort
	}
	msg, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return udpPayloadFrame(tb, src, dst, udp, msg)
}

// udpPayloadFrame is an Ethernet/IPv4/UDP frame carrying payload.
func udpPayloadFrame(tb testing.TB, src, dst net.IP, udp *layers.UDP, payload []byte) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src, DstIP: dst}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// packetLog is a Table that keeps a copy of every packet it is given.
type packetLog struct{ ps []flow.Packet }

func (l *packetLog) Update(p *flow.Packet) bool {
	l.ps = append(l.ps, *p)
	return true
}

func pktName(p *flow.Packet) string { return string(p.DNSName[:p.DNSNameLen]) }

// TestDNSNameToPacket checks the question name the worker hands the flow
// table: whole, cut to flow.MaxDNSName and flagged, and absent from the
// packets that follow a DNS message on the same worker.
func TestDNSNameToPacket(t *testing.T) {
	zz := strings.Repeat("z", 40) + "." + strings.Repeat("z", 40)
	long := strings.Repeat("x", 63) + "." + strings.Repeat("y", 63) + ".default.svc.cluster.local."
	for _, tt := range []struct {
		name  string
		frame func(t *testing.T) []byte
		app   flow.App
		want  string
		trunc bool
	}{
		{"query", func(t *testing.T) []byte {
			return dnsFrame(t, 40000, 7, "no-such-svc.default.svc.cluster.local.", false, 0)
		},
			flow.AppDNS, "no-such-svc.default.svc.cluster.local", false},
		{"NXDOMAIN answer", func(t *testing.T) []byte {
			return dnsFrame(t, 40000, 7, "No-Such-Svc.default.svc.cluster.local.", true, dns.RcodeNameError)
		}, flow.AppDNS, "No-Such-Svc.default.svc.cluster.local", false},
		{"long name", func(t *testing.T) []byte { return dnsFrame(t, 40001, 8, long, false, 0) },
			flow.AppDNS, long[:flow.MaxDNSName], true},
		{"exactly MaxDNSName", func(t *testing.T) []byte { return dnsFrame(t, 40002, 9, long[:flow.MaxDNSName-1]+".", false, 0) },
			flow.AppDNS, long[:flow.MaxDNSName-1], false},
		{"TCP after DNS", func(t *testing.T) []byte { return tcpFrame(t, 40003, "A", []byte("GET / HTTP/1.1\r\n\r\n")) },
			flow.AppHTTP, "", false},
		{"UDP without DNS after DNS", func(t *testing.T) []byte {
			return udpPayloadFrame(t, net.IP{10, 244, 0, 5}, net.IP{10, 244, 0, 9}, &layers.UDP{SrcPort: 40004, DstPort: 8125}, []byte("metric:1|c"))
		},
			flow.AppNone, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := &packetLog{}
			w, err := NewWorker(parser.Config{}, log)
			if err != nil {
				t.Fatal(err)
			}
			m := Meta{Time: time.Now().UnixNano(), Len: 100, IfIndex: 3, Role: flow.RolePod, Dir: flow.DirIn, LinkType: decoders.LinkEthernet}
			// A DNS message first: its name must not leak into the next packet.
			w.Handle(dnsFrame(t, 39999, 1, zz+".", false, 0), &m)
			w.Handle(tt.frame(t), &m)
			if len(log.ps) != 2 {
				t.Fatalf("table got %d packets, want 2", len(log.ps))
			}
			p := &log.ps[1]
			if p.App != tt.app || pktName(p) != tt.want || p.DNSNameTruncated != tt.trunc {
				t.Errorf("app %v name %q truncated %v; want %v %q %v", p.App, pktName(p), p.DNSNameTruncated, tt.app, tt.want, tt.trunc)
			}
			if first := &log.ps[0]; pktName(first) != zz[:flow.MaxDNSName] || !first.DNSNameTruncated {
				t.Errorf("first packet name %q truncated %v", pktName(first), first.DNSNameTruncated)
			}
		})
	}
}

// TestDNSNameIntoRecords runs query and answer through a worker into the
// flow table and reads the name back from the record, with no allocation
// per packet.
func TestDNSNameIntoRecords(t *testing.T) {
	w, table := newWorker(t)
	m := Meta{Time: time.Now().UnixNano(), Len: 100, IfIndex: 3, Role: flow.RolePod, Dir: flow.DirOut, LinkType: decoders.LinkEthernet}
	q := dnsFrame(t, 40100, 42, "no-such-svc.default.svc.cluster.local.", false, 0)
	a := dnsFrame(t, 40100, 42, "no-such-svc.default.svc.cluster.local.", true, dns.RcodeNameError)
	w.Handle(q, &m)
	m.Time += int64(time.Millisecond)
	w.Handle(a, &m)
	rec, ok := table.Lookup(flow.Key{Src: mustAddr("10.244.0.5"), Dst: mustAddr("10.244.0.10"), SrcPort: 40100, DstPort: 53, Proto: flow.ProtoUDP})
	if !ok {
		t.Fatal("DNS flow not found")
	}
	name, trunc := rec.L7.DNSName()
	if name != "no-such-svc.default.svc.cluster.local" || trunc || rec.L7.NumExchanges != 1 ||
		rec.L7.Exchanges[0].Code != dns.RcodeNameError || rec.L7.Exchanges[0].OtherName {
		t.Errorf("record L7 name %q truncated %v, exchanges %+v", name, trunc, rec.L7.Exchanges[:rec.L7.NumExchanges])
	}
	if n := testing.AllocsPerRun(200, func() {
		m.Time++
		w.Handle(q, &m)
		w.Handle(a, &m)
	}); n != 0 {
		t.Errorf("%v allocations per DNS query and answer, want 0", n)
	}
}

func BenchmarkHandleDNS(b *testing.B) {
	w, _ := newWorker(b)
	q := dnsFrame(b, 40100, 42, "my-service.default.svc.cluster.local.", false, 0)
	a := dnsFrame(b, 40100, 42, "my-service.default.svc.cluster.local.", true, 0)
	m := Meta{Time: time.Now().UnixNano(), Len: uint32(len(q)), IfIndex: 3, Role: flow.RolePod, Dir: flow.DirOut, LinkType: decoders.LinkEthernet}
	b.ReportAllocs()
	b.SetBytes(int64(len(q)))
	for i := 0; b.Loop(); i++ {
		m.Time++
		if i&1 == 0 {
			w.Handle(q, &m)
		} else {
			w.Handle(a, &m)
		}
	}
}
