package l2

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/internal/testutil"
)

func arpFrame(tb testing.TB, op uint16) []byte {
	return testutil.Build(tb, testutil.Eth(layers.EthernetTypeARP), &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: []byte{2, 0, 0, 0, 0, 1}, SourceProtAddress: []byte{10, 0, 0, 10},
		DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 11},
	})
}

func TestEthernet(t *testing.T) {
	qinq := testutil.Build(t, testutil.Eth(layers.EthernetTypeQinQ),
		&layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 200, Type: layers.EthernetTypeIPv4},
		gopacket.Payload(make([]byte, 20)))
	tests := []struct {
		name      string
		frame     []byte
		etype     uint16
		off       int
		vlans     []uint16
		reason    decoders.Reason
		wantLayer decoders.Layer
	}{
		{name: "plain", frame: testutil.Build(t, testutil.Eth(layers.EthernetTypeIPv4), gopacket.Payload([]byte{0x45})), etype: 0x0800, off: 14, wantLayer: decoders.LayerEthernet},
		{name: "qinq", frame: qinq, etype: 0x0800, off: 22, vlans: []uint16{100, 200}, wantLayer: decoders.LayerEthernet | decoders.LayerVLAN},
		{name: "short", frame: make([]byte, 13), reason: decoders.ReasonTruncated},
		{name: "cut tag", frame: qinq[:20], reason: decoders.ReasonTruncated},
		{name: "802.3 length", frame: append(make([]byte, 12), 0x00, 0x40), etype: 0x40, off: 14, wantLayer: decoders.LayerEthernet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s decoders.Summary
			etype, off, ok := Ethernet(tt.frame, &s)
			if _, r := s.ErrInfo(); r != tt.reason || ok != (tt.reason == decoders.ReasonNone) {
				t.Fatalf("reason %v ok %v, want %v", r, ok, tt.reason)
			}
			if tt.reason != decoders.ReasonNone {
				if !errors.Is(s.Err(), tt.reason.Err()) {
					t.Fatalf("Err %v is not %v", s.Err(), tt.reason.Err())
				}
				return
			}
			if etype != tt.etype || off != tt.off || !s.Layers.Has(tt.wantLayer) {
				t.Fatalf("etype %#x off %d layers %b", etype, off, s.Layers)
			}
			if s.Eth.Src != [6]byte{2, 0, 0, 0, 0, 1} && tt.name != "802.3 length" {
				t.Fatalf("src %x", s.Eth.Src)
			}
			for i, v := range tt.vlans {
				if s.Eth.VLANs[i] != v {
					t.Fatalf("vlan %d = %d, want %d", i, s.Eth.VLANs[i], v)
				}
			}
			if int(s.Eth.NumVLANs) != len(tt.vlans) {
				t.Fatalf("NumVLANs %d", s.Eth.NumVLANs)
			}
		})
	}
}

func TestARP(t *testing.T) {
	for _, op := range []uint16{decoders.ARPRequest, decoders.ARPReply} {
		frame := arpFrame(t, op)
		var s decoders.Summary
		etype, off, ok := Ethernet(frame, &s)
		if !ok || etype != decoders.EtherTypeARP {
			t.Fatalf("ethernet: %v %#x", ok, etype)
		}
		if !ARP(frame[off:], &s) || s.ARP.Op != op || s.ARP.SenderIP != netip.MustParseAddr("10.0.0.10") ||
			s.ARP.TargetIP != netip.MustParseAddr("10.0.0.11") || s.ARP.SenderMAC != [6]byte{2, 0, 0, 0, 0, 1} {
			t.Fatalf("arp: %+v", s.ARP)
		}
		var s2 decoders.Summary
		if ARP(frame[off:off+20], &s2) || !errors.Is(s2.Err(), decoders.ErrTruncated) {
			t.Fatalf("truncated ARP: %v", s2.Err())
		}
	}
}

func TestCooked(t *testing.T) {
	// LinuxSLL has no serializer in gopacket: packet type, ARPHRD_ETHER,
	// address length 6, address, protocol IPv6.
	sll := []byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 9, 0, 0, 0x86, 0xdd, 0x60}
	var s decoders.Summary
	etype, off, ok := LinuxSLL(sll, &s)
	if !ok || etype != decoders.EtherTypeIPv6 || off != 16 || s.Eth.Src != [6]byte{2, 0, 0, 0, 0, 9} {
		t.Fatalf("sll: ok %v etype %#x off %d src %x", ok, etype, off, s.Eth.Src)
	}
	sll2 := make([]byte, 21)
	sll2[0], sll2[1] = 0x08, 0x00 // protocol
	sll2[8], sll2[9] = 0, 1       // ARPHRD_ETHER
	sll2[11] = 6
	if etype, off, ok := LinuxSLL2(sll2, &s); !ok || etype != decoders.EtherTypeIPv4 || off != 20 {
		t.Fatalf("sll2: ok %v etype %#x off %d", ok, etype, off)
	}
	if _, _, ok := LinuxSLL2(sll2[:19], &s); ok {
		t.Fatal("short SLL2 accepted")
	}
}

func TestNull(t *testing.T) {
	tests := []struct {
		name  string
		hdr   []byte
		big   bool
		etype uint16
	}{
		{"ipv4 little endian", []byte{2, 0, 0, 0}, false, decoders.EtherTypeIPv4},
		{"ipv4 big endian host", []byte{0, 0, 0, 2}, false, decoders.EtherTypeIPv4},
		{"ipv6 freebsd", []byte{28, 0, 0, 0}, false, decoders.EtherTypeIPv6},
		{"loop ipv6", []byte{0, 0, 0, 24}, true, decoders.EtherTypeIPv6},
		{"other family", []byte{7, 0, 0, 0}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s decoders.Summary
			etype, off, ok := Null(tt.hdr, &s, tt.big)
			if !ok || etype != tt.etype || off != 4 {
				t.Fatalf("ok %v etype %#x off %d", ok, etype, off)
			}
		})
	}
}

func BenchmarkEthernet(b *testing.B) {
	frame := testutil.Build(b, testutil.Eth(layers.EthernetTypeIPv4), gopacket.Payload(make([]byte, 40)))
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		Ethernet(frame, &s)
	}
}

func BenchmarkARP(b *testing.B) {
	frame := arpFrame(b, 1)[14:]
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		ARP(frame, &s)
	}
}

func FuzzL2(f *testing.F) {
	f.Add(arpFrame(f, 1), uint8(0))
	f.Add(testutil.Build(f, testutil.Eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 5, Type: layers.EthernetTypeARP}), uint8(0))
	f.Add(make([]byte, 20), uint8(1))
	f.Add(make([]byte, 16), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		var s decoders.Summary
		var etype uint16
		var off int
		var ok bool
		switch kind % 4 {
		case 0:
			etype, off, ok = Ethernet(data, &s)
		case 1:
			etype, off, ok = LinuxSLL(data, &s)
		case 2:
			etype, off, ok = LinuxSLL2(data, &s)
		case 3:
			etype, off, ok = Null(data, &s, kind&4 != 0)
		}
		if ok != (s.Err() == nil) {
			t.Fatalf("ok %v but err %v", ok, s.Err())
		}
		if !ok {
			return
		}
		if off > len(data) {
			t.Fatalf("offset %d beyond %d bytes", off, len(data))
		}
		if etype == decoders.EtherTypeARP {
			ARP(data[off:], &s)
			if s.Layers.Has(decoders.LayerARP) && len(data)-off < 8 {
				t.Fatal("ARP decoded from fewer than 8 bytes")
			}
		}
	})
}
