package parser

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"flag"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/layerscope/layerscope/decoders/internal/testutil"
)

// The captures of testdata/fidelity (at the module root) are built here,
// frame by frame with gopacket's serializers, and committed: the tests read
// the committed files, and tshark reads the same files. Regenerate with
//
//	go test ./decoders/parser -run TestFidelityCaptures -fidelity.update
var updateFidelity = flag.Bool("fidelity.update", false, "rewrite the captures of testdata/fidelity")

// fidelityDir returns testdata/fidelity under the module root.
func fidelityDir(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(filepath.Dir(testutil.PcapDir(tb)), "fidelity")
}

// capture collects Ethernet frames with increasing timestamps.
type capture struct {
	t      time.Time
	frames [][]byte
	times  []time.Time
}

func newCapture() *capture {
	return &capture{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
}

func (c *capture) add(frame []byte, gap time.Duration) {
	c.t = c.t.Add(gap)
	c.frames = append(c.frames, frame)
	c.times = append(c.times, c.t)
}

func (c *capture) bytes(tb testing.TB) []byte {
	tb.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		tb.Fatal(err)
	}
	for i, f := range c.frames {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: c.times[i], CaptureLength: len(f), Length: len(f)}, f); err != nil {
			tb.Fatal(err)
		}
	}
	return b.Bytes()
}

// conv builds the frames of one TCP connection between a client and a
// server, tracking both sides' sequence numbers.
type conv struct {
	c            *capture
	cli, srv     net.IP
	cport, sport uint16
	cseq, sseq   uint32 // next sequence number of each side
	vlan         uint16 // 802.1Q tag of every frame when non-zero
}

func (v *conv) frame(tb testing.TB, fromClient bool, seq, ack uint32, syn, fin bool, payload []byte) []byte {
	tb.Helper()
	src, dst, sp, dp := v.cli, v.srv, v.cport, v.sport
	if !fromClient {
		src, dst, sp, dp = dst, src, dp, sp
	}
	ip := ipv4(src, dst, layers.IPProtocolTCP)
	tcp := tcpTo(tb, ip, &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), Seq: seq, Ack: ack,
		SYN: syn, FIN: fin, ACK: !syn || !fromClient, PSH: len(payload) > 0, Window: 64240})
	if syn && fromClient {
		tcp.Ack = 0
	}
	if v.vlan != 0 {
		return testutil.Build(tb, testutil.Eth(layers.EthernetTypeDot1Q),
			&layers.Dot1Q{VLANIdentifier: v.vlan, Type: layers.EthernetTypeIPv4}, ip, tcp, gopacket.Payload(payload))
	}
	return testutil.Build(tb, testutil.Eth(layers.EthernetTypeIPv4), ip, tcp, gopacket.Payload(payload))
}

// handshake adds SYN, SYN-ACK and ACK.
func (v *conv) handshake(tb testing.TB) {
	v.c.add(v.frame(tb, true, v.cseq, 0, true, false, nil), time.Millisecond)
	v.cseq++
	v.c.add(v.frame(tb, false, v.sseq, v.cseq, true, false, nil), 100*time.Microsecond)
	v.sseq++
	v.c.add(v.frame(tb, true, v.cseq, v.sseq, false, false, nil), 100*time.Microsecond)
}

// send adds a segment of payload from one side and returns its sequence
// number; the peer's ACK follows.
func (v *conv) send(tb testing.TB, fromClient bool, payload []byte) uint32 {
	seq, ack := &v.cseq, v.sseq
	if !fromClient {
		seq, ack = &v.sseq, v.cseq
	}
	at := *seq
	v.c.add(v.frame(tb, fromClient, at, ack, false, false, payload), time.Millisecond)
	*seq += uint32(len(payload))
	return at
}

// resend repeats payload at seq (a retransmission).
func (v *conv) resend(tb testing.TB, fromClient bool, seq uint32, payload []byte) {
	ack := v.sseq
	if !fromClient {
		ack = v.cseq
	}
	v.c.add(v.frame(tb, fromClient, seq, ack, false, false, payload), 200*time.Millisecond)
}

// ack adds a pure ACK from one side.
func (v *conv) ack(tb testing.TB, fromClient bool) {
	if fromClient {
		v.c.add(v.frame(tb, true, v.cseq, v.sseq, false, false, nil), 100*time.Microsecond)
	} else {
		v.c.add(v.frame(tb, false, v.sseq, v.cseq, false, false, nil), 100*time.Microsecond)
	}
}

