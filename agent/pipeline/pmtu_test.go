package pipeline

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/decoders"
)

var (
	nodeIP  = netip.MustParseAddr("10.0.0.10")
	podCIDR = netip.MustParsePrefix("10.244.0.0/24")
	pod6Net = netip.MustParsePrefix("fd00::/64")
)

// ipPacket returns the layers of an IPv4 or IPv6 header (by src's family)
// for proto; df sets IPv4's don't-fragment flag.
func ipPacket(src, dst netip.Addr, proto layers.IPProtocol, df bool) gopacket.NetworkLayer {
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		if df {
			ip.Flags = layers.IPv4DontFragment
		}
		return ip
	}
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

func ethFor(src netip.Addr) *layers.Ethernet {
	et := layers.EthernetTypeIPv4
	if src.Is6() {
		et = layers.EthernetTypeIPv6
	}
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: et}
}

// udpFrame returns an Ethernet frame whose IP packet is size bytes long.
func udpFrame(tb testing.TB, src, dst netip.Addr, df bool, size int) []byte {
	tb.Helper()
	ip := ipPacket(src, dst, layers.IPProtocolUDP, df)
	hdr := 20
	if src.Is6() {
		hdr = 40
	}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 5201}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, ethFor(src), ip.(gopacket.SerializableLayer), udp, gopacket.Payload(make([]byte, size-hdr-8)))
}

// synFrame returns a TCP SYN (SYN-ACK with ack) carrying the MSS option.
func synFrame(tb testing.TB, src, dst netip.Addr, mss uint16, ack bool) []byte {
	tb.Helper()
	ip := ipPacket(src, dst, layers.IPProtocolTCP, true)
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 8080, SYN: true, ACK: ack, Window: 64240,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{byte(mss >> 8), byte(mss)}}}}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, ethFor(src), ip.(gopacket.SerializableLayer), tcp)
}

// pmtuFrame returns an ICMP fragmentation-needed (IPv4) or packet-too-big
// (IPv6) from reporter to the sender of quoted, reporting mtu and quoting
// the first bytes of quoted (an IP packet).
func pmtuFrame(tb testing.TB, reporter, target netip.Addr, mtu uint32, quoted []byte) []byte {
	tb.Helper()
	if reporter.Is4() {
		ip := ipPacket(reporter, target, layers.IPProtocolICMPv4, false)
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded), Seq: uint16(mtu)}
		return serialize(tb, ethFor(reporter), ip.(gopacket.SerializableLayer), icmp, gopacket.Payload(quoted[:28]))
	}
	ip := ipPacket(reporter, target, layers.IPProtocolICMPv6, false)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	body := append([]byte{byte(mtu >> 24), byte(mtu >> 16), byte(mtu >> 8), byte(mtu)}, quoted[:min(len(quoted), 1232)]...)
	return serialize(tb, ethFor(reporter), ip.(gopacket.SerializableLayer), icmp, gopacket.Payload(body))
}

// ipOf strips the Ethernet header of frame.
func ipOf(frame []byte) []byte { return frame[14:] }

