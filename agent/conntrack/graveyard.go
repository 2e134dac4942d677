package conntrack

// graveyardSize is the number of destroyed NAT entries kept for lookups.
// A refused connection's entry is destroyed when the RST passes, before the
// flow it belongs to has ended; the agent still has to know which backend
// the connection was sent to.
const graveyardSize = 16384

// graveyard keeps the last destroyed NATed entries, oldest first out, so
// that Lookup can still translate a connection shortly after the kernel
// removed its entry. It is guarded by the table's lock.
type graveyard struct {
	ring []key         // insertion order; ring[next] is the oldest once full
	next int           // where the next key goes
	m    map[key]entry // by original tuple
	nat  map[key]key   // reply tuple → original, as table.nat
}

func newGraveyard(n int) graveyard {
	return graveyard{ring: make([]key, 0, n), m: make(map[key]entry), nat: make(map[key]key)}
}

func (g *graveyard) add(k key, e entry) {
	if _, dup := g.m[k]; dup {
		g.m[k] = e
		return
	}
	if len(g.ring) < cap(g.ring) {
		g.ring = append(g.ring, k)
	} else {
		g.forget(g.ring[g.next])
		g.ring[g.next] = k
		g.next = (g.next + 1) % len(g.ring)
	}
	g.m[k] = e
	g.nat[key{e.reply, k.zone}] = k
}

func (g *graveyard) forget(k key) {
	if e, ok := g.m[k]; ok {
		delete(g.nat, key{e.reply, k.zone})
		delete(g.m, k)
	}
}

// lookup is table.lookup over the destroyed entries.
func (g *graveyard) lookup(tp tuple, zone uint16) (NAT, bool) {
	k, rk := key{tp, zone}, key{tp.reverse(), zone}
	if e, ok := g.m[k]; ok {
		return natOf(k, &e, MatchOriginal), true
	}
	if e, ok := g.m[rk]; ok {
		return natOf(rk, &e, MatchOriginalReversed), true
	}
	if ok, found := g.nat[k]; found {
		e := g.m[ok]
		return natOf(ok, &e, MatchReply), true
	}
	if ok, found := g.nat[rk]; found {
		e := g.m[ok]
		return natOf(ok, &e, MatchReplyReversed), true
	}
	return NAT{}, false
}
