package conntrack

import (
	"net/netip"
	"slices"
	"sync"
)

// key identifies an entry of the kernel table: its original tuple and zone.
type key struct {
	t    tuple
	zone uint16
}

// entry is what the table keeps of one conntrack entry. Pointer-free.
type entry struct {
	reply    tuple
	id       uint32
	status   uint32
	seen     uint32 // resync generation in which a dump or an event confirmed it
	evGen    uint32 // resync generation of the last event that wrote it
	tcpState uint8
}

const numTCPStates = 16

// counts are kept up to date on every write so a snapshot need not scan.
type counts struct {
	byProto    [256]int64
	byTCPState [numTCPStates]int64
	assured    int64
	unreplied  int64
	nat        int64
}

func (c *counts) add(k *key, e *entry, d int64) {
	c.byProto[k.t.proto] += d
	if k.t.proto == 6 {
		c.byTCPState[e.tcpState%numTCPStates] += d
	}
	if e.status&StatusAssured != 0 {
		c.assured += d
	}
	if e.status&StatusSeenReply == 0 {
		c.unreplied += d
	}
	if e.reply != k.t.reverse() {
		c.nat += d
	}
}

// table mirrors the kernel's conntrack table of one namespace. Entries are
// keyed by original tuple and zone; nat indexes the reply tuple of entries
// whose reply is not the plain reverse of their original (NAT), so a lookup
// by any of the four directions of a connection is two map probes at most.
//
// Resync: a dump runs as generation g. Events during the dump mark the
// entries they write with evGen = g, and destroys leave a tombstone, so that
// a dump message parsed after an event (but produced by the kernel before
// it) neither resurrects a destroyed entry nor overwrites newer state. At
// the end, entries neither dumped nor written in generation g are removed.
type table struct {
	mu        sync.RWMutex
	m         map[key]entry
	nat       map[key]key
	gen       uint32
	resyncing bool
	tomb      map[key]struct{}
	c         counts
	gone      graveyard
}

func newTable() *table {
	return &table{m: make(map[key]entry), nat: make(map[key]key), gone: newGraveyard(graveyardSize)}
}

// put stores e under k, keeping the counters and the NAT index.
func (t *table) put(k key, e entry) {
	if old, ok := t.m[k]; ok {
		t.c.add(&k, &old, -1)
		if old.reply != e.reply && old.reply != k.t.reverse() {
			delete(t.nat, key{old.reply, k.zone})
		}
	}
	t.m[k] = e
	t.c.add(&k, &e, 1)
	if e.reply != k.t.reverse() {
		t.nat[key{e.reply, k.zone}] = k
	}
}

func (t *table) del(k key) {
	old, ok := t.m[k]
	if !ok {
		return
	}
	t.c.add(&k, &old, -1)
	if old.reply != k.t.reverse() {
		delete(t.nat, key{old.reply, k.zone})
	}
	delete(t.m, k)
}

// apply writes one event.
func (t *table) apply(m *ctMsg) {
	k := key{m.orig, m.zone}
	t.mu.Lock()
	defer t.mu.Unlock()
	if m.kind == kindDestroy {
		if old, ok := t.m[k]; ok && old.reply != k.t.reverse() {
			t.gone.add(k, old)
		}
		t.del(k)
		if t.resyncing {
			t.tomb[k] = struct{}{}
		}
		return
	}
	e := entry{reply: m.reply, id: m.id, status: m.status, tcpState: m.tcpState, seen: t.gen, evGen: t.gen}
	if old, ok := t.m[k]; ok && !m.hasTCPState {
		e.tcpState = old.tcpState // updates carry protoinfo only when it changed
	}
	if t.resyncing {
		delete(t.tomb, k)
	}
	t.put(k, e)
}

// beginResync starts a new generation and returns it.
func (t *table) beginResync() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.resyncing = true
	t.tomb = make(map[key]struct{})
	return t.gen
}

// dumped writes a batch of dumped entries of generation g.
func (t *table) dumped(g uint32, ms []ctMsg) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range ms {
		m := &ms[i]
		k := key{m.orig, m.zone}
		if _, dead := t.tomb[k]; dead {
			continue
		}
		if old, ok := t.m[k]; ok && old.evGen == g {
			old.seen = g
			t.m[k] = old
			continue
		}
		t.put(k, entry{reply: m.reply, id: m.id, status: m.status, tcpState: m.tcpState, seen: g})
	}
}

