package flowtable

import (
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// Table is the bounded, sharded flow table. Its methods are safe for
// concurrent use: Update from any number of capture workers, Lookup,
// Snapshot and Stats from query and scrape goroutines, and one sweeper
// (Run, Sweep or Flush) at a time.
type Table struct {
	cfg        settings
	seed       uint64
	shardShift uint
	shards     []shard

	sweepMu sync.Mutex    // one sweeper at a time; guards batch
	batch   []flow.Record // reused batch handed to OnRecords
}

// shard is one independently locked part of the table: a dense array of
// entries and an open-addressing index into it. The array grows by
// doubling as flows arrive, up to the shard's share of MaxEntries, and
// shrinks again in sweeps once few of its entries are in use.
type shard struct {
	mu      sync.Mutex
	n       int32                   // entries in use: entries[:n]
	entries []entry                 // allocated entries: initShardEntries … perShard
	view    atomic.Pointer[[]entry] // entries, for prefetching without the lock
	index   []uint64                // slots: 0 empty, else hash low 32 bits << 32 | entry index+1
	mask    uint64                  // len(index)-1
	peak    int32                   // most entries in use since the last shrink check
	checkAt int64                   // the next shrink check, in the packets' clock
	hand    int32                   // next entry the eviction sample starts at
	evicted []flow.Record
	counters
	_ [64]byte // keep neighbouring shards' hot fields off one cache line
}

// initShardEntries is the number of entries a shard starts with (or its
// whole share of MaxEntries, when smaller).
const initShardEntries = 16

// New returns a table configured by cfg (nil means defaults). It allocates
// a few entries per shard; the rest are allocated as flows arrive.
func New(cfg *Config) (*Table, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	t := &Table{
		cfg:        s,
		seed:       rand.Uint64(),
		shardShift: uint(64 - bits.Len(uint(s.shards-1))),
		shards:     make([]shard, s.shards),
		batch:      make([]flow.Record, 0, s.batchSize),
	}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.resize(min(initShardEntries, s.perShard))
		sh.evicted = make([]flow.Record, 0, s.evictedBuffer)
	}
	return t, nil
}

// resize moves the entries in use to a new array of c entries (c >= n) and
// rebuilds the index for it, at a load factor of at most 1/2. Entries keep
// their positions, so writers' hints stay right. sh.mu must be held (or
// sh not yet shared).
func (sh *shard) resize(c int) {
	e := make([]entry, c)
	copy(e, sh.entries[:sh.n])
	sh.entries = e
	sh.view.Store(&e)
	slots := 1 << bits.Len(uint(2*c-1))
	if slots == len(sh.index) {
		clear(sh.index)
	} else {
		sh.index = make([]uint64, slots)
		sh.mask = uint64(slots - 1)
	}
	for i := range sh.n {
		h := e[i].hash
		pos := h & sh.mask
		for sh.index[pos] != 0 {
			pos = (pos + 1) & sh.mask
		}
		sh.index[pos] = slot(h, i)
	}
	if sh.hand >= sh.n {
		sh.hand = 0
	}
	sh.allocated.Store(int64(c))
}

// shrinkWindow is how long a shard's use is watched before its entries
// are shrunk to it: one reallocation per shard per window at most, so a
// steady churn of short flows (a flood of connections that close) does
// not grow and shrink the arrays at every sweep.
const shrinkWindow = int64(30 * time.Second)

// shrink halves the shard's entries, as often as the most flows it held
// during the last shrinkWindow still fill at most a quarter of them, down
// to initShardEntries: a table once filled by a burst of flows gives its
// memory back a window after they end. It looks once per window (now in
// the packets' clock). sh.mu must be held.
func (sh *shard) shrink(now int64) {
	if now < sh.checkAt {
		return
	}
	sh.checkAt = now + shrinkWindow
	c := len(sh.entries)
	for c > initShardEntries && int(sh.peak) <= c/4 {
		c /= 2
	}
	sh.peak = sh.n
	if c < len(sh.entries) {
		sh.resize(c)
	}
}

