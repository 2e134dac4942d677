package l6

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/layerscope/layerscope/decoders"
)

// recorder keeps the first Write of a connection: the first TLS flight.
type recorder struct {
	net.Conn
	first chan []byte
}

func (r *recorder) Write(b []byte) (int, error) {
	select {
	case r.first <- append([]byte(nil), b...):
	default:
	}
	return r.Conn.Write(b)
}

// hellos runs a real crypto/tls handshake over a pipe and returns the
// ClientHello and ServerHello records as written on the wire.
func hellos(tb testing.TB, serverName string, alpn []string, maxVersion uint16) (client, server []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	c1, c2 := net.Pipe()
	cr := &recorder{Conn: c1, first: make(chan []byte, 1)}
	sr := &recorder{Conn: c2, first: make(chan []byte, 1)}
	srv := tls.Server(sr, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: alpn, MaxVersion: maxVersion})
	cli := tls.Client(cr, &tls.Config{ServerName: serverName, NextProtos: alpn, InsecureSkipVerify: true, MaxVersion: maxVersion})
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
	return <-cr.first, <-sr.first
}

func TestHellos(t *testing.T) {
	tests := []struct {
		name       string
		sni        string
		alpn       []string
		max        uint16
		wantServer uint16
	}{
		{"tls13 h2", "api.example.com", []string{"h2", "http/1.1"}, 0, tls.VersionTLS13},
		{"tls12 no alpn", "svc.ns.svc.cluster.local", nil, tls.VersionTLS12, tls.VersionTLS12},
		{"long sni", strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + ".example", []string{"http/1.1"}, 0, tls.VersionTLS13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, sh := hellos(t, tt.sni, tt.alpn, tt.max)
			var s decoders.Summary
			if !TLS(ch, &s) || s.Err() != nil {
				t.Fatalf("client hello not decoded: %v", s.Err())
			}
			wantSNI, trunc := tt.sni, false
			if len(wantSNI) > decoders.MaxSNI {
				wantSNI, trunc = wantSNI[:decoders.MaxSNI], true
			}
			if s.TLS.HandshakeType != decoders.TLSClientHello || string(s.TLS.ServerName()) != wantSNI || (s.Trunc&decoders.TruncSNI != 0) != trunc {
				t.Fatalf("client hello: type %d sni %q trunc %b", s.TLS.HandshakeType, s.TLS.ServerName(), s.Trunc)
			}
			wantVer := uint16(tls.VersionTLS13)
			if tt.max != 0 {
				wantVer = tt.max
			}
			if s.TLS.Version != wantVer || s.TLS.LegacyVersion != tls.VersionTLS12 {
				t.Fatalf("client versions legacy %#x offered %#x", s.TLS.LegacyVersion, s.TLS.Version)
			}
			if len(tt.alpn) > 0 && string(s.TLS.Protocol()) != tt.alpn[0] {
				t.Fatalf("alpn %q", s.TLS.Protocol())
			}
			s.Reset()
			if !TLS(sh, &s) || s.Err() != nil || s.TLS.HandshakeType != decoders.TLSServerHello || s.TLS.Version != tt.wantServer || s.TLS.CipherSuite == 0 {
				t.Fatalf("server hello: %v %+v", s.Err(), s.TLS)
			}
			// Cut by the snap length: what fits is decoded, the hello is marked.
			s.Reset()
			if !TLS(ch[:60], &s) || s.Trunc&decoders.TruncHello == 0 || s.Err() != nil {
				t.Fatalf("cut hello: %v trunc %b", s.Err(), s.Trunc)
			}
		})
	}
}

func TestNotHello(t *testing.T) {
	var s decoders.Summary
	for _, p := range [][]byte{
		{0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5},  // application data
		{0x16, 3, 3, 0, 5, 20, 0, 0, 1, 0}, // finished
		{0x16, 9, 9, 0, 5, 1, 0, 0, 1, 0},  // not a TLS version
		[]byte("GET / HTTP/1.1\r\n"),
	} {
		if TLS(p, &s) || s.Layers.Has(decoders.LayerTLS) {
			t.Errorf("%x decoded as a hello", p)
		}
	}
	// A record shorter than its handshake header claims is malformed.
	bad := []byte{0x16, 3, 1, 0, 2, 1, 0, 0, 40, 3, 3}
	if TLS(bad, &s) || !errors.Is(s.Err(), decoders.ErrBadLength) {
		t.Errorf("bad record length: %v", s.Err())
	}
}

