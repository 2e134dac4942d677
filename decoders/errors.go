package decoders

import "errors"

// Sentinel errors, one per Reason. DecodeError unwraps to them, so callers
// test a per-frame error with errors.Is(s.Err(), decoders.ErrTruncated).
var (
	ErrTruncated           = errors.New("decoders: header truncated")
	ErrBadVersion          = errors.New("decoders: bad version")
	ErrBadHeaderLength     = errors.New("decoders: bad header length")
	ErrBadLength           = errors.New("decoders: bad length field")
	ErrUnsupportedLinkType = errors.New("decoders: unsupported link type")
	ErrTooManyHeaders      = errors.New("decoders: too many stacked headers")
	ErrBadOption           = errors.New("decoders: malformed option")
	ErrBadName             = errors.New("decoders: malformed name")
	ErrBadMessage          = errors.New("decoders: malformed message")
	ErrUnknown             = errors.New("decoders: unknown reason")
)

// Reason says why a frame could not be decoded further. The set is closed
// and small so that it can be a metric label; String returns the label.
type Reason uint8

// Reasons. ReasonNone means no error. An unknown EtherType, IP protocol or
// port is never an error: decoding just stops there.
const (
	ReasonNone                Reason = iota
	ReasonTruncated                  // the bytes end before the header does
	ReasonBadVersion                 // IP version nibble, Geneve version
	ReasonBadHeaderLength            // IHL, TCP data offset, Geneve option length
	ReasonBadLength                  // a length field disagrees with the header (IPv4 total length, UDP length, TLS record)
	ReasonUnsupportedLinkType        // the frame's link type is not decoded
	ReasonTooManyHeaders             // VLAN tags, IPv6 extension headers or tunnels nested beyond the limits
	ReasonBadOption                  // a TCP option or IPv6 extension header overruns its header
	ReasonBadName                    // a DNS name is malformed (label too long, pointer loop)
	ReasonBadMessage                 // an L6/L7 message is malformed
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone:                "none",
	ReasonTruncated:           "truncated",
	ReasonBadVersion:          "bad_version",
	ReasonBadHeaderLength:     "bad_header_length",
	ReasonBadLength:           "bad_length",
	ReasonUnsupportedLinkType: "unsupported_link_type",
	ReasonTooManyHeaders:      "too_many_headers",
	ReasonBadOption:           "bad_option",
	ReasonBadName:             "bad_name",
	ReasonBadMessage:          "bad_message",
}

var reasonErrs = [numReasons]error{
	ReasonTruncated:           ErrTruncated,
	ReasonBadVersion:          ErrBadVersion,
	ReasonBadHeaderLength:     ErrBadHeaderLength,
	ReasonBadLength:           ErrBadLength,
	ReasonUnsupportedLinkType: ErrUnsupportedLinkType,
	ReasonTooManyHeaders:      ErrTooManyHeaders,
	ReasonBadOption:           ErrBadOption,
	ReasonBadName:             ErrBadName,
	ReasonBadMessage:          ErrBadMessage,
}

// String returns the metric label of r ("truncated", "bad_version", ...);
// values outside the set return "other".
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "other"
}

// Err returns the sentinel error of r, nil for ReasonNone and ErrUnknown for
// values outside the set.
func (r Reason) Err() error {
	if r == ReasonNone {
		return nil
	}
	if r < numReasons {
		return reasonErrs[r]
	}
	return ErrUnknown
}

// Reasons returns every reason but ReasonNone, in order: the label values of
// a decode-error metric.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := ReasonNone + 1; r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// OSILayer names the layer a decode error happened at.
type OSILayer uint8

// OSI layers that decoders report errors at.
const (
	OSINone OSILayer = iota
	OSIL2
	OSIL3
	OSIL4
	OSIL6
	OSIL7
	numOSI
)

var osiNames = [numOSI]string{"none", "l2", "l3", "l4", "l6", "l7"}

// String returns the metric label of l ("l2" ... "l7"), or "other".
func (l OSILayer) String() string {
	if l < numOSI {
		return osiNames[l]
	}
	return "other"
}

// DecodeError is the per-frame error a Summary records: at which layer
// decoding stopped and why. It unwraps to the Reason's sentinel error.
type DecodeError struct {
	Layer  OSILayer
	Reason Reason
}

// Error formats the error as "l3: truncated".
func (e *DecodeError) Error() string { return e.Layer.String() + ": " + e.Reason.String() }

// Unwrap returns the sentinel error of e.Reason.
func (e *DecodeError) Unwrap() error { return e.Reason.Err() }