func TestPMTUEvents(t *testing.T) {
	w := plainWorker(t)
	now := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	m := Meta{Time: now, IfIndex: 7, Role: flow.RolePod, Dir: flow.DirOut, LinkType: decoders.LinkEthernet}

	// pod-b → pod-c, DF, 1500 bytes; node-1 answers frag-needed, MTU 1450.
	big := udpFrame(t, v4a, v4b, true, 1500)
	w.Handle(pmtuFrame(t, nodeIP, v4a, 1450, ipOf(big)), &m)
	// An IPv6 packet too big quoting a TCP segment.
	seg := synFrame(t, v6a, v6b, 1440, false)
	m.Time++
	w.Handle(pmtuFrame(t, netip.MustParseAddr("fd00::1"), v6a, 1280, ipOf(seg)), &m)
	// Another ICMP destination unreachable is no PMTU signal.
	m.Time++
	w.Handle(serialize(t, ethFor(nodeIP), ipPacket(nodeIP, v4a, layers.IPProtocolICMPv4, false).(gopacket.SerializableLayer),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}, gopacket.Payload(ipOf(big)[:28])), &m)

	c := published(w)
	if c.FragNeeded != [2]uint64{1, 1} {
		t.Errorf("frag-needed %v, want one of each family", c.FragNeeded)
	}
	if c.PMTUByMTU[0].MTU[0] != 1450 || c.PMTUByMTU[0].Count[0] != 1 || c.PMTUByMTU[1].MTU[0] != 1280 || c.PMTUByMTU[1].Count[0] != 1 {
		t.Errorf("by MTU: %+v", c.PMTUByMTU)
	}
	ev := w.PMTUEvents(nil, 0)
	want := []PMTUEvent{
		{Seq: 1, Time: now, IfIndex: 7, Role: flow.RolePod, Dir: flow.DirOut, Family: 4, Reporter: nodeIP, Target: v4a, MTU: 1450,
			Inner: flow.Key{Src: v4a, Dst: v4b, SrcPort: 40000, DstPort: 5201, Proto: flow.ProtoUDP}, InnerPorts: true, Quoted: true},
		{Seq: 2, Time: now + 1, IfIndex: 7, Role: flow.RolePod, Dir: flow.DirOut, Family: 6, Reporter: netip.MustParseAddr("fd00::1"), Target: v6a, MTU: 1280,
			Inner: flow.Key{Src: v6a, Dst: v6b, SrcPort: 40000, DstPort: 8080, Proto: flow.ProtoTCP}, InnerPorts: true, Quoted: true},
	}
	if len(ev) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(ev), len(want), ev)
	}
	for i := range want {
		if ev[i] != want[i] {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, ev[i], want[i])
		}
	}
	if ev := w.PMTUEvents(nil, 1); len(ev) != 1 || ev[0].Seq != 2 {
		t.Errorf("events after 1: %+v", ev)
	}
	if ev := w.PMTUEvents(nil, 2); len(ev) != 0 {
		t.Errorf("events after 2: %+v", ev)
	}
}

func TestPMTUEventRingAndBuckets(t *testing.T) {
	w := plainWorker(t)
	quoted := ipOf(udpFrame(t, v4a, v4b, true, 1500))
	mtus := []uint32{1450, 1400, 1300, 1280, 1200, 1100, 1000, 900, 800, 700}
	frames := make([][]byte, len(mtus))
	for i, mtu := range mtus {
		frames[i] = pmtuFrame(t, nodeIP, v4a, mtu, quoted)
	}
	m := Meta{Time: 1, LinkType: decoders.LinkEthernet}
	const n = 100
	for i := range n {
		m.Time++
		w.Handle(frames[i%len(frames)], &m)
	}
	ev := w.PMTUEvents(nil, 0)
	if len(ev) != PMTUEventRing || ev[0].Seq != n-PMTUEventRing+1 || ev[len(ev)-1].Seq != n {
		t.Fatalf("%d events, seq %d..%d; want the last %d", len(ev), ev[0].Seq, ev[len(ev)-1].Seq, PMTUEventRing)
	}
	for i, e := range ev {
		if want := mtus[int(e.Seq-1)%len(mtus)]; e.MTU != want || (i > 0 && e.Seq != ev[i-1].Seq+1) {
			t.Fatalf("event %d: seq %d MTU %d, want MTU %d", i, e.Seq, e.MTU, want)
		}
	}
	if ev := w.PMTUEvents(nil, n-5); len(ev) != 5 || ev[0].Seq != n-4 {
		t.Errorf("after %d: %d events from %d", n-5, len(ev), ev[0].Seq)
	}

	c := published(w)
	var sum uint64
	for i := range NumMTUSlots {
		if c.PMTUByMTU[0].MTU[i] != mtus[i] || c.PMTUByMTU[0].Count[i] != n/10 {
			t.Errorf("slot %d: MTU %d count %d, want %d, %d", i, c.PMTUByMTU[0].MTU[i], c.PMTUByMTU[0].Count[i], mtus[i], n/10)
		}
		sum += c.PMTUByMTU[0].Count[i]
	}
	if c.PMTUByMTU[0].Other != 2*n/10 || sum+c.PMTUByMTU[0].Other != n {
		t.Errorf("other %d, total %d", c.PMTUByMTU[0].Other, sum+c.PMTUByMTU[0].Other)
	}

	// A second worker that saw the MTUs in another order sums by value.
	w2 := plainWorker(t)
	w2.Handle(frames[9], &m)
	w2.Handle(frames[1], &m)
	c2 := published(w2)
	total := *c
	total.Add(c2)
	if total.PMTUByMTU[0].Count[1] != n/10+1 || total.PMTUByMTU[0].Other != 2*n/10+1 || total.FragNeeded[0] != n+2 {
		t.Errorf("sum of two workers: %+v, frag-needed %d", total.PMTUByMTU[0], total.FragNeeded[0])
	}
}

