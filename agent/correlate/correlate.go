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
	// Replied says the kernel saw a packet in the reply direction (the
	// entry's IPS_SEEN_REPLY): the backend answered, even when the capture
	// missed its packets (a connection picked up at its end).
	Replied bool
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
	// ClientAborted says the connection was reset by its client alone
	// after the backend had answered: the backend sent packets (captured,
	// or seen by conntrack: Translation.Replied) and no captured RST.
	// Clients do this to healthy backends all the time: the kernel resets
	// a socket closed with unread data, or one that receives data after
	// close (an HTTP/2 client closing a spare connection right after its
	// TLS handshake, a client abandoning a response). Sides are those of
	// the conntrack entry (its original source is the client), not the
	// flow table's guess for a flow picked up mid-stream.
	ClientAborted bool
}

// Failed reports whether the connection failed on the backend's side:
// its outcome is a failure (refused, timed out or reset) and it was not
// aborted by its client alone after the backend answered (ClientAborted).
// This is the failure dead-backend detection counts.
func (c *Conn) Failed() bool {
	return c.Outcome.Failed() && !c.ClientAborted
}

// Join joins a flow record with the translation of its connection. ok is
// false when the record is not one of the translation's views, or the
// connection was not DNATed.
func Join(rec *flow.Record, t *Translation) (c Conn, ok bool) {
	v := t.ViewOf(rec.Key)
	if v == ViewNone || !t.DNAT() {
		return Conn{}, false
	}
	// The record's sides follow the flow table's client, a guess when the
	// flow was picked up mid-stream; the conntrack entry knows who
	// connected. The record is reversed when its key runs from the
	// backend (or the service) to the client.
	cli, srv := flow.FromClient, flow.FromServer
	if rec.Key == t.Reply || rec.Key == t.Original.Reverse() {
		cli, srv = srv, cli
	}
	answered := t.Replied
	for _, h := range rec.Hops[:min(int(rec.NumHops), len(rec.Hops))] {
		answered = answered || h.Packets[srv] > 0
	}
	rst := rec.TCP.RSTFrom
	return Conn{
		ClientAborted: rec.Outcome == flow.OutcomeReset && answered &&
			rst&(1<<cli) != 0 && rst&(1<<srv) == 0,
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
