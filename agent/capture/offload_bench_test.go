package capture

import (
	"bytes"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// BenchmarkOffloadFilter runs the fast path's filter in the kernel
// (BPF_PROG_TEST_RUN, b.N runs per call) on one frame of an established
// flow: an ACK with 100 bytes of payload (counted), the same with a
// payload that may start an HTTP request (handed over after the probe), and
// a bare ACK (counted without the probe). ns/op is the kernel's run time of
// the program per frame, the part of the fast path that runs in softirq.
func BenchmarkOffloadFilter(b *testing.B) {
	requireRoot(b)
	for _, c := range []struct {
		name    string
		payload []byte
		want    uint32
	}{
		{"counted", bytes.Repeat([]byte{'x'}, 100), 0},
		{"counted-ack", nil, 0},
		{"handed-over-http", append([]byte("GET /a HTTP/1.1\r\n"), bytes.Repeat([]byte{'x'}, 83)...), DefaultSnapLen},
	} {
		b.Run(c.name, func(b *testing.B) {
			o, err := newOffload(&OffloadConfig{}, DefaultSnapLen)
			if err != nil {
				b.Fatal(err)
			}
			defer o.Close()
			// The test run takes the first 14 bytes as the frame's link
			// header and hands the program the rest: a whole Ethernet
			// frame follows them.
			in := append(testEthHeader(), testTCPFrame(b, c.payload)...)
			for range DefaultOffloadFirst + 1 { // the entry and the flow's first frames
				if _, _, err := o.prog.Test(in); err != nil {
					b.Fatal(err)
				}
			}
			ret, per, err := o.prog.Benchmark(in, b.N, b.ResetTimer)
			if err != nil {
				b.Fatal(err)
			}
			if ret != c.want {
				b.Fatalf("filter returned %d, want %d", ret, c.want)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/op")
		})
	}
}

func testEthHeader() []byte {
	return []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00}
}

// testTCPFrame returns an Ethernet/IPv4/TCP ACK frame with payload.
func testTCPFrame(b testing.TB, payload []byte) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 244, 0, 5}, DstIP: net.IP{10, 244, 1, 8}, Flags: layers.IPv4DontFragment}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 8080, Seq: 1, Ack: 1, ACK: true, Window: 502}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}