// Cap returns the number of flows the table can hold.
func (t *Table) Cap() int { return t.cfg.perShard * len(t.shards) }

// Len returns the number of flows held.
func (t *Table) Len() int {
	n := 0
	for i := range t.shards {
		n += int(t.shards[i].active.Load())
	}
	return n
}

// Stats returns the table's counters summed over its shards. It takes no
// lock: each counter is read atomically, so counters of one snapshot may be
// a few packets apart.
func (t *Table) Stats() Stats {
	s := Stats{Capacity: t.Cap()}
	for i := range t.shards {
		t.shards[i].counters.addTo(&s)
	}
	return s
}

// Update accounts one packet to its flow, adding the flow when it is new.
// It reads *p during the call only. It returns false when the flow was new
// and its shard was full of flows it may not evict (counted in
// Stats.Refused); the packet is then not accounted.
func (t *Table) Update(p *flow.Packet) bool {
	var ck ikey
	rev := ck.set(&p.Key)
	h := t.hash(&ck)
	sh := &t.shards[h>>t.shardShift]
	sh.mu.Lock()
	idx, pos := sh.find(&ck, h)
	if idx < 0 {
		idx = sh.insert(t, &ck, h, pos, p, rev)
		if idx < 0 {
			sh.mu.Unlock()
			return false
		}
	}
	sh.update(&sh.entries[idx], p, rev)
	sh.mu.Unlock()
	return true
}

// hintSlots is the number of slots of a Hints: a power of two.
const hintSlots = 1024

// Hints remembers where the flows one writer updated last sit in the table,
// so that UpdateHinted can go from a packet to its entry without probing
// the shard's index: a writer's recent flows fit in its 8 KiB of hints,
// which take fewer cache lines than the index slots they stand for (those
// are spread over every shard's index). A flow's hint is one of the two slots of its pair (16 bytes, so one
// cache line), the most recently added first. A slot holds the upper half of
// a flow's hash and its entry's position in its shard; it is only a hint,
// checked against the entry's key under the shard's lock, so a stale one
// (the flow removed, moved or evicted since) costs an index probe, never a
// wrong update.
//
// A Hints is owned by one goroutine (a capture worker); its zero value is
// ready to use, for one Table at a time.
type Hints struct {
	slot  [hintSlots]uint64 // hash>>32 << 32 | entry index+1; 0 empty
	batch batchScratch      // UpdateBatch's working space
}

// UpdateHinted is Update for a writer that keeps Hints: it looks for the
// flow where hs says it was first, and records where it is.
func (t *Table) UpdateHinted(p *flow.Packet, hs *Hints) bool {
	var ck ikey
	rev := ck.set(&p.Key)
	h := t.hash(&ck)
	sh := &t.shards[h>>t.shardShift]
	sh.mu.Lock()
	ok := sh.updateHinted(t, p, &ck, h, rev, hs)
	sh.mu.Unlock()
	return ok
}

// updateHinted accounts p (canonical key ck, hash h) to its entry in sh,
// found through hs or the index, or to a new entry. sh.mu must be held.
func (sh *shard) updateHinted(t *Table, p *flow.Packet, ck *ikey, h uint64, rev bool, hs *Hints) bool {
	pair := (*[2]uint64)(hs.slot[h&(hintSlots-2):])
	hint := pair[0]
	if hint>>32 != h>>32 {
		hint = pair[1]
	}
	idx := int32(-1)
	if i := int32(uint32(hint)) - 1; hint>>32 == h>>32 && i >= 0 && i < sh.n && sh.entries[i].k.equal(ck) {
		idx = i
	}
	if idx < 0 {
		var pos uint64
		idx, pos = sh.find(ck, h)
		if idx < 0 {
			idx = sh.insert(t, ck, h, pos, p, rev)
			if idx < 0 {
				return false
			}
		}
		nh := h>>32<<32 | uint64(uint32(idx)+1)
		if pair[0]>>32 != h>>32 {
			pair[1] = pair[0]
		}
		pair[0] = nh
	}
	sh.update(&sh.entries[idx], p, rev)
	return true
}