// endResync removes what generation g did not confirm (entries whose
// destroy event was lost) and returns how many it removed. With ok false
// (the dump failed) it only ends the resync.
func (t *table) endResync(g uint32, ok bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resyncing, t.tomb = false, nil
	if !ok {
		return 0
	}
	n := 0
	for k, e := range t.m {
		if e.seen != g {
			t.del(k)
			n++
		}
	}
	return n
}

func (t *table) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// lookup finds the entry a flow key belongs to, whichever direction and
// side of the NAT the key was seen in.
func (t *table) lookup(tp tuple, zone uint16) (NAT, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	k := key{tp, zone}
	if e, ok := t.m[k]; ok {
		return natOf(k, &e, MatchOriginal), true
	}
	rk := key{tp.reverse(), zone}
	if e, ok := t.m[rk]; ok {
		return natOf(rk, &e, MatchOriginalReversed), true
	}
	if ok, found := t.nat[k]; found {
		e := t.m[ok]
		return natOf(ok, &e, MatchReply), true
	}
	if ok, found := t.nat[rk]; found {
		e := t.m[ok]
		return natOf(ok, &e, MatchReplyReversed), true
	}
	return t.gone.lookup(tp, zone)
}

func natOf(k key, e *entry, m Match) NAT {
	return NAT{
		Original: k.t.Tuple(),
		Reply:    e.reply.Tuple(),
		Zone:     k.zone,
		ID:       e.id,
		Status:   e.status,
		TCPState: TCPState(e.tcpState),
		Match:    m,
	}
}

// fill copies the counters and the top holders into s.
func (t *table) fill(s *Snapshot, topN int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s.Tracked = len(t.m)
	c := &t.c
	s.ByProtocol = make(map[string]int)
	for p, n := range c.byProto {
		if n != 0 {
			s.ByProtocol[protoName(uint8(p))] = int(n)
		}
	}
	s.ByTCPState = make(map[string]int)
	for st, n := range c.byTCPState {
		if n != 0 {
			s.ByTCPState[TCPState(st).String()] = int(n)
		}
	}
	s.Assured, s.Unreplied, s.NATed = int(c.assured), int(c.unreplied), int(c.nat)
	if topN <= 0 || len(t.m) == 0 {
		return
	}
	type svc struct {
		dst   [16]byte
		port  uint16
		proto uint8
		v6    bool
	}
	type src struct {
		a  [16]byte
		v6 bool
	}
	bySrc := make(map[src]int)
	bySvc := make(map[svc]int)
	for k := range t.m {
		bySrc[src{k.t.src, k.t.v6}]++
		port := k.t.dport
		if k.t.proto == 1 || k.t.proto == 58 {
			port = 0
		}
		bySvc[svc{k.t.dst, port, k.t.proto, k.t.v6}]++
	}
	for a, n := range bySrc {
		tp := tuple{src: a.a, v6: a.v6}
		s.TopSources = topInsert(s.TopSources, Holder{Addr: netip.AddrPortFrom(tp.addr(&tp.src), 0), Entries: n}, topN)
	}
	for v, n := range bySvc {
		tp := tuple{dst: v.dst, v6: v.v6}
		s.TopServices = topInsert(s.TopServices, Holder{Addr: netip.AddrPortFrom(tp.addr(&tp.dst), v.port), Proto: v.proto, Entries: n}, topN)
	}
}

// holderLess orders holders by entries held, descending, then by address
// and protocol so that ties are stable.
func holderLess(a, b Holder) bool {
	if a.Entries != b.Entries {
		return a.Entries > b.Entries
	}
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c < 0
	}
	return a.Proto < b.Proto
}

// topInsert inserts x into h, kept sorted and at most n long.
func topInsert(h []Holder, x Holder, n int) []Holder {
	if len(h) == n && !holderLess(x, h[n-1]) {
		return h
	}
	i, _ := slices.BinarySearchFunc(h, x, func(a, b Holder) int {
		if holderLess(a, b) {
			return -1
		}
		return 1
	})
	h = slices.Insert(h, i, x)
	if len(h) > n {
		h = h[:n]
	}
	return h
}
