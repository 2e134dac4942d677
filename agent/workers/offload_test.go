package workers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/agent/capture"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/agent/pipeline"
	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/parser"
	"github.com/layerscope/layerscope/internal/testns"
)

// truth is what was sent of one flow, by side (0: client, 1: server).
type truth struct {
	key     flow.Key // client → server
	pkts    [2]uint64
	bytes   [2]uint64
	retrans [2]uint32
	vxlan   bool // carried in VXLAN
}

// traffic builds frames and keeps the ground truth of what it built.
type traffic struct {
	t      *testing.T
	frames [][]byte
	flows  []*truth
}

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
)

func (tr *traffic) add(f *truth, side int, ls ...gopacket.SerializableLayer) {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tr.t.Fatal(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	if f != nil && f.vxlan {
		b = tr.vxlanWrap(b)
	}
	tr.frames = append(tr.frames, b)
	if f != nil {
		f.pkts[side]++
		f.bytes[side] += uint64(len(b))
	}
}

// vxlanWrap encapsulates inner in Ethernet/IPv4/UDP to port 4789/VXLAN
// (VNI 1) between two node addresses.
func (tr *traffic) vxlanWrap(inner []byte) []byte {
	eth := &layers.Ethernet{SrcMAC: macB, DstMAC: macA, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{172, 18, 0, 2}, DstIP: net.IP{172, 18, 0, 3}}
	udp := &layers.UDP{SrcPort: 50000, DstPort: 4789}
	_ = udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, &layers.VXLAN{ValidIDFlag: true, VNI: 1}, gopacket.Payload(inner)); err != nil {
		tr.t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// l3 returns the Ethernet and IP layers of a packet of f from side.
func l3(f *truth, side int, proto layers.IPProtocol) (gopacket.SerializableLayer, gopacket.SerializableLayer, gopacket.NetworkLayer) {
	src, dst := f.key.Src, f.key.Dst
	smac, dmac := macB, macA
	if side == 1 {
		src, dst = dst, src
		smac, dmac = macA, macB
	}
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Flags: layers.IPv4DontFragment}
		return &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv4}, ip, ip
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	return &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv6}, ip, ip
}

// tcpConn is one TCP connection's state while its frames are built.
type tcpConn struct {
	tr  *traffic
	f   *truth
	seq [2]uint32
}

// seg adds a segment from side with flags and payload; seq moves on unless
// again (a retransmission of the segment at seq).
func (c *tcpConn) seg(side int, flags string, payload []byte, window uint16, seq uint32) {
	eth, ip, nl := l3(c.f, side, layers.IPProtocolTCP)
	sp, dp := c.f.key.SrcPort, c.f.key.DstPort
	if side == 1 {
		sp, dp = dp, sp
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), Seq: seq, Ack: c.seq[1-side], Window: window,
		SYN: strings.Contains(flags, "S"), ACK: strings.Contains(flags, "A"), FIN: strings.Contains(flags, "F"),
		RST: strings.Contains(flags, "R"), PSH: strings.Contains(flags, "P")}
	_ = tcp.SetNetworkLayerForChecksum(nl)
	c.tr.add(c.f, side, eth, ip, tcp, gopacket.Payload(payload))
}

func (c *tcpConn) send(side int, flags string, payload []byte) {
	c.seg(side, flags, payload, 502, c.seq[side])
	c.seq[side] += uint32(len(payload))
	if strings.ContainsAny(flags, "SF") {
		c.seq[side]++
	}
}

