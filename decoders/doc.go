// Package decoders defines the fixed-size Summary a frame is decoded into,
// the closed set of decode-error reasons and their sentinel errors, and the
// link types, EtherTypes and protocol numbers the decoders share.
//
// # Layout
//
// One package per OSI layer does the work: decoders/l2 (Ethernet, 802.1Q and
// QinQ, Linux SLL/SLL2, BSD loopback, ARP), decoders/l3 (IPv4, IPv6 and its
// extension headers, ICMPv4, ICMPv6 with the quoted header of errors),
// decoders/l4 (TCP, UDP, VXLAN, Geneve), decoders/l6 (TLS ClientHello and
// ServerHello) and decoders/l7 (DNS, HTTP/1.x start lines). The layer
// packages know nothing of each other; decoders/parser chains them.
//
// # Ownership
//
// A Summary never aliases the frame: addresses are netip.Addr values, names
// are copied into fixed arrays. It is owned by one goroutine and reused frame
// after frame; Reset costs a few stores. A section is meaningful only when
// its bit is set in Summary.Layers.
//
// # Errors
//
// Decoding never allocates, never panics and never builds an error per
// packet. The first malformed header of a frame is recorded in the Summary
// as (OSILayer, Reason); Summary.Err returns it as a *DecodeError that
// unwraps to a sentinel (ErrTruncated, ...), and Reason.String and
// OSILayer.String give metric labels from closed sets. An unknown EtherType,
// IP protocol or port is not an error: decoding stops there.
//
// # Truncation
//
// Values longer than their buffers (SNI, ALPN, DNS name) are cut and marked
// in Summary.Trunc; a TLS hello cut by the capture's snap length is decoded
// as far as it goes and marked with TruncHello.
package decoders
