package l7

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/layerscope/layerscope/decoders"
)

func pack(tb testing.TB, m *dns.Msg) []byte {
	tb.Helper()
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func query(tb testing.TB, name string, qtype uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Id = 0xbeef
	return pack(tb, m)
}

func response(tb testing.TB, name string, rcode int, answers int) []byte {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	m.Id = 0x1234
	for i := 0; i < answers; i++ {
		rr, err := dns.NewRR(dns.Fqdn(name) + " 30 IN A 10.96.0.42")
		if err != nil {
			tb.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	m.Compress = true
	return pack(tb, m)
}

func TestDNS(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	tests := []struct {
		name     string
		msg      []byte
		reason   decoders.Reason
		id       uint16
		response bool
		rcode    uint8
		qtype    uint16
		qname    string
		answers  uint16
		trunc    bool
	}{
		{name: "query", msg: query(t, "kubernetes.default.svc.cluster.local", dns.TypeAAAA), id: 0xbeef, qtype: dns.TypeAAAA, qname: "kubernetes.default.svc.cluster.local"},
		{name: "noerror", msg: response(t, "web.default.svc", dns.RcodeSuccess, 2), id: 0x1234, response: true, qtype: dns.TypeA, qname: "web.default.svc", answers: 2},
		{name: "nxdomain", msg: response(t, "typo.svc", dns.RcodeNameError, 0), id: 0x1234, response: true, rcode: 3, qtype: dns.TypeA, qname: "typo.svc"},
		{name: "servfail", msg: response(t, "x.y", dns.RcodeServerFailure, 0), id: 0x1234, response: true, rcode: 2, qtype: dns.TypeA, qname: "x.y"},
		{name: "root", msg: query(t, ".", dns.TypeNS), id: 0xbeef, qtype: dns.TypeNS, qname: ""},
		{name: "longest name", msg: query(t, long, dns.TypeA), id: 0xbeef, qtype: dns.TypeA, qname: long},
		{name: "short header", msg: make([]byte, 11), reason: decoders.ReasonTruncated},
		{name: "cut question", msg: query(t, "abc.example", dns.TypeA)[:16], reason: decoders.ReasonTruncated, id: 0xbeef},
		{name: "pointer loop", msg: append(query(t, "a", dns.TypeA)[:12], 0xc0, 12, 0, 1, 0, 1), reason: decoders.ReasonBadName, id: 0xbeef},
		{name: "bad label type", msg: append(query(t, "a", dns.TypeA)[:12], 0x41, 'a', 0, 0, 1, 0, 1), reason: decoders.ReasonBadName, id: 0xbeef},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s decoders.Summary
			ok := DNS(tt.msg, &s)
			if _, r := s.ErrInfo(); r != tt.reason {
				t.Fatalf("reason %v, want %v", r, tt.reason)
			}
			if tt.reason != decoders.ReasonNone && !errors.Is(s.Err(), tt.reason.Err()) {
				t.Fatalf("Err %v", s.Err())
			}
			if !ok {
				return
			}
			d := s.DNS
			if d.ID != tt.id {
				t.Fatalf("id %#x", d.ID)
			}
			if tt.reason != decoders.ReasonNone {
				return
			}
			if d.Response != tt.response || d.RCode != tt.rcode || d.QType != tt.qtype || string(d.Name()) != tt.qname || d.ANCount != tt.answers ||
				(s.Trunc&decoders.TruncQName != 0) != tt.trunc {
				t.Fatalf("dns %+v name %q trunc %b", d, d.Name(), s.Trunc)
			}
		})
	}
}

func TestDNSOverTCP(t *testing.T) {
	msg := response(t, "db.prod.svc", dns.RcodeNameError, 0)
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	framed = append(framed, msg...)
	var s decoders.Summary
	if !DNSOverTCP(framed, &s) || s.DNS.RCode != 3 || string(s.DNS.Name()) != "db.prod.svc" {
		t.Fatalf("dns over tcp: %v %+v", s.Err(), s.DNS)
	}
	if DNSOverTCP([]byte{0, 3, 1, 2, 3}, &s) {
		t.Fatal("length below a header accepted")
	}
}

func TestHTTP(t *testing.T) {
	var req bytes.Buffer
	r, _ := http.NewRequest(http.MethodPost, "http://10.96.0.42:8080/api/v1/items", strings.NewReader("{}"))
	if err := r.Write(&req); err != nil {
		t.Fatal(err)
	}
	var resp bytes.Buffer
	rr := &http.Response{StatusCode: 503, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, ContentLength: 0, Body: http.NoBody}
	if err := rr.Write(&resp); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload []byte
		ok      bool
		want    decoders.HTTP
	}{
		{"post", req.Bytes(), true, decoders.HTTP{Method: decoders.MethodPost, VersionMinor: 1}},
		{"get 1.0", []byte("GET / HTTP/1.0\r\n\r\n"), true, decoders.HTTP{Method: decoders.MethodGet}},
		{"options star", []byte("OPTIONS * HTTP/1.1\r\n"), true, decoders.HTTP{Method: decoders.MethodOptions, VersionMinor: 1}},
		{"response 503", resp.Bytes(), true, decoders.HTTP{Response: true, Status: 503, VersionMinor: 1}},
		{"response cut after status", []byte("HTTP/1.1 200"), true, decoders.HTTP{Response: true, Status: 200, VersionMinor: 1}},
		{"body segment", []byte("{\"items\": []}"), false, decoders.HTTP{}},
		// Methods are case-sensitive tokens: "get" is not GET, but it is
		// a method.
		{"lowercase", []byte("get / HTTP/1.1\r\n"), true, decoders.HTTP{Method: decoders.MethodOther, VersionMinor: 1}},
		{"webdav propfind", []byte("PROPFIND /dav/ HTTP/1.1\r\nDepth: 1\r\n"), true, decoders.HTTP{Method: decoders.MethodOther, VersionMinor: 1}},
		{"purge 1.0", []byte("PURGE /cache/x HTTP/1.0\r\n"), true, decoders.HTTP{Method: decoders.MethodOther}},
		{"token characters", []byte("X-M.1_~! /a?b=c HTTP/1.1\n"), true, decoders.HTTP{Method: decoders.MethodOther, VersionMinor: 1}},
		{"prefix of a known method", []byte("POSTAL /x HTTP/1.1\r\n"), true, decoders.HTTP{Method: decoders.MethodOther, VersionMinor: 1}},
		{"other method cut after version", []byte("MKCOL /d HTTP/1.1"), true, decoders.HTTP{Method: decoders.MethodOther, VersionMinor: 1}},
		{"other method without version", []byte("BREW coffee please\r\n"), false, decoders.HTTP{}},
		{"other method cut before version", []byte("MKCOL /d HTTP/1."), false, decoders.HTTP{}},
		{"other method, two words", []byte("NOT A REQUEST HTTP/1.1\r\n"), false, decoders.HTTP{}},
		{"other method, text after version", []byte("LINK /a HTTP/1.1 now\r\n"), false, decoders.HTTP{}},
		{"other method, no target", []byte("LINK  HTTP/1.1\r\n"), false, decoders.HTTP{}},
		{"separator in method", []byte("GE(T / HTTP/1.1\r\n"), false, decoders.HTTP{}},
		{"control in target", []byte("LINK /a\x01b HTTP/1.1\r\n"), false, decoders.HTTP{}},
		{"version beyond the scanned line", []byte("LINK /" + strings.Repeat("a", 600) + " HTTP/1.1\r\n"), false, decoders.HTTP{}},
		{"method without target", []byte("GET  HTTP/1.1"), false, decoders.HTTP{}},
		{"http2 preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), false, decoders.HTTP{}},
		{"bad status", []byte("HTTP/1.1 2x0 OK\r\n"), false, decoders.HTTP{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s decoders.Summary
			if ok := HTTP(tt.payload, &s); ok != tt.ok || ok != s.Layers.Has(decoders.LayerHTTP) {
				t.Fatalf("ok %v layers %b", ok, s.Layers)
			}
			if tt.ok && s.HTTP != tt.want {
				t.Fatalf("http %+v, want %+v", s.HTTP, tt.want)
			}
		})
	}
}

func BenchmarkDNSResponse(b *testing.B) {
	msg := response(b, "web.default.svc.cluster.local", dns.RcodeSuccess, 1)
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		DNS(msg, &s)
	}
}