func TestPathChecks(t *testing.T) {
	remote6 := v6b
	local6 := netip.MustParseAddr("fd00::9")
	type pkt struct {
		name  string
		frame []byte
		dir   flow.Direction
	}
	tests := []struct {
		pkt
		oversize, offload, mss [2]uint64 // [IPv4, IPv6] deltas on the pod role
	}{
		{pkt: pkt{"v4 DF 1500 to a remote pod", udpFrame(t, v4a, v4b, true, 1500), flow.DirIn}, oversize: [2]uint64{1, 0}},
		{pkt: pkt{"v4 DF 1500 to a local pod", udpFrame(t, v4a, netip.MustParseAddr("10.244.0.5"), true, 1500), flow.DirIn}},
		{pkt: pkt{"v4 DF 1450 fits", udpFrame(t, v4a, v4b, true, 1450), flow.DirIn}},
		{pkt: pkt{"v4 no DF is fragmented, not dropped", udpFrame(t, v4a, v4b, false, 1500), flow.DirIn}},
		{pkt: pkt{"v4 DF 1500 sent to the pod", udpFrame(t, v4b, v4a, true, 1500), flow.DirOut}},
		{pkt: pkt{"v4 DF offload aggregate", udpFrame(t, v4a, v4b, true, 9000), flow.DirIn}, offload: [2]uint64{1, 0}},
		{pkt: pkt{"v6 1500 to a remote pod", udpFrame(t, v6a, remote6, false, 1500), flow.DirIn}, oversize: [2]uint64{0, 1}},
		{pkt: pkt{"v6 1500 to a local pod", udpFrame(t, v6a, local6, false, 1500), flow.DirIn}},
		{pkt: pkt{"SYN MSS 1460 on a 1450 path", synFrame(t, v4a, v4b, 1460, false), flow.DirIn}, mss: [2]uint64{1, 0}},
		{pkt: pkt{"SYN-ACK MSS 1460 on a 1450 path", synFrame(t, v4a, v4b, 1460, true), flow.DirIn}, mss: [2]uint64{1, 0}},
		{pkt: pkt{"SYN MSS 1410 fits", synFrame(t, v4a, v4b, 1410, false), flow.DirIn}},
		{pkt: pkt{"SYN MSS 1460 to a local pod", synFrame(t, v4a, netip.MustParseAddr("10.244.0.5"), 1460, false), flow.DirIn}},
		{pkt: pkt{"SYN MSS 1460 sent to the pod", synFrame(t, v4b, v4a, 1460, false), flow.DirOut}},
		{pkt: pkt{"v6 SYN MSS 1440 on a 1450 path", synFrame(t, v6a, remote6, 1440, false), flow.DirIn}, mss: [2]uint64{0, 1}},
		{pkt: pkt{"v6 SYN MSS 1390 fits", synFrame(t, v6a, remote6, 1390, false), flow.DirIn}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := plainWorker(t)
			m := Meta{Time: 42, IfIndex: 9, Role: flow.RolePod, Dir: tt.dir, LinkType: decoders.LinkEthernet}
			// Without a path the checks are off.
			w.Handle(tt.frame, &m)
			if c := published(w); c.Oversize != ([flow.NumRoles][2]uint64{}) || c.MSSOverPath != ([flow.NumRoles][2]uint64{}) || c.OversizeOffload != ([flow.NumRoles][2]uint64{}) {
				t.Fatalf("counted without a path: %v %v %v", c.Oversize, c.OversizeOffload, c.MSSOverPath)
			}
			w.SetPath(PathConfig{MTU: 1450, LinkMTU: 1500, Local: []netip.Prefix{podCIDR, pod6Net}})
			m.Time++
			w.Handle(tt.frame, &m)
			c := published(w)
			if c.Oversize[flow.RolePod] != tt.oversize || c.OversizeOffload[flow.RolePod] != tt.offload || c.MSSOverPath[flow.RolePod] != tt.mss {
				t.Errorf("oversize %v offload %v mss %v; want %v %v %v", c.Oversize[flow.RolePod], c.OversizeOffload[flow.RolePod], c.MSSOverPath[flow.RolePod], tt.oversize, tt.offload, tt.mss)
			}
			last, ok := w.LastOversize()
			if counted := tt.oversize != [2]uint64{}; ok != counted {
				t.Errorf("LastOversize reported %v, want %v", ok, counted)
			} else if ok && (last.Src != v4a && last.Src != v6a || last.Size != 1500 || last.Limit != 1450 || last.IfIndex != 9 || last.Time != 43) {
				t.Errorf("LastOversize %+v", last)
			}
			lastMSS, ok := w.LastMSS()
			if counted := tt.mss != [2]uint64{}; ok != counted {
				t.Errorf("LastMSS reported %v, want %v", ok, counted)
			} else if ok && (lastMSS.Size <= lastMSS.Limit || lastMSS.Limit != map[bool]uint32{true: 1410, false: 1390}[lastMSS.Src.Is4()]) {
				t.Errorf("LastMSS %+v", lastMSS)
			}
		})
	}
}

