package l6

import (
	"encoding/binary"

	"github.com/layerscope/layerscope/decoders"
)

const (
	recordLen    = 5
	handshakeLen = 4
	randomLen    = 32
	// Extension types.
	extServerName        = 0
	extALPN              = 16
	extSupportedVersions = 43
)

// Record content types.
const (
	typeChangeCipherSpec = 20
	typeAlert            = 21
	typeHandshake        = 22
	typeApplicationData  = 23
)

// maxRecords bounds the records walked in one segment before a hello.
const maxRecords = 8

// IsRecord reports whether payload starts like a TLS record: a content type
// of TLS 1.0-1.3 (change_cipher_spec, alert, handshake, application_data)
// and a 3.x record version.
func IsRecord(payload []byte) bool {
	return len(payload) >= 3 && payload[0] >= typeChangeCipherSpec && payload[0] <= typeApplicationData &&
		payload[1] == 3 && payload[2] <= 4
}

// TLS decodes a ClientHello or ServerHello of a TCP payload into s.TLS. The
// hello may follow other records of the segment (a ChangeCipherSpec before
// the second ClientHello after a HelloRetryRequest, an alert): the records
// are walked, at most maxRecords of them, up to the first hello. It
// returns false, without error, when the payload holds no hello. A hello
// cut by the capture's end is decoded as far as it goes and marked with
// decoders.TruncHello.
//
// A hello that is not the segment's first record is taken only when it
// fits its record and has a 3.x legacy version: after a ChangeCipherSpec,
// TLS 1.2 handshake records are encrypted, and their first bytes are noise.
func TLS(payload []byte, s *decoders.Summary) bool {
	for i := 0; i < maxRecords && IsRecord(payload) && len(payload) >= recordLen; i++ {
		recLen := int(binary.BigEndian.Uint16(payload[3:5]))
		if payload[0] == typeHandshake && len(payload) >= recordLen+handshakeLen {
			if htype := payload[recordLen]; htype == decoders.TLSClientHello || htype == decoders.TLSServerHello {
				if i == 0 {
					return record(payload, recLen, s)
				}
				if wholeHello(payload, recLen) {
					return record(payload, recLen, s)
				}
			}
		}
		if len(payload) < recordLen+recLen {
			return false
		}
		payload = payload[recordLen+recLen:]
	}
	return false
}

// wholeHello reports whether the handshake record at p (record length
// recLen) is large enough for the hello its header announces, and whether
// the hello (possibly cut by the capture) starts with a 3.x legacy version.
func wholeHello(p []byte, recLen int) bool {
	hsLen := int(p[6])<<16 | int(p[7])<<8 | int(p[8])
	if hsLen+handshakeLen > recLen || len(p) < recordLen+handshakeLen+2 {
		return false
	}
	return p[recordLen+handshakeLen] == 3 && p[recordLen+handshakeLen+1] <= 4
}

// record decodes the hello of the handshake record at the start of payload.
func record(payload []byte, recLen int, s *decoders.Summary) bool {
	htype := payload[recordLen]
	hsLen := int(payload[6])<<16 | int(payload[7])<<8 | int(payload[8])
	if hsLen+handshakeLen > recLen {
		// A hello spread over several records is decoded from this
		// record's part only.
		hsLen = recLen - handshakeLen
		if hsLen < 0 {
			s.Fail(decoders.OSIL6, decoders.ReasonBadLength)
			return false
		}
	}
	body := payload[recordLen+handshakeLen:]
	if len(body) > hsLen {
		body = body[:hsLen]
	}
	cut := len(body) < hsLen // the capture ends inside the hello
	t := &s.TLS
	t.HandshakeType = htype
	t.RecordVersion = binary.BigEndian.Uint16(payload[1:3])
	t.LegacyVersion, t.Version, t.CipherSuite = 0, 0, 0
	t.SNILen, t.ALPNLen = 0, 0
	s.Layers |= decoders.LayerTLS
	if len(body) < 2 {
		s.Trunc |= decoders.TruncHello
		return true
	}
	t.LegacyVersion = binary.BigEndian.Uint16(body)
	t.Version = t.LegacyVersion
	if !hello(body, htype, s) {
		if cut {
			s.Trunc |= decoders.TruncHello
		} else {
			s.Fail(decoders.OSIL6, decoders.ReasonBadMessage)
		}
	}
	return true
}

