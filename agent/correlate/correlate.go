package correlate

import (
	"net/netip"

	"github.com/layerscope/layerscope/agent/flow"
)

// Translation is what the kernel's conntrack table knows of one connection:
// its original tuple, as the client sent it, and its reply tuple, as the
// server answers. When the reply is not the original reversed, the kernel
// translated the connection (DNAT to a backend, SNAT or masquerade of the
// client).
type Translation struct {
	ID              uint32 // conntrack entry ID, one per connection
	Original, Reply flow.Key
}

// Service is the destination the client asked for: a ClusterIP or a
// NodeIP:NodePort before DNAT.
func (t *Translation) Service() netip.AddrPort {
	return netip.AddrPortFrom(t.Original.Dst, t.Original.DstPort)
}

// Backend is where the connection really went: the reply's source.
func (t *Translation) Backend() netip.AddrPort {
	return netip.AddrPortFrom(t.Reply.Src, t.Reply.SrcPort)
}

// DNAT reports whether the destination was translated.
func (t *Translation) DNAT() bool { return t.Service() != t.Backend() }

// SNAT reports whether the source was translated (masquerade): the backend
// answers an address other than the client's.
func (t *Translation) SNAT() bool {
	return netip.AddrPortFrom(t.Reply.Dst, t.Reply.DstPort) != netip.AddrPortFrom(t.Original.Src, t.Original.SrcPort)
}

// View says which side of the translation a flow record was captured on.
type View uint8

// Views.
const (
	ViewNone View = iota // the record does not belong to the translation
	ViewPre              // before DNAT: client → service
	ViewPost             // after DNAT: (client or SNAT address) → backend
)

// ViewOf returns the side of t a flow with key k shows, in either
// orientation (a flow picked up mid-stream may have its sides swapped).
func (t *Translation) ViewOf(k flow.Key) View {
	post := t.Reply.Reverse()
	switch {
	case k == t.Original || k == t.Original.Reverse():
		return ViewPre
	case k == post || k == t.Reply:
		return ViewPost
	}
	return ViewNone
}

// Conn is one connection joined across DNAT: who asked for which service,
// which backend served it, and what became of it, as the flow record of
// one of its views tells.
type Conn struct {
	ID      uint32
	Client  netip.AddrPort
	Service netip.AddrPort
	Backend netip.AddrPort
	Proto   uint8
	View    View // the view the outcome and hops were taken from
	Outcome flow.Outcome
	First   int64
	Last    int64
	// Hops are the interfaces the record's view was seen on.
	Hops    [flow.MaxHops]flow.Hop
	NumHops uint8
}

// Join joins a flow record with the translation of its connection. ok is
// false when the record is not one of the translation's views, or the
// connection was not DNATed.
func Join(rec *flow.Record, t *Translation) (c Conn, ok bool) {
	v := t.ViewOf(rec.Key)
	if v == ViewNone || !t.DNAT() {
		return Conn{}, false
	}
	return Conn{
		ID:      t.ID,
		Client:  netip.AddrPortFrom(t.Original.Src, t.Original.SrcPort),
		Service: t.Service(),
		Backend: t.Backend(),
		Proto:   t.Original.Proto,
		View:    v,
		Outcome: rec.Outcome,
		First:   rec.First,
		Last:    rec.Last,
		Hops:    rec.Hops,
		NumHops: rec.NumHops,
	}, true
}
