package pipeline

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/parser"
)

const pcapDir = "../../testdata/tcpdump-tests"

func tcpFrame(tb testing.TB, sport uint16, flags string, payload []byte) []byte {
	tb.Helper()
	return tcpFrameSeq(tb, sport, flags, 1000, payload)
}

// tcpFrameSeq is tcpFrame with sequence number seq.
func tcpFrameSeq(tb testing.TB, sport uint16, flags string, seq uint32, payload []byte) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 244, 0, 5}, DstIP: net.IP{10, 244, 1, 8}, Flags: layers.IPv4DontFragment}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 8080, Seq: seq, Ack: 2000, Window: 64240}
	for _, f := range flags {
		switch f {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'P':
			tcp.PSH = true
		case 'R':
			tcp.RST = true
		}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func newWorker(tb testing.TB) (*Worker, *flowtable.Table) {
	tb.Helper()
	table, err := flowtable.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := NewWorker(parser.Config{}, table)
	if err != nil {
		tb.Fatal(err)
	}
	return w, table
}

func TestWorkerCountsAndFeedsTable(t *testing.T) {
	w, table := newWorker(t)
	now := time.Now().UnixNano()
	m := Meta{Time: now, Len: 74, IfIndex: 3, Role: flow.RolePod, Dir: flow.DirIn, LinkType: decoders.LinkEthernet}
	w.Handle(tcpFrame(t, 40000, "S", nil), &m)
	m.Time += 1e5
	m.Dir = flow.DirOut
	// The data follows the SYN's sequence number.
	w.Handle(tcpFrameSeq(t, 40000, "A", 1001, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), &m)
	m.Dir = flow.DirIn
	w.Handle([]byte{1, 2, 3}, &m) // truncated Ethernet

	var c Counters
	w.AddTo(&c)
	if c.Frames != 0 {
		t.Fatalf("counters visible before Publish: %d frames", c.Frames)
	}
	w.Publish()
	w.AddTo(&c)
	if c.Frames != 3 || c.Packets[flow.RolePod][flow.DirIn] != 2 || c.Packets[flow.RolePod][flow.DirOut] != 1 {
		t.Errorf("frames %d, pod in %d out %d; want 3, 2, 1", c.Frames, c.Packets[flow.RolePod][flow.DirIn], c.Packets[flow.RolePod][flow.DirOut])
	}
	if c.TCP != 2 || c.TCPFlags[1] != 1 || c.TCPFlags[4] != 1 {
		t.Errorf("tcp %d syn %d ack %d; want 2 1 1", c.TCP, c.TCPFlags[1], c.TCPFlags[4])
	}
	if n := table.Stats().Requests[flow.AppHTTP]; n != 1 {
		t.Errorf("flow table counted %d HTTP requests, want 1", n)
	}
	if n := c.DecodeErrors[decoders.OSIL2][decoders.ReasonTruncated]; n != 1 {
		t.Errorf("l2 truncated = %d, want 1", n)
	}
	if n := table.Len(); n != 1 {
		t.Errorf("flow table holds %d flows, want 1", n)
	}
	rec, ok := table.Lookup(flow.Key{Src: mustAddr("10.244.0.5"), Dst: mustAddr("10.244.1.8"), SrcPort: 40000, DstPort: 8080, Proto: flow.ProtoTCP})
	if !ok {
		t.Fatal("flow not found")
	}
	if rec.Hops[0].IfIndex != 3 {
		t.Errorf("hop interface %d, want 3", rec.Hops[0].IfIndex)
	}

	set := NewSet()
	set.Add(w)
	set.Remove(w)
	if got := set.Sum().Frames; got != 3 {
		t.Errorf("removed worker's frames not kept: %d", got)
	}
}

func loadFrames(tb testing.TB, names ...string) ([][]byte, []Meta) {
	tb.Helper()
	var frames [][]byte
	var metas []Meta
	for _, n := range names {
		fs, err := OpenFile(filepath.Join(pcapDir, n))
		if err != nil {
			tb.Fatalf("open %s (tcpdump's test captures are expected in %s): %v", n, pcapDir, err)
		}
		var m Meta
		for {
			d, err := fs.Next(&m)
			if err != nil {
				break
			}
			frames = append(frames, append([]byte(nil), d...))
			metas = append(metas, m)
		}
		fs.Close()
	}
	return frames, metas
}

func TestReplayCountsMatchFrames(t *testing.T) {
	w, _ := newWorker(t)
	fs, err := OpenFile(filepath.Join(pcapDir, "vxlan.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	st, err := Replay(context.Background(), fs, w)
	if err != nil || st.LastErr != nil {
		t.Fatalf("replay: %v %v", err, st.LastErr)
	}
	var c Counters
	w.AddTo(&c)
	if st.Frames == 0 || c.Frames != st.Frames || c.Tunnel[1] == 0 {
		t.Errorf("replayed %d frames, counted %d, vxlan %d", st.Frames, c.Frames, c.Tunnel[1])
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func BenchmarkHandleEthIPv4TCP(b *testing.B) {
	w, _ := newWorker(b)
	frame := tcpFrame(b, 40000, "AP", make([]byte, 100))
	m := Meta{Time: time.Now().UnixNano(), Len: uint32(len(frame)), IfIndex: 3, Role: flow.RolePod, Dir: flow.DirIn, LinkType: decoders.LinkEthernet}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		m.Time += 1000
		w.Handle(frame, &m)
	}
}

// BenchmarkHandleMixedReplay decodes a mix of real captures (TCP, UDP,
// DNS, HTTP, VXLAN, Geneve, ICMP, fragments) and updates the flow table.
func BenchmarkHandleMixedReplay(b *testing.B) {
	frames, metas := loadFrames(b, "vxlan.pcap", "geneve.pcap", "dns_tcp.pcap", "dns_udp.pcap", "ipv4_tcp_http_xml.pcap", "tcp-handshake-nano.pcap", "accecn_handshake.pcap")
	if len(frames) == 0 {
		b.Fatal("no frames")
	}
	w, _ := newWorker(b)
	b.ReportAllocs()
	i := 0
	var t int64 = time.Now().UnixNano()
	for b.Loop() {
		m := metas[i]
		t += 1000
		m.Time = t
		w.Handle(frames[i], &m)
		if i++; i == len(frames) {
			i = 0
		}
	}
}

func TestMain(m *testing.M) {
	if _, err := os.Stat(pcapDir); err != nil {
		println("pipeline tests need tcpdump's test captures in", pcapDir)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
