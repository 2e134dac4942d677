package conntrack

import (
	"cmp"
	"encoding/binary"
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
	seen     uint16 // resync generation in which a dump or an event confirmed it
	evGen    uint16 // resync generation of the last event that wrote it (0: none since the last dump)
	tcpState uint8
}

// nat reports whether the entry's reply is not the plain reverse of its
// original tuple (DNAT or SNAT).
func (e *entry) nat(k *key) bool { return e.reply != k.t.reverse() }

// key4 is the key of an IPv4 entry, in 16 bytes without padding (so that it
// hashes as plain memory).
type key4 struct {
	src, dst     [4]byte
	sport, dport uint16
	proto        uint16 // an IP protocol number
	zone         uint16
}

// rec is the rest of an IPv4 entry without NAT: its reply tuple is the
// original reversed, so it is not stored. 16 bytes.
type rec struct {
	id       uint32
	status   uint32
	seen     uint16
	evGen    uint16
	tcpState uint8
}

// nrec is the rest of an IPv4 entry with NAT: its reply tuple (an IPv4
// entry's reply is IPv4 too; the protocol is the original's) and a rec. 28
// bytes.
type nrec struct {
	rsrc, rdst     [4]byte
	rsport, rdport uint16
	rec
}

func key4Of(t *tuple, zone uint16) key4 {
	return key4{src: [4]byte(t.src[:4]), dst: [4]byte(t.dst[:4]), sport: t.sport, dport: t.dport, proto: uint16(t.proto), zone: zone}
}

func (k4 *key4) key() key {
	var k key
	copy(k.t.src[:4], k4.src[:])
	copy(k.t.dst[:4], k4.dst[:])
	k.t.sport, k.t.dport, k.t.proto, k.zone = k4.sport, k4.dport, uint8(k4.proto), k4.zone
	return k
}

func recOf(e *entry) rec {
	return rec{id: e.id, status: e.status, seen: e.seen, evGen: e.evGen, tcpState: e.tcpState}
}

func (r *rec) entry(reply tuple) entry {
	return entry{reply: reply, id: r.id, status: r.status, seen: r.seen, evGen: r.evGen, tcpState: r.tcpState}
}

func nrecOf(e *entry) nrec {
	return nrec{rsrc: [4]byte(e.reply.src[:4]), rdst: [4]byte(e.reply.dst[:4]), rsport: e.reply.sport, rdport: e.reply.dport, rec: recOf(e)}
}

func (n *nrec) entry(proto uint8) entry {
	var r tuple
	copy(r.src[:4], n.rsrc[:])
	copy(r.dst[:4], n.rdst[:])
	r.sport, r.dport, r.proto = n.rsport, n.rdport, proto
	return n.rec.entry(r)
}

// Storage classes of an entry: which map of the table keeps it.
const (
	class4    = iota // IPv4 without NAT: table.m4
	class4NAT        // IPv4 with NAT: table.n4, indexed by table.nat4
	class6           // IPv6: table.m6, the NATed ones indexed by table.nat6
)

func classOf(k *key, e *entry) int {
	switch {
	case k.t.v6: // parseFlow ensures that the reply is of the same family
		return class6
	case e.nat(k):
		return class4NAT
	}
	return class4
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
	if e.nat(k) {
		c.nat += d
	}
}

// table mirrors the kernel's conntrack table of one namespace, keeping of
// each entry what lookups and counts need, in one of three maps by kind:
// IPv4 entries without NAT, most of a node's table, in m4 (32 bytes of key
// and value: their reply tuple is implied); IPv4 entries with NAT in n4 (44
// bytes), their reply tuple indexed by nat4 (32 bytes); IPv6 entries in
// full in m6, the NATed ones indexed by nat6. A lookup by any of the four
// directions of a connection is a few map probes.
//
// Resync: a dump runs as generation g. Events during the dump mark the
// entries they write with evGen = g, and destroys leave a tombstone, so that
// a dump message parsed after an event (but produced by the kernel before
// it) neither resurrects a destroyed entry nor overwrites newer state. At
// the end, entries neither dumped nor written in generation g are removed.
// Generations are 16 bits and skip 0. The next dump overwrites an entry's
// evGen, so only an entry that no dump confirmed during 65,535 consecutive
// failed dumps could see its seen generation alias the current one.
//
// All fields are guarded by mu.
type table struct {
	mu        sync.RWMutex
	m4        map[key4]rec
	n4        map[key4]nrec
	nat4      map[key4]key4 // reply tuple → original, of n4
	m6        map[key]entry
	nat6      map[key]key // reply tuple → original, of the NATed entries of m6
	gen       uint16
	resyncing bool
	tomb      map[key]struct{}
	c         counts
	gone      graveyard
}

func newTable() *table {
	return &table{m4: make(map[key4]rec), n4: make(map[key4]nrec), nat4: make(map[key4]key4),
		m6: make(map[key]entry), nat6: make(map[key]key), gone: newGraveyard(graveyardSize)}
}