func BenchmarkHTTPRequest(b *testing.B) {
	p := []byte("GET /api/v1/items?limit=10 HTTP/1.1\r\nHost: web\r\n\r\n")
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		HTTP(p, &s)
	}
}

func BenchmarkHTTPOtherMethod(b *testing.B) {
	p := []byte("PROPFIND /dav/calendars/user/ HTTP/1.1\r\nHost: web\r\nDepth: 1\r\n\r\n")
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		HTTP(p, &s)
	}
}

// BenchmarkHTTPBodySegment is the detector on a segment of an HTTP flow
// that starts no message: text without a space in its first 33 bytes.
func BenchmarkHTTPBodySegment(b *testing.B) {
	p := bytes.Repeat([]byte("x"), 100)
	var s decoders.Summary
	b.ReportAllocs()
	for b.Loop() {
		if HTTP(p, &s) {
			b.Fatal("taken for a message")
		}
	}
}

func FuzzDNS(f *testing.F) {
	f.Add(query(f, "kubernetes.default.svc.cluster.local", dns.TypeA))
	f.Add(response(f, "web.default.svc", dns.RcodeNameError, 2))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s decoders.Summary
		if !DNS(data, &s) {
			return
		}
		if int(s.DNS.QNameLen) > decoders.MaxQName {
			t.Fatalf("qname length %d", s.DNS.QNameLen)
		}
		if s.DNS.ID != binary.BigEndian.Uint16(data) {
			t.Fatal("id differs from the header")
		}
		if s.Err() == nil && s.DNS.QDCount > 0 && s.DNS.QType == 0 && len(data) < 16 {
			t.Fatal("question decoded from too few bytes")
		}
	})
}

func FuzzHTTP(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 404 Not Found\r\n"))
	f.Add([]byte("PROPFIND /dav/ HTTP/1.1\r\nDepth: 1\r\n"))
	f.Add([]byte("NOT A REQUEST HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s decoders.Summary
		if !HTTP(data, &s) {
			return
		}
		if s.HTTP.Response && (s.HTTP.Status > 999 || !bytes.HasPrefix(data, []byte("HTTP/1."))) {
			t.Fatalf("response %+v from %q", s.HTTP, data)
		}
		if s.HTTP.Response {
			return
		}
		switch m := s.HTTP.Method; {
		case m == decoders.MethodNone:
			t.Fatalf("request without a method from %q", data)
		case m == decoders.MethodOther:
			// token SP target SP HTTP/1.x within the scanned line
			sp := bytes.IndexByte(data, ' ')
			if sp <= 0 || bytes.ContainsAny(data[:sp], "()<>@,;:\\\"/[]?={}\t\r\n") || !bytes.Contains(data[:min(len(data), maxLineScan)], []byte(" HTTP/1.")) {
				t.Fatalf("other method %+v from %q", s.HTTP, data)
			}
		case !bytes.HasPrefix(data, []byte(m.String()+" ")):
			t.Fatalf("request %+v from %q", s.HTTP, data)
		}
	})
}