// close adds FIN, FIN and the last ACK.
func (v *conv) close(tb testing.TB) {
	v.c.add(v.frame(tb, true, v.cseq, v.sseq, false, true, nil), time.Millisecond)
	v.cseq++
	v.c.add(v.frame(tb, false, v.sseq, v.cseq, false, true, nil), 100*time.Microsecond)
	v.sseq++
	v.ack(tb, true)
}

func httpReq(method, target string) []byte {
	return []byte(method + " " + target + " HTTP/1.1\r\nHost: web.default.svc\r\nUser-Agent: layerscope-test\r\n\r\n")
}

func httpResp(status string) []byte {
	return []byte("HTTP/1.1 " + status + "\r\nContent-Length: 0\r\nServer: layerscope-test\r\n\r\n")
}

// httpRetransCapture: keep-alive HTTP/1.1 connections whose requests and
// responses are retransmitted, one of them with a client sequence space
// that wraps around 2^32 between its requests.
func httpRetransCapture(tb testing.TB) []byte {
	c := newCapture()
	for i, isn := range []uint32{1_000_000, 0xffffff80} {
		v := &conv{c: c, cli: podA, srv: podC, cport: uint16(40000 + i), sport: 8080, cseq: isn, sseq: 5_000_000 + uint32(i)}
		v.handshake(tb)
		for j, path := range []string{"/a", "/b", "/c"} {
			req := httpReq("GET", path)
			seq := v.send(tb, true, req)
			if j != 1 {
				v.resend(tb, true, seq, req) // the ACK was lost
			}
			v.ack(tb, false)
			resp := httpResp("200 OK")
			if j == 2 {
				resp = httpResp("503 Service Unavailable")
			}
			seq = v.send(tb, false, resp)
			if j != 0 {
				v.resend(tb, false, seq, resp)
				v.resend(tb, false, seq, resp)
			}
			v.ack(tb, true)
		}
		v.close(tb)
	}
	return c.bytes(tb)
}

// httpMethodsCapture: one keep-alive connection with requests of methods
// inside and outside the nine common ones, and payloads that only look
// like a request line.
func httpMethodsCapture(tb testing.TB) []byte {
	c := newCapture()
	v := &conv{c: c, cli: podA, srv: podC, cport: 40100, sport: 80, cseq: 7000, sseq: 9000}
	v.handshake(tb)
	for _, r := range []struct{ method, target string }{
		{"GET", "/"},
		{"PROPFIND", "/dav/"},
		{"MKCOL", "/dav/new/"},
		{"PURGE", "/cache/item"},
		{"REPORT", "/dav/cal"},
		{"LINK", "/a"},
		{"QUERY", "/search"},
		{"BREW", "/pot-1"},
		{"X-CUSTOM", "*"},
		{"PATCH", "/items/7"},
	} {
		v.send(tb, true, httpReq(r.method, r.target))
		v.ack(tb, false)
		v.send(tb, false, httpResp("200 OK"))
		v.ack(tb, true)
	}
	// Request bodies and text that are not request lines.
	for _, p := range []string{
		"BREW coffee please\r\n",
		"HELLO / SMTP/1.0\r\n",
		"{\"method\":\"GET\"}\r\n",
		"NOT A REQUEST HTTP/1.1\r\n",
	} {
		v.send(tb, true, []byte(p))
		v.ack(tb, false)
	}
	v.close(tb)
	return c.bytes(tb)
}

// tlsStreams runs a TLS 1.3 handshake in which the server insists on a
// group the client offered no key share for (a HelloRetryRequest) and
// returns each side's records in the order they were written.
func tlsStreams(tb testing.TB) (client, server [][]byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "web"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"web.default.svc"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	// Loopback TCP rather than net.Pipe: both sides write two records in a
	// row, which an unbuffered pipe would deadlock on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	c2, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	cr, sr := &streamRecorder{Conn: c1}, &streamRecorder{Conn: c2}
	srv := tls.Server(sr, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		CurvePreferences: []tls.CurveID{tls.CurveP384}, NextProtos: []string{"h2"}})
	cli := tls.Client(cr, &tls.Config{ServerName: "web.default.svc", InsecureSkipVerify: true, NextProtos: []string{"h2"},
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP384}})
	done := make(chan error, 1)
	go func() { done <- srv.Handshake(); _, _ = io.Copy(io.Discard, srv) }()
	if err := cli.Handshake(); err != nil {
		tb.Fatal(err)
	}
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	cli.Close()
	srv.Close()
	return records(tb, cr.bytes()), records(tb, sr.bytes())
}