// TestHelloAfterRecords: a hello that follows other records of its segment
// (a ChangeCipherSpec before the second ClientHello after a
// HelloRetryRequest, an alert, application data) is found; a handshake
// record after a ChangeCipherSpec that is not a plausible whole hello (a
// TLS 1.2 encrypted Finished) is not taken for one.
func TestHelloAfterRecords(t *testing.T) {
	ch, sh := hellos(t, "api.example.com", []string{"h2"}, 0)
	ccs := []byte{20, 3, 3, 0, 1, 1}
	alert := []byte{21, 3, 3, 0, 2, 1, 0}
	appData := []byte{23, 3, 3, 0, 4, 9, 9, 9, 9}
	finished := []byte{22, 3, 3, 0, 8, 1, 0, 0, 40, 0xde, 0xad, 0xbe, 0xef} // encrypted: noise that starts like a ClientHello
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	many := bytes.Repeat(ccs, maxRecords)
	tests := []struct {
		name    string
		payload []byte
		htype   uint8 // 0: no hello
		sni     string
	}{
		{"ccs, client hello", cat(ccs, ch), decoders.TLSClientHello, "api.example.com"},
		{"alert, client hello", cat(alert, ch), decoders.TLSClientHello, "api.example.com"},
		{"alert, server hello", cat(alert, sh), decoders.TLSServerHello, ""},
		{"application data, client hello", cat(appData, ch), decoders.TLSClientHello, "api.example.com"},
		{"server hello, ccs", cat(sh, ccs), decoders.TLSServerHello, ""},
		{"ccs, encrypted finished", cat(ccs, finished), 0, ""},
		{"ccs, client hello cut by the capture", cat(ccs, ch[:60]), decoders.TLSClientHello, ""},
		{"ccs only", ccs, 0, ""},
		{"too many records first", cat(many, ch), 0, ""},
		{"record longer than the segment", cat([]byte{21, 3, 3, 0, 200}, ch), 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s decoders.Summary
			ok := TLS(tt.payload, &s)
			if ok != (tt.htype != 0) || ok != s.Layers.Has(decoders.LayerTLS) || s.Err() != nil {
				t.Fatalf("ok %v layers %b err %v", ok, s.Layers, s.Err())
			}
			if ok && (s.TLS.HandshakeType != tt.htype || string(s.TLS.ServerName()) != tt.sni) {
				t.Fatalf("type %d sni %q", s.TLS.HandshakeType, s.TLS.ServerName())
			}
			if cut := s.Trunc&decoders.TruncHello != 0; ok && cut != (len(tt.payload) < 100) {
				t.Fatalf("trunc %b", s.Trunc)
			}
		})
	}
}

func BenchmarkClientHello(b *testing.B) {
	ch, _ := hellos(b, "api.example.com", []string{"h2"}, 0)
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		TLS(ch, &s)
	}
}

func BenchmarkClientHelloAfterCCS(b *testing.B) {
	ch, _ := hellos(b, "api.example.com", []string{"h2"}, 0)
	p := append([]byte{20, 3, 3, 0, 1, 1}, ch...)
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		TLS(p, &s)
	}
}

func FuzzTLS(f *testing.F) {
	ch, sh := hellos(f, "seed.example", []string{"h2"}, 0)
	f.Add(ch)
	f.Add(sh)
	f.Add(append([]byte{20, 3, 3, 0, 1, 1}, ch...))
	f.Add(append([]byte{21, 3, 3, 0, 2, 1, 0}, sh...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s decoders.Summary
		if !TLS(data, &s) {
			return
		}
		if int(s.TLS.SNILen) > len(data) || int(s.TLS.ALPNLen) > len(data) || int(s.TLS.ALPNLen) > decoders.MaxALPN {
			t.Fatalf("lengths SNI %d ALPN %d from %d bytes", s.TLS.SNILen, s.TLS.ALPNLen, len(data))
		}
		if s.TLS.HandshakeType != decoders.TLSClientHello && s.TLS.HandshakeType != decoders.TLSServerHello {
			t.Fatalf("handshake type %d", s.TLS.HandshakeType)
		}
	})
}
