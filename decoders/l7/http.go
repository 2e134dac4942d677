package l7

import (
	"bytes"

	"github.com/layerscope/layerscope/decoders"
)

// methods maps request-line tokens to decoders.HTTPMethod.
var methods = [...]struct {
	tok string
	m   decoders.HTTPMethod
}{
	{"GET ", decoders.MethodGet},
	{"HEAD ", decoders.MethodHead},
	{"POST ", decoders.MethodPost},
	{"PUT ", decoders.MethodPut},
	{"DELETE ", decoders.MethodDelete},
	{"CONNECT ", decoders.MethodConnect},
	{"OPTIONS ", decoders.MethodOptions},
	{"TRACE ", decoders.MethodTrace},
	{"PATCH ", decoders.MethodPatch},
}

// maxLineScan bounds the bytes searched for a request line's version.
const maxLineScan = 512

var httpVersion = []byte(" HTTP/1.")

// HTTP decodes an HTTP/1.x request or status line at the start of a TCP
// payload into s.HTTP. It returns false, without error, when the payload
// does not start one: continuation segments and bodies are never decoded.
//
// A request starts with one of the nine methods of decoders.HTTPMethod and
// a space, or with any other RFC 9110 token method (decoders.MethodOther)
// when the whole request line is there: the token, a space, a
// request-target, a space and HTTP/1.x at the end of the line, within the
// first maxLineScan bytes.
func HTTP(payload []byte, s *decoders.Summary) bool {
	if len(payload) < 5 {
		return false
	}
	switch payload[0] {
	case 'H':
		if len(payload) >= 12 && string(payload[:7]) == "HTTP/1." && payload[8] == ' ' {
			return status(payload, s)
		}
		fallthrough
	case 'G', 'P', 'D', 'C', 'O', 'T':
		for i := range methods {
			tok := methods[i].tok
			if len(payload) > len(tok) && string(payload[:len(tok)]) == tok {
				return request(payload, len(tok), methods[i].m, s)
			}
		}
	}
	if !tchar[payload[0]] {
		return false
	}
	return otherRequest(payload, s)
}

// tchar marks the token characters of RFC 9110 section 5.6.2.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c], t[c+'a'-'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// maxMethodLen bounds the method token of otherRequest: the longest
// registered method (UPDATEREDIRECTREF) has 17 characters, and a payload
// that is not a request line is rejected after this many bytes at most.
const maxMethodLen = 32

// otherRequest decodes a request line whose method is a token of at most
// maxMethodLen characters outside the nine known methods: token SP
// request-target SP "HTTP/1." DIGIT, then the end of the line (or of the
// captured payload).
func otherRequest(p []byte, s *decoders.Summary) bool {
	line := p[:min(len(p), maxLineScan)]
	if len(line) == 0 || !tchar[line[0]] {
		return false
	}
	// The method ends at the first space, within maxMethodLen+1 bytes:
	// found a word at a time, so a payload that is no request line (a
	// body segment of an HTTP flow) is rejected without a loop over its
	// bytes; then the method's characters are checked.
	i := bytes.IndexByte(line[:min(len(line), maxMethodLen+1)], ' ')
	if i <= 0 {
		return false
	}
	for _, c := range line[1:i] {
		if !tchar[c] {
			return false
		}
	}
	t := i + 1 // request-target: up to the next space, no control characters
	j := t
	for j < len(line) && line[j] > ' ' && line[j] != 0x7f {
		j++
	}
	const ver = "HTTP/1."
	v := j + 1 // version
	if j == t || j == len(line) || line[j] != ' ' || len(line) < v+len(ver)+1 ||
		string(line[v:v+len(ver)]) != ver || !digit(line[v+len(ver)]) {
		return false
	}
	if e := v + len(ver) + 1; e < len(line) && line[e] != '\r' && line[e] != '\n' {
		return false
	}
	s.HTTP = decoders.HTTP{Method: decoders.MethodOther, VersionMinor: line[v+len(ver)] - '0'}
	s.Layers |= decoders.LayerHTTP
	return true
}

func status(p []byte, s *decoders.Summary) bool {
	minor := p[7]
	d0, d1, d2 := p[9], p[10], p[11]
	if minor < '0' || minor > '9' || !digit(d0) || !digit(d1) || !digit(d2) || (len(p) > 12 && p[12] != ' ' && p[12] != '\r' && p[12] != '\n') {
		return false
	}
	s.HTTP = decoders.HTTP{
		Response:     true,
		Status:       uint16(d0-'0')*100 + uint16(d1-'0')*10 + uint16(d2-'0'),
		VersionMinor: minor - '0',
	}
	s.Layers |= decoders.LayerHTTP
	return true
}

func request(p []byte, off int, m decoders.HTTPMethod, s *decoders.Summary) bool {
	// The target starts with '/', '*' (OPTIONS), or a scheme/authority.
	if c := p[off]; c == ' ' || c == '\r' || c == '\n' {
		return false
	}
	s.HTTP = decoders.HTTP{Method: m}
	line := p[off:min(len(p), off+maxLineScan)]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if i := bytes.Index(line, httpVersion); i >= 0 && i+len(httpVersion) < len(line) {
		if v := line[i+len(httpVersion)]; digit(v) {
			s.HTTP.VersionMinor = v - '0'
		}
	}
	s.Layers |= decoders.LayerHTTP
	return true
}

func digit(c byte) bool { return c >= '0' && c <= '9' }