// Merge adds what a capture's kernel filter counted of one direction of a
// flow at one interface (see flow.Counted) to the flow, adding the flow
// when it is not in the table (as its first packet would have). It returns
// false when the flow was new and its shard full of flows it may not
// evict (counted in Stats.Refused).
func (t *Table) Merge(c *flow.Counted) bool {
	var ck ikey
	rev := ck.set(&c.Key)
	h := t.hash(&ck)
	sh := &t.shards[h>>t.shardShift]
	sh.mu.Lock()
	idx, pos := sh.find(&ck, h)
	if idx < 0 {
		p := flow.Packet{Key: c.Key, Time: c.Last, IfIndex: c.IfIndex, Role: c.Role, Dir: c.Dir, TCPFlags: flow.TCPAck}
		idx = sh.insert(t, &ck, h, pos, &p, rev)
		if idx < 0 {
			sh.mu.Unlock()
			return false
		}
	}
	sh.merge(&sh.entries[idx], c, rev)
	sh.mu.Unlock()
	return true
}

// Has reports whether the flow of k (either direction) is in the table.
func (t *Table) Has(k *flow.Key) bool {
	var ck ikey
	ck.set(k)
	h := t.hash(&ck)
	sh := &t.shards[h>>t.shardShift]
	sh.mu.Lock()
	idx, _ := sh.find(&ck, h)
	sh.mu.Unlock()
	return idx >= 0
}

// Lookup returns the active record of the flow of k (either direction).
func (t *Table) Lookup(k flow.Key) (flow.Record, bool) {
	var ck ikey
	ck.set(&k)
	h := t.hash(&ck)
	sh := &t.shards[h>>t.shardShift]
	var r flow.Record
	sh.mu.Lock()
	idx, _ := sh.find(&ck, h)
	if idx >= 0 {
		sh.entries[idx].record(&r, flow.EndActive, false)
	}
	sh.mu.Unlock()
	return r, idx >= 0
}

// Snapshot appends a record (End == flow.EndActive) of every flow held to
// dst and returns it. Each shard is locked while it is copied.
func (t *Table) Snapshot(dst []flow.Record) []flow.Record {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n := int(sh.n)
		dst = slices.Grow(dst, n)
		for j := 0; j < n; j++ {
			dst = append(dst, flow.Record{})
			sh.entries[j].record(&dst[len(dst)-1], flow.EndActive, false)
		}
		sh.mu.Unlock()
	}
	return dst
}

