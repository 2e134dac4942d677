package otlp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
	"go.opentelemetry.io/otel/trace"
)

// Domain-separation prefixes of the ID hashes. Changing one changes every ID:
// agents of different versions would then stop stitching, so they carry a
// version.
const (
	traceIDDomain    = "layerscope/trace/v1"
	clientSpanDomain = "layerscope/span/client/v1"
	nodeSpanDomain   = "layerscope/span/node/v1"
)

// Span purposes, hashed into node span IDs so that each span of a node gets
// its own ID.
const (
	purposeConn     = 'c'
	purposeHop      = 'h'
	purposeExchange = 'x'
)

// TraceID returns the trace ID of the connection: the first 16 bytes of
// SHA-256 over its post-NAT identity (protocol, client or ClientNAT address and
// port, backend address and port) and, for TCP with a known SYN, the SYN's
// initial sequence number, otherwise the index of the udpBucket-long time
// bucket that First falls in. Every node that sees the connection derives the
// same ID. udpBucket <= 0 means DefaultUDPBucket.
func (c *Conn) TraceID(udpBucket time.Duration) trace.TraceID {
	if udpBucket <= 0 {
		udpBucket = DefaultUDPBucket
	}
	client := c.Client
	if c.ClientNAT.IsValid() {
		client = c.ClientNAT
	}
	var buf [len(traceIDDomain) + 1 + 1 + 2*(16+2) + 8]byte
	n := copy(buf[:], traceIDDomain)
	buf[n] = c.Proto
	n++
	var tail uint64
	if c.Proto == flow.ProtoTCP && c.HasISN {
		buf[n] = 's' // identified by the SYN
		tail = uint64(c.ISN)
	} else {
		buf[n] = 'b' // identified by the time bucket
		tail = uint64(c.First / int64(udpBucket))
	}
	n++
	n += putAddrPort(buf[n:], client)
	n += putAddrPort(buf[n:], c.Backend)
	binary.BigEndian.PutUint64(buf[n:], tail)
	sum := sha256.Sum256(buf[:])
	var id trace.TraceID
	copy(id[:], sum[:16])
	if !id.IsValid() {
		id[15] = 1
	}
	return id
}

// putAddrPort writes ap as 16 address bytes (IPv4 mapped into IPv6) and a
// big-endian port, and returns 18. The zero AddrPort writes zeros.
func putAddrPort(b []byte, ap netip.AddrPort) int {
	a := ap.Addr().As16()
	copy(b, a[:])
	binary.BigEndian.PutUint16(b[16:], ap.Port())
	return 18
}

// ClientSpanID returns the span ID of the client-side connection span of the
// trace: the first 8 bytes of SHA-256 over the trace ID in its own domain. The
// node holding the client uses it for its connection span; every other node
// uses it as the parent of its own connection span, without asking anyone.
func ClientSpanID(tid trace.TraceID) trace.SpanID {
	var buf [len(clientSpanDomain) + 16]byte
	n := copy(buf[:], clientSpanDomain)
	copy(buf[n:], tid[:])
	return spanIDOf(sha256.Sum256(buf[:]))
}

// nodeSpanID returns the span ID of one of the node's own spans: SHA-256 over
// the trace ID, the node's side and name, the span's purpose and its index.
// Two nodes (different names) never share one, nor do two spans of a node.
func nodeSpanID(tid trace.TraceID, node string, side Side, purpose byte, index int) trace.SpanID {
	h := sha256.New()
	var buf [len(nodeSpanDomain) + 16 + 1 + 1 + 4]byte
	n := copy(buf[:], nodeSpanDomain)
	n += copy(buf[n:], tid[:])
	buf[n] = byte(side)
	buf[n+1] = purpose
	binary.BigEndian.PutUint32(buf[n+2:], uint32(index))
	h.Write(buf[:])
	h.Write([]byte(node))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return spanIDOf(sum)
}

func spanIDOf(sum [sha256.Size]byte) trace.SpanID {
	var id trace.SpanID
	copy(id[:], sum[:8])
	if !id.IsValid() {
		id[7] = 1
	}
	return id
}

// sampled reports whether a trace ID falls within ratio, by the rule of the
// SDK's TraceIDRatioBased sampler (the low 63 bits of the ID's last 8 bytes
// against ratio·2^63), so that every node takes the same decision for one
// trace, and so would any other OTel SDK sampling on the same IDs.
func sampled(tid trace.TraceID, ratio float64) bool {
	if ratio >= 1 {
		return true
	}
	if ratio <= 0 {
		return false
	}
	bound := uint64(ratio * (1 << 63))
	return binary.BigEndian.Uint64(tid[8:16])>>1 < bound
}

// spanIDs is what the exporter hands the SDK's span creation through the
// context: the IDs of the span about to start.
type spanIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

type spanIDsKey struct{}

func withSpanIDs(ctx context.Context, tid trace.TraceID, sid trace.SpanID) context.Context {
	return context.WithValue(ctx, spanIDsKey{}, spanIDs{tid, sid})
}

// idGenerator gives the SDK the deterministic IDs placed in the context by
// withSpanIDs, and random ones to any span started without them.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if ids, ok := ctx.Value(spanIDsKey{}).(spanIDs); ok {
		return ids.trace, ids.span
	}
	var tid trace.TraceID
	var sid trace.SpanID
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	return tid, sid
}

func (idGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if ids, ok := ctx.Value(spanIDsKey{}).(spanIDs); ok {
		return ids.span
	}
	var sid trace.SpanID
	_, _ = rand.Read(sid[:])
	return sid
}