// streamRecorder keeps every byte written to a connection.
type streamRecorder struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *streamRecorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.buf.Write(b)
	r.mu.Unlock()
	return r.Conn.Write(b)
}

func (r *streamRecorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.buf.Bytes()...)
}

// records splits a TLS byte stream into records.
func records(tb testing.TB, b []byte) [][]byte {
	tb.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 5 {
			tb.Fatalf("%d bytes after the last record", len(b))
		}
		n := 5 + int(binary.BigEndian.Uint16(b[3:5]))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func concat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// tlsCapture: a TLS 1.3 handshake with a HelloRetryRequest, the records
// packed into segments as a kernel coalescing writes would: the server's
// HelloRetryRequest with its ChangeCipherSpec, the client's
// ChangeCipherSpec with its second ClientHello. A second connection sends
// a warning alert and a ClientHello in one segment, a third an alert and
// a ServerHello, a fourth an application data record before a hello
// (not a handshake this decoder walks past).
func tlsCapture(tb testing.TB) []byte {
	cl, sv := tlsStreams(tb)
	const ccs, hs = 20, 22
	if len(cl) < 3 || cl[0][0] != hs || cl[1][0] != ccs || cl[2][0] != hs || len(sv) < 3 || sv[0][0] != hs || sv[1][0] != ccs || sv[2][0] != hs {
		tb.Fatalf("unexpected record sequence: client %d records, server %d", len(cl), len(sv))
	}
	c := newCapture()
	v := &conv{c: c, cli: podA, srv: podC, cport: 40200, sport: 443, cseq: 1000, sseq: 2000}
	v.handshake(tb)
	v.send(tb, true, cl[0])                 // ClientHello
	v.send(tb, false, concat(sv[0], sv[1])) // HelloRetryRequest, ChangeCipherSpec
	v.send(tb, true, concat(cl[1], cl[2]))  // ChangeCipherSpec, ClientHello
	v.send(tb, false, concat(sv[2:]...))    // ServerHello, encrypted extensions...
	v.send(tb, true, concat(cl[3:]...))     // client Finished
	v.close(tb)

	alert := []byte{21, 3, 3, 0, 2, 1, 0} // warning close_notify
	appData := []byte{23, 3, 3, 0, 4, 1, 2, 3, 4}
	for i, seg := range []struct{ client, server []byte }{
		{concat(alert, cl[0]), nil},
		{nil, concat(alert, sv[2])},
		{concat(appData, cl[2]), nil},
	} {
		v := &conv{c: c, cli: podA, srv: podC, cport: uint16(40201 + i), sport: 443, cseq: 3000, sseq: 4000}
		v.handshake(tb)
		if seg.client != nil {
			v.send(tb, true, seg.client)
			v.ack(tb, false)
		} else {
			v.send(tb, true, cl[0])
			v.send(tb, false, seg.server)
			v.ack(tb, true)
		}
		v.close(tb)
	}
	return c.bytes(tb)
}

// vxlanVLANCapture: VXLAN between two nodes whose uplink is VLAN-tagged
// (802.1Q and QinQ), next to untagged VXLAN and VXLAN whose inner frame is
// tagged.
func vxlanVLANCapture(tb testing.TB) []byte {
	c := newCapture()
	inner := func(tag uint16) []byte {
		ip := ipv4(podA, podC, layers.IPProtocolTCP)
		tcp := tcpTo(tb, ip, &layers.TCP{SrcPort: 40300, DstPort: 8080, SYN: true, Seq: 1, Window: 64240})
		if tag != 0 {
			return testutil.Build(tb, testutil.Eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: tag, Type: layers.EthernetTypeIPv4}, ip, tcp)
		}
		return testutil.Build(tb, testutil.Eth(layers.EthernetTypeIPv4), ip, tcp)
	}
	outer := func(tags []uint16, in []byte) []byte {
		ip := ipv4(node1, node2, layers.IPProtocolUDP)
		ls := []gopacket.SerializableLayer{}
		switch len(tags) {
		case 0:
			ls = append(ls, testutil.Eth(layers.EthernetTypeIPv4))
		case 1:
			ls = append(ls, testutil.Eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: tags[0], Type: layers.EthernetTypeIPv4})
		case 2:
			ls = append(ls, testutil.Eth(layers.EthernetTypeQinQ), &layers.Dot1Q{VLANIdentifier: tags[0], Type: layers.EthernetTypeDot1Q},
				&layers.Dot1Q{VLANIdentifier: tags[1], Type: layers.EthernetTypeIPv4})
		}
		ls = append(ls, ip, udpTo(tb, ip, 51000, 4789), &layers.VXLAN{ValidIDFlag: true, VNI: 1}, gopacket.Payload(in))
		return testutil.Build(tb, ls...)
	}
	for _, f := range []struct {
		outer []uint16
		inner uint16
	}{
		{[]uint16{100}, 0}, {[]uint16{100}, 0}, {nil, 0}, {[]uint16{200, 300}, 0}, {nil, 42}, {[]uint16{100}, 42}, {nil, 0},
	} {
		c.add(outer(f.outer, inner(f.inner)), time.Millisecond)
	}
	// A tagged frame without a tunnel.
	ip := ipv4(podA, podC, layers.IPProtocolUDP)
	c.add(testutil.Build(tb, testutil.Eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4},
		ip, udpTo(tb, ip, 40000, 9999), gopacket.Payload("x")), time.Millisecond)
	return c.bytes(tb)
}