// tcpFlow adds a connection of data segments from the client, each acked,
// two HTTP exchanges (one at the start, one after the flow's first
// frames), one retransmission, one zero window and a FIN teardown.
func (tr *traffic) tcpFlow(f *truth, data int) {
	tr.flows = append(tr.flows, f)
	c := &tcpConn{tr: tr, f: f, seq: [2]uint32{1000, 900000}}
	c.send(0, "S", nil)
	c.send(1, "SA", nil)
	c.send(0, "A", nil)
	c.send(0, "PA", []byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	c.send(1, "PA", []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	body := []byte(strings.Repeat("x", 100))
	var resend uint32
	for i := range data {
		if i == data/4 {
			resend = c.seq[0]
		}
		flags := "A"
		if i%3 == 0 {
			flags = "PA"
		}
		payload := body
		if i == data/3 {
			payload = []byte(strings.Repeat("y", 1200)) // longer than the test's path MTU
		}
		c.send(0, flags, payload)
		c.send(1, "A", nil)
		if i == data/2 {
			c.seg(0, "PA", body, 502, resend) // a retransmission
			f.retrans[0]++
			c.seg(1, "A", nil, 0, c.seq[1]) // a zero window
			post := []byte("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
			at := c.seq[0]
			c.send(0, "PA", post)
			c.seg(0, "PA", post, 502, at) // a retransmission the filter hands over
			f.retrans[0]++
			c.send(1, "PA", []byte("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
		}
	}
	c.send(0, "FA", nil)
	c.send(1, "FA", nil)
	c.send(0, "A", nil)
}

// udpExchange adds a DNS query and its answer.
func (tr *traffic) dns(f *truth, id uint16) {
	for side := range 2 {
		eth, ip, nl := l3(f, side, layers.IPProtocolUDP)
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.key.SrcPort), DstPort: layers.UDPPort(f.key.DstPort)}
		if side == 1 {
			udp.SrcPort, udp.DstPort = udp.DstPort, udp.SrcPort
		}
		_ = udp.SetNetworkLayerForChecksum(nl)
		msg := &layers.DNS{ID: id, QR: side == 1, RD: true, Questions: []layers.DNSQuestion{{Name: []byte("svc.example"), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
		if side == 1 {
			msg.Answers = []layers.DNSResourceRecord{{Name: []byte("svc.example"), Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 5, IP: net.IP{10, 1, 2, 3}}}
		}
		tr.add(f, side, eth, ip, udp, msg)
	}
}

// icmpEcho adds an echo request and its reply.
func (tr *traffic) icmpEcho(f *truth, seq uint16) {
	for side := range 2 {
		eth, ip, _ := l3(f, side, layers.IPProtocolICMPv4)
		typ := uint8(layers.ICMPv4TypeEchoRequest)
		if side == 1 {
			typ = layers.ICMPv4TypeEchoReply
		}
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: 7, Seq: seq}
		tr.add(f, side, eth, ip, icmp, gopacket.Payload([]byte("ping-payload")))
	}
}

// sendFrames sends the frames in order on ifName of n, from one thread on
// one CPU (so that the peer receives them in order).
func sendFrames(t *testing.T, n *testns.NS, ifName string, frames [][]byte) {
	t.Helper()
	ifc := n.Link(t, ifName).Attrs().Index
	var fd int
	if err := n.Enter.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err == nil {
		one.Set(0)
		if unix.SchedSetaffinity(0, &one) == nil {
			defer unix.SchedSetaffinity(0, &old)
		}
	}
	sa := &unix.SockaddrLinklayer{Ifindex: ifc, Halen: 6}
	copy(sa.Addr[:], macA)
	for i, f := range frames {
		if err := unix.Sendto(fd, f, 0, sa); err != nil {
			t.Fatalf("send frame %d: %v", i, err)
		}
		if i%64 == 63 {
			time.Sleep(time.Millisecond) // the peer's backlog holds 1000 frames
		}
	}
}

// capturer is one ring with its worker and table, read as the Set reads
// its rings: a drain of the fast path (if any) and a publish every interval.
type capturer struct {
	ring  *capture.Ring
	off   *capture.Offload
	w     *pipeline.Worker
	table *flowtable.Table
	done  chan struct{}
}

func startCapturer(t *testing.T, ns *testns.NS, ifIndex int, offload *capture.OffloadConfig) *capturer {
	t.Helper()
	r, err := capture.Open(ifIndex, capture.Config{NetNS: ns.Enter, Offload: offload})
	if err != nil {
		t.Fatal(err)
	}
	table, w := newTableWorker(t)
	c := &capturer{ring: r, off: r.Offload(), w: w, table: table, done: make(chan struct{})}
	if offload != nil {
		if c.off == nil {
			reason, err := r.OffloadFallback()
			r.Close()
			if reason == capture.OffloadReasonNotPermitted {
				t.Skipf("eBPF not permitted here: %v", err)
			}
			t.Fatalf("fast path not used: %s: %v", reason, err)
		}
		w.SetFilterSeq(true)
	}
	l := links.Link{Index: ifIndex, Name: "a0", Role: flow.RolePod}
	m := pipeline.Meta{IfIndex: int32(ifIndex), Role: l.Role, LinkType: decoders.LinkEthernet}
	go func() {
		defer close(c.done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			err := r.Run(ctx, func(frame []byte, cm *capture.Meta) {
				m.Time, m.Len, m.Dir = cm.Timestamp.UnixNano(), uint32(cm.Length), cm.Direction
				w.Handle(frame, &m)
			})
			cancel()
			if c.off != nil {
				if err := drainOffload(c.off, l, w); err != nil && !errors.Is(err, capture.ErrClosed) {
					t.Errorf("drain: %v", err)
				}
			}
			w.Publish()
			if !errors.Is(err, context.DeadlineExceeded) {
				return
			}
		}
	}()
	t.Cleanup(func() {
		r.Close()
		<-c.done
		c.off.Close()
	})
	return c
}

// newTableWorker returns a flow table and a worker feeding it.
func newTableWorker(t *testing.T) (*flowtable.Table, *pipeline.Worker) {
	t.Helper()
	table, err := flowtable.New(&flowtable.Config{MaxEntries: 4096})
	if err != nil {
		t.Fatal(err)
	}
	w, err := pipeline.NewWorker(parser.Config{}, table)
	if err != nil {
		t.Fatal(err)
	}
	return table, w
}

// records returns the table's flows by key as the client sent it, with
// their times reduced to whether they are set: each packet socket stamps
// its frames itself (two rings' times of one frame differ by a few
// hundred nanoseconds), and the fast path stamps the frames it counts
// when it counts them.
func (c *capturer) records() map[flow.Key]flow.Record {
	set := func(v *int64) {
		if *v != 0 {
			*v = 1
		}
	}
	out := map[flow.Key]flow.Record{}
	for _, r := range c.table.Snapshot(nil) {
		set(&r.First)
		set(&r.Last)
		for i := range r.Hops {
			set(&r.Hops[i].First)
			set(&r.Hops[i].Last)
		}
		set(&r.TCP.SYN)
		set(&r.TCP.SYNACK)
		set(&r.TCP.ACK)
		for i := range r.L7.Exchanges {
			x := &r.L7.Exchanges[i]
			set(&x.Start)
			if x.Latency != 0 {
				x.Latency = 1
			}
		}
		out[r.Key] = r
	}
	return out
}

func (c *capturer) counters() pipeline.Counters {
	var s pipeline.Counters
	c.w.AddTo(&s)
	return s
}

// packets returns the packets accounted to the flows of tr (the interface
// also carries the kernel's own IPv6 neighbour and router traffic).
func (c *capturer) packets(tr *traffic) uint64 {
	var n uint64
	for _, f := range tr.flows {
		r, _ := c.table.Lookup(f.key)
		for _, h := range r.Hops[:r.NumHops] {
			n += h.Packets[0] + h.Packets[1]
		}
	}
	return n
}

// quietPair makes two namespaces whose new links have IPv6 off (the
// namespaces' own sysctls), so that the kernel sends no neighbour or
// listener traffic of its own on the link the test captures.
func quietPair(t *testing.T) (a, b *testns.NS) {
	t.Helper()
	a, b = testns.Make(t, "lsoff-a"), testns.Make(t, "lsoff-b")
	for _, n := range []*testns.NS{a, b} {
		if err := n.Enter.Do(func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0o644)
		}); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOffloadGroundTruth sends known traffic (TCP flows over IPv4 and IPv6,
// plain and in VXLAN, with HTTP exchanges, a retransmission and a zero
// window each, DNS over UDP, ICMP echo) into a veth captured twice at once: by a ring as the
// agent runs by default and by a ring with the eBPF fast path. Both flow
// tables must give every flow's packets and bytes per side as sent, and
// the same records and per-layer counters; the fast path must have counted
// most data segments in the kernel, and must drop its entries once the
// flows leave the table.
func TestOffloadGroundTruth(t *testing.T) {
	testns.RequireRoot(t)
	a, b := quietPair(t)
	idx := testns.VethPair(t, a, "a0", "10.78.0.1/24", b, "b0", "10.78.0.2/24")

	tr := &traffic{t: t}
	const flows, data = 8, 40
	for i := range flows {
		tr.tcpFlow(&truth{key: flow.Key{Src: mustAddr("10.88.0.2"), Dst: mustAddr("10.88.0.1"), SrcPort: uint16(40000 + i), DstPort: 8080, Proto: flow.ProtoTCP}}, data)
	}
	tr.tcpFlow(&truth{key: flow.Key{Src: mustAddr("fd00:88::2"), Dst: mustAddr("fd00:88::1"), SrcPort: 41000, DstPort: 8080, Proto: flow.ProtoTCP}}, data)
	for i := range 2 {
		tr.tcpFlow(&truth{key: flow.Key{Src: mustAddr("10.244.0.5"), Dst: mustAddr("10.244.1.8"), SrcPort: uint16(42000 + i), DstPort: 8080, Proto: flow.ProtoTCP}, vxlan: true}, data)
	}
	tr.tcpFlow(&truth{key: flow.Key{Src: mustAddr("fd00:244::5"), Dst: mustAddr("fd00:244::8"), SrcPort: 43000, DstPort: 8080, Proto: flow.ProtoTCP}, vxlan: true}, data)
	dnsFlow := &truth{key: flow.Key{Src: mustAddr("10.88.0.2"), Dst: mustAddr("10.88.0.53"), SrcPort: 5300, DstPort: 53, Proto: flow.ProtoUDP}}
	icmpFlow := &truth{key: flow.Key{Src: mustAddr("10.88.0.2"), Dst: mustAddr("10.88.0.9"), Proto: flow.ProtoICMP}}
	tr.flows = append(tr.flows, dnsFlow, icmpFlow)
	for i := range 3 {
		tr.dns(dnsFlow, uint16(100+i))
		tr.icmpEcho(icmpFlow, uint16(i))
	}
	var total uint64
	for _, f := range tr.flows {
		total += f.pkts[0] + f.pkts[1]
	}

	def := startCapturer(t, a, idx, nil)
	off := startCapturer(t, a, idx, &capture.OffloadConfig{})
	// A path MTU below the long segments: the path checks count them as
	// oversize, so the filter must hand them over.
	const pathMTU = 1000
	for _, c := range []*capturer{def, off} {
		c.w.SetPath(pipeline.PathConfig{MTU: pathMTU, LinkMTU: 1500})
	}
	if err := off.off.SetMaxLen(pathMTU); err != nil {
		t.Fatal(err)
	}
	sendFrames(t, b, "b0", tr.frames)
	for _, c := range []*capturer{def, off} {
		waitUntil(t, "every frame accounted", 10*time.Second, func() bool { return c.packets(tr) >= total })
	}
	time.Sleep(200 * time.Millisecond) // one more drain and publish
	if n := def.packets(tr); n != total {
		t.Fatalf("default mode accounted %d packets, sent %d", n, total)
	}
	if n := off.packets(tr); n != total {
		t.Fatalf("fast path accounted %d packets, sent %d", n, total)
	}

	dr, or := def.records(), off.records()
	for _, f := range tr.flows {
		for name, recs := range map[string]map[flow.Key]flow.Record{"default": dr, "offload": or} {
			r, ok := recs[f.key]
			if !ok {
				t.Errorf("%s: no flow %v", name, f.key)
				continue
			}
			h := r.Hops[0]
			if r.NumHops != 1 || h.Packets != f.pkts || h.Bytes != f.bytes {
				t.Errorf("%s: %v: %d hops, packets %v bytes %v; sent %v, %v", name, f.key, r.NumHops, h.Packets, h.Bytes, f.pkts, f.bytes)
			}
			if f.key.Proto == flow.ProtoTCP {
				if h.Retransmits != f.retrans || h.ZeroWindows != [2]uint32{0, 1} {
					t.Errorf("%s: %v: retransmits %v zero windows %v; want %v, [0 1]", name, f.key, h.Retransmits, h.ZeroWindows, f.retrans)
				}
				if r.L7.App != flow.AppHTTP || r.L7.Requests != 2 || r.L7.Responses != 2 {
					t.Errorf("%s: %v: L7 %v requests %d responses %d; want 2 HTTP exchanges", name, f.key, r.L7.App, r.L7.Requests, r.L7.Responses)
				}
			}
		}
		if d := cmp.Diff(dr[f.key], or[f.key], cmpopts.EquateComparable(netip.Addr{})); d != "" {
			t.Errorf("%v: records differ (-default +offload):\n%s", f.key, d)
		}
	}
	if len(dr) != len(or) {
		t.Errorf("flows: default %d, offload %d", len(dr), len(or))
	}
	dc, oc := def.counters(), off.counters()
	if n := dc.Oversize[flow.RolePod][0] + dc.Oversize[flow.RolePod][1]; n != flows+4 {
		t.Errorf("default mode: %d oversize packets; sent %d", n, flows+4)
	}
	if d := cmp.Diff(dc, oc); d != "" {
		t.Errorf("per-layer counters differ (-default +offload):\n%s", d)
	}
	st := off.off.Stats()
	t.Logf("%d frames sent; the kernel counted %d of them (%d bytes); %d flow directions in its map", total, st.Counted, st.CountedBytes, st.Flows)
	if min := uint64((flows + 4) * data); st.Counted < min {
		t.Errorf("the fast path counted %d frames in the kernel; want at least %d (most data segments and their ACKs)", st.Counted, min)
	}
	if st.MapFull != 0 {
		t.Errorf("map full %d times", st.MapFull)
	}

	// The flows end: the kernel's entries go at the drains after.
	for _, c := range []*capturer{def, off} {
		c.table.Sweep(time.Now().Add(time.Hour).UnixNano())
	}
	waitUntil(t, "the kernel map's entries of ended flows removed", 5*time.Second, func() bool { return off.off.Stats().Flows == 0 })
	if st := off.off.Stats(); st.Removed == 0 {
		t.Errorf("removed %d entries", st.Removed)
	}
}

// TestOffloadMapFull gives the fast path a map too small for the flows: the
// frames of the flows without an entry go to user space, counted, and
// every flow's packets and bytes stay exact.
func TestOffloadMapFull(t *testing.T) {
	testns.RequireRoot(t)
	a, b := quietPair(t)
	idx := testns.VethPair(t, a, "a0", "10.78.0.1/24", b, "b0", "10.78.0.2/24")
	tr := &traffic{t: t}
	for i := range 6 {
		tr.tcpFlow(&truth{key: flow.Key{Src: mustAddr("10.88.0.2"), Dst: mustAddr("10.88.0.1"), SrcPort: uint16(40000 + i), DstPort: 8080, Proto: flow.ProtoTCP}}, 30)
	}
	var total uint64
	for _, f := range tr.flows {
		total += f.pkts[0] + f.pkts[1]
	}
	off := startCapturer(t, a, idx, &capture.OffloadConfig{MaxFlows: 4})
	sendFrames(t, b, "b0", tr.frames)
	waitUntil(t, "every frame accounted", 10*time.Second, func() bool { return off.packets(tr) >= total })
	time.Sleep(200 * time.Millisecond)
	recs := off.records()
	for _, f := range tr.flows {
		r := recs[f.key]
		if h := r.Hops[0]; h.Packets != f.pkts || h.Bytes != f.bytes {
			t.Errorf("%v: packets %v bytes %v; sent %v, %v", f.key, h.Packets, h.Bytes, f.pkts, f.bytes)
		}
	}
	st := off.off.Stats()
	if st.MapFull == 0 || st.Counted == 0 {
		t.Errorf("map full %d, counted %d: want both", st.MapFull, st.Counted)
	}
	t.Logf("map full %d times; %d frames counted in the kernel of %d", st.MapFull, st.Counted, total)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestOffloadFallback asks for the fast path where eBPF is not allowed (the
// opening thread without CAP_BPF and CAP_SYS_ADMIN) and where a capture
// filter is set: the ring captures every frame in user space, and the Set
// logs why once and counts each such ring by reason.
func TestOffloadFallback(t *testing.T) {
	testns.RequireRoot(t)
	a, b := quietPair(t)
	idx := testns.VethPair(t, a, "a0", "10.78.0.1/24", b, "b0", "10.78.0.2/24")

	// Open on a thread of its own, in a's namespace, with the two
	// capabilities that allow bpf(2) dropped from its effective set
	// (capabilities are per thread; the thread ends with the goroutine).
	type opened struct {
		r   *capture.Ring
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with the goroutine
		nsFd, err := unix.Open("/run/netns/"+a.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- opened{err: err}
			return
		}
		err = unix.Setns(nsFd, unix.CLONE_NEWNET)
		unix.Close(nsFd)
		if err != nil {
			ch <- opened{err: err}
			return
		}
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			ch <- opened{err: err}
			return
		}
		data[unix.CAP_SYS_ADMIN/32].Effective &^= 1 << (unix.CAP_SYS_ADMIN % 32)
		data[unix.CAP_BPF/32].Effective &^= 1 << (unix.CAP_BPF % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			ch <- opened{err: err}
			return
		}
		r, err := capture.Open(idx, capture.Config{Offload: &capture.OffloadConfig{}})
		ch <- opened{r: r, err: err}
	}()
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	r := o.r
	defer r.Close()
	reason, err := r.OffloadFallback()
	if r.Offload() != nil || reason != capture.OffloadReasonNotPermitted || err == nil {
		t.Fatalf("without CAP_BPF: offload %v, reason %q (%v); want none, %q", r.Offload() != nil, reason, err, capture.OffloadReasonNotPermitted)
	}
	filtered, err := capture.Open(idx, capture.Config{NetNS: a.Enter, Offload: &capture.OffloadConfig{},
		Filter: []bpf.RawInstruction{{Op: 0x06, K: 0xffff}}})
	if err != nil {
		t.Fatal(err)
	}
	defer filtered.Close()
	if reason, _ := filtered.OffloadFallback(); filtered.Offload() != nil || reason != capture.OffloadReasonFilter {
		t.Fatalf("with a capture filter: reason %q; want %q", reason, capture.OffloadReasonFilter)
	}

	var logs strings.Builder
	var logMu sync.Mutex
	c := &Set{cfg: Config{Capture: CaptureConfig{Offload: true}}, offFallbacks: map[string]uint64{},
		log: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	_, w := newTableWorker(t)
	l := links.Link{Index: idx, Name: "a0", Role: flow.RolePod}
	if off := c.offload(l, r, w); off != nil {
		t.Fatal("a fast path for a ring without one")
	}
	c.offload(l, filtered, w)
	c.offload(l, r, w) // the same reason again: counted, not logged at warning level
	st := c.Offload()
	if st.Fallbacks[capture.OffloadReasonNotPermitted] != 2 || st.Fallbacks[capture.OffloadReasonFilter] != 1 || st.Rings != 0 {
		t.Errorf("fallbacks %v, rings %d; want not_permitted 2, capture_filter 1, no ring", st.Fallbacks, st.Rings)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if n := strings.Count(out, "eBPF fast path not used"); n != 2 || !strings.Contains(out, "reason=not_permitted") || !strings.Contains(out, "reason=capture_filter") {
		t.Errorf("want one warning per reason, got:\n%s", out)
	}

	// The ring without the fast path captures every frame.
	tr := &traffic{t: t}
	f := &truth{key: flow.Key{Src: mustAddr("10.88.0.2"), Dst: mustAddr("10.88.0.1"), SrcPort: 40000, DstPort: 8080, Proto: flow.ProtoTCP}}
	tr.tcpFlow(f, 10)
	var got atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, func([]byte, *capture.Meta) { got.Add(1) }) }()
	sendFrames(t, b, "b0", tr.frames)
	waitUntil(t, "every frame in user space", 5*time.Second, func() bool { return got.Load() == int64(len(tr.frames)) })
	cancel()
	<-done
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