// hash is a seeded multiply-mix hash of a key. The seed is random per
// table so that crafted tuples cannot aim at one probe chain.
func (t *Table) hash(k *ikey) uint64 {
	const (
		m0 = 0xa0761d6478bd642f
		m1 = 0xe7037ed1a0b428db
		m2 = 0x8ebc6af09c88c6e3
		m3 = 0x589965cc75374cc3
		m4 = 0x1d8e4e27c47d124f
	)
	h := mix(k.s0^t.seed^m0, k.s1^m1)
	h = mix(h^k.d0^m2, k.d1^m3)
	return mix(h^k.meta^m4, t.seed^m1)
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func slot(h uint64, idx int32) uint64 { return h<<32 | uint64(uint32(idx)+1) }

// find returns the index of the entry of k, or -1 and the empty index
// position where it would go.
func (sh *shard) find(k *ikey, h uint64) (int32, uint64) {
	tag := h << 32
	for pos := h & sh.mask; ; pos = (pos + 1) & sh.mask {
		s := sh.index[pos]
		if s == 0 {
			return -1, pos
		}
		if s&^0xffffffff == tag {
			idx := int32(uint32(s) - 1)
			if sh.entries[idx].k.equal(k) {
				return idx, pos
			}
		}
	}
}

// slotOf returns the index position holding entry idx of hash h.
func (sh *shard) slotOf(h uint64, idx int32) uint64 {
	want := slot(h, idx)
	for pos := h & sh.mask; ; pos = (pos + 1) & sh.mask {
		if sh.index[pos] == want {
			return pos
		}
	}
}

// insert adds an entry for key k at empty index position pos, growing the
// shard's entries when they are all in use and below its share of
// MaxEntries, else evicting a victim first. It returns the new entry's index, or
// -1 when the shard is full and no victim may be evicted.
func (sh *shard) insert(t *Table, k *ikey, h uint64, pos uint64, p *flow.Packet, rev bool) int32 {
	if int(sh.n) == len(sh.entries) && len(sh.entries) < t.cfg.perShard {
		sh.resize(min(2*len(sh.entries), t.cfg.perShard))
		_, pos = sh.find(k, h)
	}
	if int(sh.n) == len(sh.entries) {
		if !sh.evict(t, p.Time) {
			sh.refused.Add(1)
			return -1
		}
		_, pos = sh.find(k, h) // removal moved slots
	}
	idx := sh.n
	sh.n++
	sh.peak = max(sh.peak, sh.n)
	sh.entries[idx] = entry{k: *k, hash: h}
	sh.entries[idx].init(p, rev)
	sh.index[pos] = slot(h, idx)
	sh.inserts.Add(1)
	sh.active.Store(int64(sh.n))
	return idx
}

// evict removes one victim from a full shard, chosen among a sample of
// consecutive entries starting at a hand that moves on by the sample size
// each time (entries sit in no particular order, and consecutive ones are
// cheap to read): one-sided flows first, then the least recently seen. It
// reports false, removing nothing, when the victim saw both sides within
// the protection window before now.
func (sh *shard) evict(t *Table, now int64) bool {
	victim := int32(-1)
	var vTwo bool
	var vLast int64
	for range max(t.cfg.sample, 1) {
		if sh.hand >= sh.n {
			sh.hand = 0
		}
		i := sh.hand
		sh.hand++
		e := &sh.entries[i]
		two := e.seen == 3
		if victim < 0 || (!two && vTwo) || (two == vTwo && e.last < vLast) {
			victim, vTwo, vLast = i, two, e.last
		}
	}
	if vTwo && t.cfg.protect >= 0 && now-vLast < t.cfg.protect {
		return false
	}
	e := &sh.entries[victim]
	o := e.outcome(true)
	sh.outcomes[o].Add(1)
	if len(sh.evicted) < cap(sh.evicted) {
		sh.evicted = append(sh.evicted, flow.Record{})
		e.record(&sh.evicted[len(sh.evicted)-1], flow.EndEvicted, true)
	} else {
		sh.evictedLost.Add(1)
	}
	sh.evictions.Add(1)
	sh.remove(victim)
	return true
}

// remove deletes entry idx: its index slot by backward shifting, and the
// hole in the dense array by moving the last entry into it.
func (sh *shard) remove(idx int32) {
	i := sh.slotOf(sh.entries[idx].hash, idx)
	j := i
	for {
		j = (j + 1) & sh.mask
		s := sh.index[j]
		if s == 0 {
			break
		}
		home := (s >> 32) & sh.mask
		// The slot at j may move back to i unless its home lies
		// cyclically in (i, j].
		if (i <= j && i < home && home <= j) || (i > j && (i < home || home <= j)) {
			continue
		}
		sh.index[i] = s
		i = j
	}
	sh.index[i] = 0
	last := sh.n - 1
	if idx != last {
		lh := sh.entries[last].hash
		sh.index[sh.slotOf(lh, last)] = slot(lh, idx)
		sh.entries[idx] = sh.entries[last]
	}
	sh.n = last
	sh.active.Store(int64(sh.n))
}
