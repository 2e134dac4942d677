package l4

import (
	"errors"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/internal/testutil"
)

var ip4 = &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 2)}

// tcpSeg returns a serialized TCP header plus payload (no IP header).
func tcpSeg(tb testing.TB, tcp *layers.TCP, payload []byte) []byte {
	if err := tcp.SetNetworkLayerForChecksum(ip4); err != nil {
		tb.Fatal(err)
	}
	pkt := testutil.Build(tb, ip4, tcp, gopacket.Payload(payload))
	return pkt[20:]
}

func synMSS(tb testing.TB) []byte {
	return tcpSeg(tb, &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 7, SYN: true, Window: 64240, Options: []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}}, nil)
}

func TestTCP(t *testing.T) {
	data := tcpSeg(t, &layers.TCP{SrcPort: 8080, DstPort: 40000, Seq: 100, Ack: 200, ACK: true, PSH: true, Window: 502}, []byte("hello"))
	badOpt := synMSS(t)
	badOpt[20], badOpt[21] = 2, 40 // MSS option claiming 40 bytes
	tests := []struct {
		name    string
		seg     []byte
		wireLen int
		reason  decoders.Reason
		flags   decoders.TCPFlags
		mss     uint16
		plen    uint16
		payload int
	}{
		{name: "ack psh", seg: data, wireLen: len(data), flags: decoders.TCPAck | decoders.TCPPsh, plen: 5, payload: 5},
		{name: "syn mss", seg: synMSS(t), wireLen: 28, flags: decoders.TCPSyn, mss: 1460},
		{name: "cut payload", seg: data[:22], wireLen: len(data), flags: decoders.TCPAck | decoders.TCPPsh, plen: 5, payload: 2},
		{name: "truncated", seg: data[:19], reason: decoders.ReasonTruncated},
		{name: "bad data offset", seg: append([]byte{0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x40}, make([]byte, 7)...), reason: decoders.ReasonBadHeaderLength},
		{name: "data offset beyond", seg: append([]byte{0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0}, make([]byte, 7)...), reason: decoders.ReasonTruncated},
		{name: "bad option", seg: badOpt, wireLen: len(badOpt), reason: decoders.ReasonBadOption, flags: decoders.TCPSyn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s decoders.Summary
			pl, ok := TCP(tt.seg, tt.wireLen, &s)
			if _, r := s.ErrInfo(); r != tt.reason {
				t.Fatalf("reason %v, want %v", r, tt.reason)
			}
			if tt.reason != decoders.ReasonNone && !errors.Is(s.Err(), tt.reason.Err()) {
				t.Fatalf("Err %v", s.Err())
			}
			if !ok {
				if tt.reason == decoders.ReasonNone {
					t.Fatal("not ok without reason")
				}
				return
			}
			l := s.L4
			if l.Flags != tt.flags || l.MSS != tt.mss || l.PayloadLen != tt.plen || len(pl) != tt.payload {
				t.Fatalf("l4 %+v payload %d", l, len(pl))
			}
			if tt.name == "ack psh" && (l.SrcPort != 8080 || l.DstPort != 40000 || l.Seq != 100 || l.Ack != 200 || l.Window != 502 || string(pl) != "hello") {
				t.Fatalf("fields %+v %q", l, pl)
			}
		})
	}
}

func TestUDP(t *testing.T) {
	u := &layers.UDP{SrcPort: 5353, DstPort: 53}
	if err := u.SetNetworkLayerForChecksum(ip4); err != nil {
		t.Fatal(err)
	}
	pkt := testutil.Build(t, ip4, u, gopacket.Payload(make([]byte, 30)))[20:]
	var s decoders.Summary
	pl, ok := UDP(append(pkt, 0, 0), len(pkt), &s) // trailing padding is trimmed
	if !ok || len(pl) != 30 || s.L4.PayloadLen != 30 || s.L4.SrcPort != 5353 || s.L4.DstPort != 53 {
		t.Fatalf("udp: ok %v payload %d %+v", ok, len(pl), s.L4)
	}
	bad := append([]byte(nil), pkt...)
	bad[4], bad[5] = 0, 4
	var s2 decoders.Summary
	if _, ok := UDP(bad, len(bad), &s2); ok || !errors.Is(s2.Err(), decoders.ErrBadLength) {
		t.Fatalf("bad length: %v", s2.Err())
	}
	var s3 decoders.Summary
	if _, ok := UDP(pkt[:7], 7, &s3); ok || !errors.Is(s3.Err(), decoders.ErrTruncated) {
		t.Fatalf("short: %v", s3.Err())
	}
}