func TestPathSetters(t *testing.T) {
	w := plainWorker(t)
	prefixes := []netip.Prefix{podCIDR}
	w.SetLocalPrefixes(prefixes)
	prefixes[0] = pod6Net // the worker keeps its own copy
	w.SetPathMTU(1450, 1500)
	if pc := w.Path(); pc.MTU != 1450 || pc.LinkMTU != 1500 || len(pc.Local) != 1 || pc.Local[0] != podCIDR {
		t.Errorf("path %+v", pc)
	}
	frame := udpFrame(t, v4a, v4b, true, 1500)
	m := Meta{Time: 1, Role: flow.RoleBridge, Dir: flow.DirIn, LinkType: decoders.LinkEthernet}
	w.Handle(frame, &m)
	w.SetPathMTU(0, 1500) // off
	w.Handle(frame, &m)
	w.SetPathMTU(1500, 1500) // fits
	w.Handle(frame, &m)
	if c := published(w); c.Oversize[flow.RoleBridge][0] != 1 {
		t.Errorf("bridge oversize %d, want 1", c.Oversize[flow.RoleBridge][0])
	}
}

// TestPathConcurrent changes the path and reads events while the worker
// runs (meaningful under -race).
func TestPathConcurrent(t *testing.T) {
	w := plainWorker(t)
	frames := [][]byte{udpFrame(t, v4a, v4b, true, 1500), pmtuFrame(t, nodeIP, v4a, 1450, ipOf(udpFrame(t, v4a, v4b, true, 1500)))}
	w.SetPath(PathConfig{MTU: 1450})
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			w.SetPath(PathConfig{MTU: 1400 + i%100, LinkMTU: 1500, Local: []netip.Prefix{podCIDR}})
			_ = w.PMTUEvents(nil, 0)
			_, _ = w.LastOversize()
		}
	})
	m := Meta{Role: flow.RolePod, Dir: flow.DirIn, LinkType: decoders.LinkEthernet}
	for i := range 20000 {
		m.Time++
		w.Handle(frames[i%2], &m)
		if i%1000 == 0 {
			w.Publish()
		}
	}
	close(done)
	wg.Wait()
	if c := published(w); c.Oversize[flow.RolePod][0] != 10000 || c.FragNeeded[0] != 10000 {
		t.Errorf("oversize %d frag-needed %d, want 10000 each", c.Oversize[flow.RolePod][0], c.FragNeeded[0])
	}
}

func TestPathAndPMTUDoNotAllocate(t *testing.T) {
	w := plainWorker(t)
	w.SetPath(PathConfig{MTU: 1450, LinkMTU: 1500, Local: []netip.Prefix{podCIDR}})
	frames := [][]byte{
		udpFrame(t, v4a, v4b, true, 1500),
		synFrame(t, v4a, v4b, 1460, false),
		pmtuFrame(t, nodeIP, v4a, 1450, ipOf(udpFrame(t, v4a, v4b, true, 1500))),
	}
	m := Meta{Role: flow.RolePod, Dir: flow.DirIn, LinkType: decoders.LinkEthernet}
	for _, f := range frames {
		if a := testing.AllocsPerRun(1000, func() { m.Time++; w.Handle(f, &m) }); a != 0 {
			t.Errorf("%.1f allocations per frame", a)
		}
	}
}

// BenchmarkHandlePathCheck is BenchmarkHandleEthIPv4TCP with the path
// checks on: every frame enters from a pod and is compared with the path.
func BenchmarkHandlePathCheck(b *testing.B) {
	w, _ := newWorker(b)
	w.SetPath(PathConfig{MTU: 1450, LinkMTU: 1500, Local: []netip.Prefix{podCIDR}})
	frame := tcpFrame(b, 40000, "AP", make([]byte, 100))
	m := Meta{Time: time.Now().UnixNano(), Len: uint32(len(frame)), IfIndex: 3, Role: flow.RolePod, Dir: flow.DirIn, LinkType: decoders.LinkEthernet}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		m.Time += 1000
		w.Handle(frame, &m)
	}
}