// oldVersion returns pcap (little endian, version 2.4) as libpcap 2.minor
// wrote it, each frame cut to snap bytes: before 2.3 the record header
// held the original length first and the captured length second.
func oldVersion(pcap []byte, minor uint16, snap int) []byte {
	out := append([]byte(nil), pcap[:24]...)
	binary.LittleEndian.PutUint16(out[6:8], minor)
	binary.LittleEndian.PutUint32(out[16:20], uint32(snap))
	le := binary.LittleEndian
	for off := 24; off < len(pcap); {
		h := pcap[off : off+16]
		incl := int(le.Uint32(h[8:12]))
		data := pcap[off+16 : off+16+incl]
		caplen := min(incl, snap)
		rec := append([]byte(nil), h...)
		a, b := uint32(caplen), le.Uint32(h[12:16])
		if minor < 3 {
			a, b = b, a
		}
		le.PutUint32(rec[8:12], a)
		le.PutUint32(rec[12:16], b)
		out = append(append(out, rec...), data[:caplen]...)
		off += 16 + incl
	}
	return out
}

// truncatedLast returns pcap whose last record keeps its header and loses
// its data.
func truncatedLast(tb testing.TB, pcap []byte) []byte {
	tb.Helper()
	off, last := 24, 24
	for off < len(pcap) {
		last = off
		off += 16 + int(binary.LittleEndian.Uint32(pcap[off+8:off+12]))
	}
	return append([]byte(nil), pcap[:last+16]...)
}

// fidelityCaptures are the committed captures and how each is built.
func fidelityCaptures(tb testing.TB) map[string][]byte {
	small := httpRetransCapture(tb)
	return map[string][]byte{
		"http-retransmit.pcap":   small,
		"http-methods.pcap":      httpMethodsCapture(tb),
		"tls-hello-records.pcap": tlsCapture(tb),
		"vxlan-vlan.pcap":        vxlanVLANCapture(tb),
		"pcap-v2.1.pcap":         oldVersion(small, 1, 96),
		"pcap-v2.2.pcap":         oldVersion(small, 2, 96),
		"truncated-last.pcap":    truncatedLast(tb, small),
	}
}

// TestFidelityCaptures checks that the committed captures exist, and
// rewrites them with -fidelity.update. The TLS capture holds fresh keys at
// each generation, so only the presence of the files is checked.
func TestFidelityCaptures(t *testing.T) {
	dir := fidelityDir(t)
	if *updateFidelity {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range fidelityCaptures(t) {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"http-retransmit.pcap", "http-methods.pcap", "tls-hello-records.pcap", "vxlan-vlan.pcap", "pcap-v2.1.pcap", "pcap-v2.2.pcap", "truncated-last.pcap"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("committed capture missing (regenerate with -fidelity.update): %v", err)
		}
	}
}
