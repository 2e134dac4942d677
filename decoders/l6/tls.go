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

// IsRecord reports whether payload starts like a TLS handshake record:
// content type 22 and a 3.x record version.
func IsRecord(payload []byte) bool {
	return len(payload) >= 3 && payload[0] == 0x16 && payload[1] == 3 && payload[2] <= 4
}

// TLS decodes a ClientHello or ServerHello at the start of a TCP payload into
// s.TLS. It returns false, without error, when the payload is not a hello
// (another record or handshake type). A hello cut by the capture's end is
// decoded as far as it goes and marked with decoders.TruncHello.
func TLS(payload []byte, s *decoders.Summary) bool {
	if !IsRecord(payload) || len(payload) < recordLen+handshakeLen {
		return false
	}
	htype := payload[recordLen]
	if htype != decoders.TLSClientHello && htype != decoders.TLSServerHello {
		return false
	}
	recLen := int(binary.BigEndian.Uint16(payload[3:5]))
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