// reserve sizes the empty table for n IPv4 entries without NAT, so that
// the first dump fills it without growing it (growing leaves the old
// tables for the garbage collector: up to the table's size again).
func (t *table) reserve(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m4) == 0 && n > 0 {
		t.m4 = make(map[key4]rec, n)
	}
}

// get returns the entry stored under k.
func (t *table) get(k *key) (entry, bool) {
	if k.t.v6 {
		e, ok := t.m6[*k]
		return e, ok
	}
	k4 := key4Of(&k.t, k.zone)
	if r, ok := t.m4[k4]; ok {
		return r.entry(k.t.reverse()), true
	}
	if n, ok := t.n4[k4]; ok {
		return n.entry(k.t.proto), true
	}
	return entry{}, false
}

// byReply returns the NATed entry whose reply tuple is k, and its key.
func (t *table) byReply(k *key) (key, entry, bool) {
	if k.t.v6 {
		ok, found := t.nat6[*k]
		return ok, t.m6[ok], found
	}
	o4, found := t.nat4[key4Of(&k.t, k.zone)]
	if !found {
		return key{}, entry{}, false
	}
	n := t.n4[o4]
	return o4.key(), n.entry(uint8(o4.proto)), true
}

// store writes e under k into the map of its class, and the NAT index.
func (t *table) store(k *key, e *entry) {
	switch classOf(k, e) {
	case class4:
		t.m4[key4Of(&k.t, k.zone)] = recOf(e)
	case class4NAT:
		k4 := key4Of(&k.t, k.zone)
		t.n4[k4] = nrecOf(e)
		t.nat4[key4Of(&e.reply, k.zone)] = k4
	default:
		t.m6[*k] = *e
		if e.nat(k) {
			t.nat6[key{e.reply, k.zone}] = *k
		}
	}
}

// unindex removes old's reply tuple, stored under k, from the NAT index.
func (t *table) unindex(k *key, old *entry) {
	switch classOf(k, old) {
	case class4NAT:
		delete(t.nat4, key4Of(&old.reply, k.zone))
	case class6:
		if old.nat(k) {
			delete(t.nat6, key{old.reply, k.zone})
		}
	}
}

// unstore removes old, stored under k, from its map and the NAT index.
func (t *table) unstore(k *key, old *entry) {
	t.unindex(k, old)
	switch classOf(k, old) {
	case class4:
		delete(t.m4, key4Of(&k.t, k.zone))
	case class4NAT:
		delete(t.n4, key4Of(&k.t, k.zone))
	default:
		delete(t.m6, *k)
	}
}

// put stores e under k, replacing old if had, and keeps the counters and
// the NAT index.
func (t *table) put(k *key, e *entry, old *entry, had bool) {
	if had {
		t.c.add(k, old, -1)
		switch {
		case classOf(k, old) != classOf(k, e):
			t.unstore(k, old)
		case old.reply != e.reply:
			t.unindex(k, old)
		}
	}
	t.store(k, e)
	t.c.add(k, e, 1)
}

func (t *table) del(k *key, old *entry) {
	t.c.add(k, old, -1)
	t.unstore(k, old)
}

// apply writes one event.
func (t *table) apply(m *ctMsg) {
	k := key{m.orig, m.zone}
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.get(&k)
	if m.kind == kindDestroy {
		if had {
			if old.nat(&k) {
				t.gone.add(k, old)
			}
			t.del(&k, &old)
		}
		if t.resyncing {
			t.tomb[k] = struct{}{}
		}
		return
	}
	e := entry{reply: m.reply, id: m.id, status: m.status, tcpState: m.tcpState, seen: t.gen, evGen: t.gen}
	if had && !m.hasTCPState {
		e.tcpState = old.tcpState // updates carry protoinfo only when it changed
	}
	if t.resyncing {
		delete(t.tomb, k)
	}
	t.put(&k, &e, &old, had)
}

// beginResync starts a new generation and returns it.
func (t *table) beginResync() uint16 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	if t.gen == 0 {
		t.gen = 1
	}
	t.resyncing = true
	t.tomb = make(map[key]struct{})
	return t.gen
}

// dumped writes a batch of dumped entries of generation g.
func (t *table) dumped(g uint16, ms []ctMsg) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range ms {
		m := &ms[i]
		k := key{m.orig, m.zone}
		if _, dead := t.tomb[k]; dead {
			continue
		}
		old, had := t.get(&k)
		if had && old.evGen == g {
			old.seen = g
			t.store(&k, &old)
			continue
		}
		e := entry{reply: m.reply, id: m.id, status: m.status, tcpState: m.tcpState, seen: g}
		t.put(&k, &e, &old, had)
	}
}

