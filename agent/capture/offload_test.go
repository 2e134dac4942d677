package capture

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/layerscope/layerscope/agent/flow"
)

// frameOpts varies testFrame's Ethernet/IPv4/TCP frame.
type frameOpts struct {
	flags   string // of S, A, F, R, P, U, E, C
	seq     uint32
	window  uint16
	dport   uint16
	payload []byte
	frag    bool // a first fragment (MF)
	udp     bool // UDP instead of TCP
}

func testFrame(t testing.TB, o frameOpts) []byte {
	t.Helper()
	if o.dport == 0 {
		o.dport = 8080
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 244, 0, 5}, DstIP: net.IP{10, 244, 1, 8}, Flags: layers.IPv4DontFragment}
	if o.frag {
		ip.Flags = layers.IPv4MoreFragments
	}
	var l4 gopacket.SerializableLayer
	if o.udp {
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(o.dport)}
		_ = u.SetNetworkLayerForChecksum(ip)
		l4 = u
	} else {
		has := func(c byte) bool { return bytes.IndexByte([]byte(o.flags), c) >= 0 }
		tc := &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(o.dport), Seq: o.seq, Ack: 1, Window: o.window,
			SYN: has('S'), ACK: has('A'), FIN: has('F'), RST: has('R'), PSH: has('P'), URG: has('U'), ECE: has('E'), CWR: has('C')}
		_ = tc.SetNetworkLayerForChecksum(ip)
		l4 = tc
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, l4, gopacket.Payload(o.payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// run runs the filter on frame (BPF_PROG_TEST_RUN) and returns its verdict.
func run(t *testing.T, o *Offload, frame []byte) uint32 {
	t.Helper()
	ret, _, err := o.prog.Test(append(testEthHeader(), frame...))
	if err != nil {
		t.Fatal(err)
	}
	return ret
}

// TestOffloadFilterVerdicts runs the filter on frames of one flow and
// checks which it hands over (the snap length) and which it counts (0),
// then what a drain reports and that it removes the entry once its flow is
// gone.
func TestOffloadFilterVerdicts(t *testing.T) {
	requireRoot(t)
	const snap = 200
	o, err := newOffload(&OffloadConfig{}, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	body := bytes.Repeat([]byte{'x'}, 100)
	seq := uint32(1000)
	// with returns a segment with payload p at the next sequence number.
	with := func(flags string, p []byte) frameOpts {
		f := frameOpts{flags: flags, seq: seq, window: 500, payload: p}
		seq += uint32(len(p))
		return f
	}
	data := func(flags string) frameOpts { return with(flags, body) }
	steps := []struct {
		what string
		f    func() frameOpts // called in order: sequence numbers move on
		want uint32
	}{
		{"SYN (the entry's first frame)", func() frameOpts { return frameOpts{flags: "S", seq: seq - 1, window: 500} }, snap},
		{"first frame after", func() frameOpts { return data("A") }, snap},
		{"second frame after", func() frameOpts { return data("PA") }, snap},
		{"established data", func() frameOpts { return data("A") }, 0},
		{"established data with PSH", func() frameOpts { return data("PA") }, 0},
		{"bare ACK", func() frameOpts { return frameOpts{flags: "A", seq: seq, window: 500} }, 0},
		{"FIN", func() frameOpts { return frameOpts{flags: "FA", seq: seq, window: 500} }, snap},
		{"RST", func() frameOpts { return frameOpts{flags: "R", seq: seq, window: 500} }, snap},
		{"URG", func() frameOpts { return frameOpts{flags: "UA", seq: seq, window: 500} }, snap},
		{"ECE", func() frameOpts { return frameOpts{flags: "EA", seq: seq, window: 500} }, snap},
		{"no ACK", func() frameOpts { return with("P", body) }, snap},
		{"zero window", func() frameOpts { return frameOpts{flags: "A", seq: seq, window: 0} }, snap},
		{"HTTP request line", func() frameOpts { return with("PA", []byte("GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n")) }, snap},
		{"HTTP status line", func() frameOpts { return with("PA", []byte("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")) }, snap},
		{"TLS record", func() frameOpts { return with("PA", append([]byte{0x16, 3, 1, 0, 64}, body...)) }, snap},
		{"short payload", func() frameOpts { return with("PA", []byte("0123456789")) }, snap},
		{"a retransmission (counted)", func() frameOpts { return frameOpts{flags: "A", seq: 1000, window: 500, payload: body} }, 0},
		{"a keep-alive (handed over: a short payload; not a retransmission)", func() frameOpts { return frameOpts{flags: "A", seq: seq - 1, window: 500, payload: []byte{0}} }, snap},
		{"DNS port", func() frameOpts { return frameOpts{flags: "A", seq: 5, window: 500, dport: 53, payload: body} }, snap},
		{"UDP", func() frameOpts { return frameOpts{udp: true, payload: body} }, snap},
		{"IPv4 fragment", func() frameOpts { return frameOpts{flags: "A", seq: 1, window: 500, payload: body, frag: true} }, snap},
	}
	for _, s := range steps {
		if got := run(t, o, testFrame(t, s.f())); got != s.want {
			t.Errorf("%s: filter returned %d, want %d", s.what, got, s.want)
		}
	}
	// Longer than the path MTU: handed over once SetMaxLen says so.
	long := with("A", bytes.Repeat([]byte{'y'}, 1200))
	if got := run(t, o, testFrame(t, long)); got != 0 {
		t.Errorf("a long segment without path MTU: %d, want 0 (counted)", got)
	}
	if err := o.SetMaxLen(1000); err != nil {
		t.Fatal(err)
	}
	long = with("A", long.payload)
	if got := run(t, o, testFrame(t, long)); got != snap {
		t.Errorf("a long segment over the path MTU: %d, want %d", got, snap)
	}

	// The drain reports what the kernel counted: 4 frames (3 with data,
	// the bare ACK, a retransmission among them, and the long segment).
	var got []Drained
	drain := func(gone bool) {
		got = got[:0]
		if err := o.Drain(func(d *Drained) { got = append(got, *d) }, func(*flow.Key) bool { return gone }); err != nil {
			t.Fatal(err)
		}
	}
	drain(false)
	if len(got) != 1 {
		t.Fatalf("drain: %d flows, want 1: %+v", len(got), got)
	}
	d := got[0]
	frameLen := uint64(len(testFrame(t, data("A"))))
	bare := uint64(len(testFrame(t, frameOpts{flags: "A"})))
	longLen := uint64(len(testFrame(t, long)))
	wantKey := flow.Key{Src: mustAddr("10.244.0.5"), Dst: mustAddr("10.244.1.8"), SrcPort: 40000, DstPort: 8080, Proto: flow.ProtoTCP}
	if d.Key != wantKey || d.Packets != 5 || d.Bytes != 3*frameLen+bare+longLen || d.Push != 1 || d.Retransmits != 1 || d.Last == 0 || d.Out {
		t.Errorf("drained %+v; want key %v, 5 packets, %d bytes, 1 with PSH, 1 retransmission, a time", d, wantKey, 3*frameLen+bare+longLen)
	}
	// Nothing new: nothing reported; the flow gone, the entry goes at the
	// second drain that sees it unchanged.
	drain(false)
	if len(got) != 0 {
		t.Errorf("second drain reported %+v", got)
	}
	if st := o.Stats(); st.Flows != 2 || st.Removed != 0 { // the flow and the DNS port's
		t.Errorf("stats %+v: want 2 flows, none removed", st)
	}
	drain(true)
	if st := o.Stats(); st.Flows != 0 || st.Removed != 2 {
		t.Errorf("after the flows left the table: stats %+v; want no flow, 2 removed", st)
	}
	if got := run(t, o, testFrame(t, data("A"))); got != snap {
		t.Errorf("a frame after its entry was removed: %d, want %d (a new entry's first)", got, snap)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