// hello walks a hello body; false means it ended before its structure did.
func hello(b []byte, htype uint8, s *decoders.Summary) bool {
	off := 2 + randomLen
	if len(b) < off+1 {
		return false
	}
	off += 1 + int(b[off]) // session id
	if htype == decoders.TLSClientHello {
		if len(b) < off+2 {
			return false
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:])) // cipher suites
		if len(b) < off+1 {
			return false
		}
		off += 1 + int(b[off]) // compression methods
	} else {
		if len(b) < off+3 {
			return false
		}
		s.TLS.CipherSuite = binary.BigEndian.Uint16(b[off:])
		off += 3
	}
	if len(b) == off {
		return true // no extensions
	}
	if len(b) < off+2 {
		return false
	}
	extEnd := off + 2 + int(binary.BigEndian.Uint16(b[off:]))
	off += 2
	ok := true
	if extEnd > len(b) {
		ok = false
		extEnd = len(b)
	}
	for off+4 <= extEnd {
		typ := binary.BigEndian.Uint16(b[off:])
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		off += 4
		if off+l > extEnd {
			return false
		}
		ext := b[off : off+l]
		off += l
		switch typ {
		case extServerName:
			serverName(ext, s)
		case extALPN:
			alpn(ext, s)
		case extSupportedVersions:
			supportedVersions(ext, htype, &s.TLS)
		}
	}
	return ok && off == extEnd
}

func serverName(ext []byte, s *decoders.Summary) {
	if len(ext) < 2 {
		return
	}
	list := ext[2:]
	if n := int(binary.BigEndian.Uint16(ext)); n < len(list) {
		list = list[:n]
	}
	for len(list) >= 3 {
		typ := list[0]
		n := int(binary.BigEndian.Uint16(list[1:3]))
		if 3+n > len(list) {
			return
		}
		if typ == 0 { // host_name
			name := list[3 : 3+n]
			if len(name) > decoders.MaxSNI {
				name = name[:decoders.MaxSNI]
				s.Trunc |= decoders.TruncSNI
			}
			s.TLS.SNILen = uint8(copy(s.TLS.SNI[:], name))
			return
		}
		list = list[3+n:]
	}
}

func alpn(ext []byte, s *decoders.Summary) {
	if len(ext) < 3 {
		return
	}
	n := int(ext[2])
	if 3+n > len(ext) {
		return
	}
	p := ext[3 : 3+n]
	if len(p) > decoders.MaxALPN {
		p = p[:decoders.MaxALPN]
		s.Trunc |= decoders.TruncALPN
	}
	s.TLS.ALPNLen = uint8(copy(s.TLS.ALPN[:], p))
}

func grease(v uint16) bool { return v&0x0f0f == 0x0a0a }

func supportedVersions(ext []byte, htype uint8, t *decoders.TLS) {
	if htype == decoders.TLSServerHello {
		if len(ext) >= 2 {
			t.Version = binary.BigEndian.Uint16(ext)
		}
		return
	}
	if len(ext) < 1 {
		return
	}
	list := ext[1:]
	if n := int(ext[0]); n < len(list) {
		list = list[:n]
	}
	var best uint16
	for i := 0; i+2 <= len(list); i += 2 {
		if v := binary.BigEndian.Uint16(list[i:]); !grease(v) && v > best {
			best = v
		}
	}
	if best != 0 {
		t.Version = best
	}
}