func TestTunnels(t *testing.T) {
	vx := testutil.Build(t, &layers.VXLAN{ValidIDFlag: true, VNI: 0x123456}, testutil.Eth(layers.EthernetTypeIPv4))
	var s decoders.Summary
	inner, ok := VXLAN(vx, &s)
	if !ok || s.Tunnel.VNI != 0x123456 || s.Tunnel.Kind != decoders.TunnelVXLAN || len(inner) < 14 || inner[12] != 0x08 {
		t.Fatalf("vxlan: %v %+v %d", ok, s.Tunnel, len(inner))
	}
	// Geneve version 0, 1 option word, protocol IPv4, VNI 42.
	gn := []byte{0x01, 0, 0x08, 0x00, 0, 0, 42, 0, 1, 2, 3, 4, 0x45}
	var s2 decoders.Summary
	inner, proto, ok := Geneve(gn, &s2)
	if !ok || proto != decoders.EtherTypeIPv4 || s2.Tunnel.VNI != 42 || len(inner) != 1 || inner[0] != 0x45 {
		t.Fatalf("geneve: %v %#x %+v", ok, proto, s2.Tunnel)
	}
	for _, tc := range []struct {
		name   string
		b      []byte
		reason decoders.Reason
	}{
		{"short", gn[:7], decoders.ReasonTruncated},
		{"options beyond", gn[:11], decoders.ReasonTruncated},
		{"version 1", append([]byte{0x40}, gn[1:]...), decoders.ReasonBadVersion},
	} {
		var s decoders.Summary
		if _, _, ok := Geneve(tc.b, &s); ok || !errors.Is(s.Err(), tc.reason.Err()) {
			t.Errorf("%s: ok %v err %v", tc.name, ok, s.Err())
		}
	}
}

func BenchmarkTCP(b *testing.B) {
	seg := tcpSeg(b, &layers.TCP{SrcPort: 8080, DstPort: 40000, Seq: 100, Ack: 200, ACK: true, Window: 502}, make([]byte, 100))
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		TCP(seg, len(seg), &s)
	}
}

func BenchmarkTCPSynMSS(b *testing.B) {
	seg := synMSS(b)
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		TCP(seg, len(seg), &s)
	}
}

func FuzzL4(f *testing.F) {
	f.Add(synMSS(f), uint8(0))
	f.Add([]byte{0, 53, 0, 53, 0, 8, 0, 0}, uint8(1))
	f.Add([]byte{8, 0, 0, 0, 0, 0, 1, 0, 1}, uint8(2))
	f.Add([]byte{0x01, 0, 0x65, 0x58, 0, 0, 42, 0, 1, 2, 3, 4}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		var s decoders.Summary
		var out []byte
		var ok bool
		switch kind % 4 {
		case 0:
			out, ok = TCP(data, len(data), &s)
			if ok && (int(s.L4.HeaderLen)+len(out) != len(data) || s.L4.HeaderLen < 20) {
				t.Fatalf("header %d + payload %d != %d", s.L4.HeaderLen, len(out), len(data))
			}
		case 1:
			out, ok = UDP(data, len(data), &s)
			if ok && len(out)+8 > len(data) {
				t.Fatalf("payload %d of %d bytes", len(out), len(data))
			}
		case 2:
			out, ok = VXLAN(data, &s)
		case 3:
			out, _, ok = Geneve(data, &s)
			if ok && s.Tunnel.VNI > 0xffffff {
				t.Fatalf("VNI %d", s.Tunnel.VNI)
			}
		}
		if ok == (s.Err() != nil) && kind%4 != 0 {
			t.Fatalf("ok %v err %v", ok, s.Err())
		}
		if len(out) > len(data) {
			t.Fatalf("output %d beyond input %d", len(out), len(data))
		}
	})
}