// endResync removes what generation g did not confirm (entries whose
// destroy event was lost) and returns how many it removed. With ok false
// (the dump failed) it only ends the resync.
func (t *table) endResync(g uint16, ok bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resyncing, t.tomb = false, nil
	if !ok {
		return 0
	}
	n := 0
	for k4, r := range t.m4 {
		if r.seen != g {
			k := k4.key()
			e := r.entry(k.t.reverse())
			t.del(&k, &e)
			n++
		}
	}
	for k4, r := range t.n4 {
		if r.seen != g {
			k := k4.key()
			e := r.entry(uint8(k4.proto))
			t.del(&k, &e)
			n++
		}
	}
	for k, e := range t.m6 {
		if e.seen != g {
			t.del(&k, &e)
			n++
		}
	}
	return n
}

func (t *table) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m4) + len(t.n4) + len(t.m6)
}

// lookup finds the entry a flow key belongs to, whichever direction and
// side of the NAT the key was seen in.
func (t *table) lookup(tp tuple, zone uint16) (NAT, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	k := key{tp, zone}
	if e, ok := t.get(&k); ok {
		return natOf(k, &e, MatchOriginal), true
	}
	rk := key{tp.reverse(), zone}
	if e, ok := t.get(&rk); ok {
		return natOf(rk, &e, MatchOriginalReversed), true
	}
	if ok, e, found := t.byReply(&k); found {
		return natOf(ok, &e, MatchReply), true
	}
	if ok, e, found := t.byReply(&rk); found {
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
	var h holderKeys
	t.mu.RLock()
	s.Tracked = len(t.m4) + len(t.n4) + len(t.m6)
	c := t.c
	if topN > 0 {
		h.collect(t)
	}
	t.mu.RUnlock()
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
	if topN > 0 {
		s.TopSources, s.TopServices = h.top(topN)
	}
}

// holderKeys are the sources and destination services of every entry, for
// the top lists: the IPv4 ones packed in integers (a source address; a
// destination address, port and protocol), one per entry, counted by
// sorting them, so that a snapshot of a full table costs 12 bytes per entry
// for as long as it runs and nothing in between; the IPv6 ones, fewer,
// counted in maps.
type holderKeys struct {
	src4 []uint32
	svc4 []uint64
	src6 map[[16]byte]int
	svc6 map[svc6]int
}

type svc6 struct {
	dst   [16]byte
	port  uint16
	proto uint8
}

// svcPort is the port a service is counted under: none for ICMP.
func svcPort(t *tuple) uint16 {
	if t.proto == 1 || t.proto == 58 {
		return 0
	}
	return t.dport
}

func pack4(k *key4) (src uint32, svc uint64) {
	src = binary.BigEndian.Uint32(k.src[:])
	port := k.dport
	if k.proto == 1 || k.proto == 58 {
		port = 0
	}
	svc = uint64(binary.BigEndian.Uint32(k.dst[:]))<<24 | uint64(port)<<8 | uint64(k.proto)
	return src, svc
}

// collect gathers the keys of t's entries. The caller holds t.mu.
func (h *holderKeys) collect(t *table) {
	n := len(t.m4) + len(t.n4)
	h.src4, h.svc4 = make([]uint32, 0, n), make([]uint64, 0, n)
	add := func(k *key4) {
		src, svc := pack4(k)
		h.src4 = append(h.src4, src)
		h.svc4 = append(h.svc4, svc)
	}
	for k := range t.m4 {
		add(&k)
	}
	for k := range t.n4 {
		add(&k)
	}
	if len(t.m6) == 0 {
		return
	}
	h.src6, h.svc6 = make(map[[16]byte]int), make(map[svc6]int)
	for k := range t.m6 {
		h.src6[k.t.src]++
		h.svc6[svc6{k.t.dst, svcPort(&k.t), k.t.proto}]++
	}
}

// runs calls fn with each distinct value of the sorted s and its count.
func runs[T cmp.Ordered](s []T, fn func(v T, n int)) {
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && s[j] == s[i] {
			j++
		}
		fn(s[i], j-i)
		i = j
	}
}

// top returns the n largest holders of each kind, largest first.
func (h *holderKeys) top(n int) (srcs, svcs []Holder) {
	slices.Sort(h.src4)
	runs(h.src4, func(a uint32, c int) {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], a)
		srcs = topInsert(srcs, Holder{Addr: netip.AddrPortFrom(netip.AddrFrom4(b), 0), Entries: c}, n)
	})
	slices.Sort(h.svc4)
	runs(h.svc4, func(v uint64, c int) {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(v>>24))
		svcs = topInsert(svcs, Holder{Addr: netip.AddrPortFrom(netip.AddrFrom4(b), uint16(v>>8)), Proto: uint8(v), Entries: c}, n)
	})
	for a, c := range h.src6 {
		srcs = topInsert(srcs, Holder{Addr: netip.AddrPortFrom(netip.AddrFrom16(a), 0), Entries: c}, n)
	}
	for v, c := range h.svc6 {
		svcs = topInsert(svcs, Holder{Addr: netip.AddrPortFrom(netip.AddrFrom16(v.dst), v.port), Proto: v.proto, Entries: c}, n)
	}
	return srcs, svcs
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
