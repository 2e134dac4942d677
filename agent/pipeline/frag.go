package pipeline

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/decoders"
)

// Defaults of FragConfig.
const (
	// DefaultMaxDatagrams is the number of fragmented datagrams a worker
	// tracks at once.
	DefaultMaxDatagrams = 1024
	// DefaultReassemblyTimeout is Linux's net.ipv4.ipfrag_time (and
	// net.ipv6.ip6frag_time): how long a host keeps the fragments of a
	// datagram before it gives up on it.
	DefaultReassemblyTimeout = 30 * time.Second
)

// maxFragSpans is the number of disjoint byte ranges a datagram may have
// received at once. Fragments that arrive in order or in reverse order keep
// a single range; a datagram needing more is never seen complete and ends
// as incomplete.
const maxFragSpans = 8

// FragConfig configures a worker's fragment tracker. The zero value means
// the defaults.
//
// The tracker follows each fragmented datagram (IPv4, or IPv6 with a
// fragment header) by (family, source, destination, protocol,
// identification) and the byte ranges its fragments covered. A datagram
// is complete when every byte from 0 to the end given by its last fragment
// (MF clear) was seen; it is incomplete when it is not complete within
// Timeout of its first fragment, measured in packet time, as the kernel's
// reassembly queue would time out at this observation point.
type FragConfig struct {
	// MaxDatagrams bounds the datagrams tracked at once. When the tracker
	// is full, the oldest datagram is evicted (counted in
	// Counters.FragEvicted) to make room. 0 means DefaultMaxDatagrams.
	// The tracker's memory (about 160 bytes a datagram) is allocated once,
	// when the worker sees its first fragment.
	MaxDatagrams int
	// Timeout is the reassembly timeout. 0 means DefaultReassemblyTimeout.
	Timeout time.Duration
}

// SetFragConfig configures the worker's fragment tracker. It must be
// called before the worker handles its first frame.
func (w *Worker) SetFragConfig(cfg FragConfig) {
	w.frags = fragTracker{cfg: cfg}
}

// FlushFragments counts every datagram still tracked as incomplete (in
// Counters.FragIncomplete) and empties the tracker. The worker's goroutine
// calls it when its source ends for good (the interface went away), before
// its last Publish, so that Counters.FragPending of a removed worker is 0.
func (w *Worker) FlushFragments() {
	t := &w.frags
	for t.n > 0 {
		e := &t.entries[t.head]
		w.c.FragIncomplete[e.key.fam]++
		t.remove(t.head)
		w.dirty = true
	}
}

// expireIdle expires fragments by the worker's clock, called by Publish:
// packet time, advanced by wall-clock time while no frame arrives, so that
// an idle live source still times its datagrams out while a replay, which
// publishes as soon as its last frame is handled, keeps packet time.
func (w *Worker) expireIdle() {
	t := &w.frags
	if t.n == 0 {
		w.idleFrames = w.c.Frames
		return
	}
	wall := time.Now().UnixNano()
	if w.c.Frames != w.idleFrames {
		w.idleFrames = w.c.Frames
		w.idlePkt, w.idleWall = max(w.lastTime, t.now), wall
	}
	if t.expire(w.idlePkt+(wall-w.idleWall), &w.c) > 0 {
		w.dirty = true
	}
}

// fragKey identifies a fragmented datagram.
type fragKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
	fam      uint8 // 0 IPv4, 1 IPv6
}

type fragSpan struct{ lo, hi uint32 }

// fragEntry is one tracked datagram. Entries live in a preallocated array;
// they are linked from oldest to newest (prev, next) for expiry and
// eviction, and unused entries are chained through next.
type fragEntry struct {
	key      fragKey
	hash     uint64
	first    int64  // packet time of the first fragment seen
	end      uint32 // data length of the datagram, known once last is set
	last     bool   // the last fragment (MF clear) was seen
	overflow bool   // more than maxFragSpans disjoint ranges were needed
	nspans   uint8
	spans    [maxFragSpans]fragSpan // sorted, disjoint, not touching
	prev     int32
	next     int32
}

// fragTracker is a worker's bounded table of fragmented datagrams: an
// open-addressing hash index (linear probing, deletion by backward shift)
// over a fixed array of entries. It allocates once, on its first fragment.
type fragTracker struct {
	cfg        FragConfig
	timeout    int64
	entries    []fragEntry
	slots      []int32 // entry index, or -1
	mask       uint64
	free       int32  // first unused entry
	head, tail int32  // oldest, newest tracked entry
	n          int    // entries tracked
	pending    [2]int // entries tracked, by family
	now        int64  // latest packet time seen
	seed       [5]uint64
}

func (t *fragTracker) init() {
	size := t.cfg.MaxDatagrams
	if size <= 0 {
		size = DefaultMaxDatagrams
	}
	t.timeout = int64(t.cfg.Timeout)
	if t.timeout <= 0 {
		t.timeout = int64(DefaultReassemblyTimeout)
	}
	t.entries = make([]fragEntry, size)
	nslots := 1 << bits.Len(uint(2*size-1)) // a power of two ≥ 2*max
	t.slots = make([]int32, nslots)
	for i := range t.slots {
		t.slots[i] = -1
	}
	t.mask = uint64(nslots - 1)
	for i := range t.entries {
		t.entries[i].next = int32(i + 1)
	}
	t.entries[size-1].next = -1
	t.free, t.head, t.tail = 0, -1, -1
	for i := range t.seed {
		t.seed[i] = rand.Uint64() | 1
	}
}

// add accounts for one fragment (ip, of family fam, at packet time now).
func (t *fragTracker) add(ip *decoders.IP, fam int, now int64, c *Counters) {
	if t.entries == nil {
		t.init()
	}
	if now > t.now {
		t.now = now
	}
	t.expire(t.now, c)
	lo := uint32(ip.FragOffset)
	hi := lo + uint32(max(int(ip.TotalLen)-int(ip.HeaderLen), 0))
	if !ip.MF && lo == 0 {
		// An IPv6 atomic fragment (RFC 6946): a whole datagram.
		c.FragCompleted[fam]++
		return
	}
	k := fragKey{src: ip.Src, dst: ip.Dst, id: ip.ID, proto: ip.Proto, fam: uint8(fam)}
	h := t.hash(&k)
	i := t.lookup(h, &k)
	if i < 0 {
		// The tracker's clock never goes back: a datagram first seen in a
		// frame older than the newest one (replays of merged files)
		// starts now.
		i = t.insert(h, &k, t.now, c)
	}
	e := &t.entries[i]
	if e.cover(lo, hi) {
		c.FragDuplicates[fam]++
	}
	if !ip.MF && !e.last {
		e.last, e.end = true, hi
	}
	if e.last && !e.overflow && e.nspans == 1 && e.spans[0] == (fragSpan{0, e.end}) {
		c.FragCompleted[fam]++
		t.remove(i)
	}
}

// expire counts as incomplete and removes the datagrams whose first
// fragment is older than the timeout at now. It returns how many.
func (t *fragTracker) expire(now int64, c *Counters) int {
	n := 0
	for t.n > 0 {
		e := &t.entries[t.head]
		if now-e.first <= t.timeout {
			break
		}
		c.FragIncomplete[e.key.fam]++
		t.remove(t.head)
		n++
	}
	return n
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func (t *fragTracker) hash(k *fragKey) uint64 {
	s, d := k.src.As16(), k.dst.As16()
	x := mix(binary.LittleEndian.Uint64(s[:8])^t.seed[0], binary.LittleEndian.Uint64(s[8:])^t.seed[1])
	y := mix(binary.LittleEndian.Uint64(d[:8])^t.seed[2], binary.LittleEndian.Uint64(d[8:])^t.seed[3]^uint64(k.id)<<16^uint64(k.proto)<<8^uint64(k.fam))
	return mix(x^y, t.seed[4])
}

func (t *fragTracker) lookup(h uint64, k *fragKey) int32 {
	for s := h & t.mask; ; s = (s + 1) & t.mask {
		i := t.slots[s]
		if i < 0 {
			return -1
		}
		if e := &t.entries[i]; e.hash == h && e.key == *k {
			return i
		}
	}
}

// insert starts tracking datagram k, evicting the oldest one when full.
func (t *fragTracker) insert(h uint64, k *fragKey, now int64, c *Counters) int32 {
	if t.free < 0 {
		c.FragEvicted[t.entries[t.head].key.fam]++
		t.remove(t.head)
	}
	i := t.free
	e := &t.entries[i]
	t.free = e.next
	*e = fragEntry{key: *k, hash: h, first: now, prev: t.tail, next: -1}
	if t.tail >= 0 {
		t.entries[t.tail].next = i
	} else {
		t.head = i
	}
	t.tail = i
	s := h & t.mask
	for t.slots[s] >= 0 {
		s = (s + 1) & t.mask
	}
	t.slots[s] = i
	t.n++
	t.pending[k.fam]++
	return i
}

// remove stops tracking entry i.
func (t *fragTracker) remove(i int32) {
	e := &t.entries[i]
	s := e.hash & t.mask
	for t.slots[s] != i {
		s = (s + 1) & t.mask
	}
	// Backward-shift deletion: move up every later entry of the probe run
	// whose home slot is not cyclically within (s, j].
	for j := (s + 1) & t.mask; t.slots[j] >= 0; j = (j + 1) & t.mask {
		home := t.entries[t.slots[j]].hash & t.mask
		if (j-home)&t.mask >= (j-s)&t.mask {
			t.slots[s] = t.slots[j]
			s = j
		}
	}
	t.slots[s] = -1
	if e.prev >= 0 {
		t.entries[e.prev].next = e.next
	} else {
		t.head = e.next
	}
	if e.next >= 0 {
		t.entries[e.next].prev = e.prev
	} else {
		t.tail = e.prev
	}
	t.pending[e.key.fam]--
	e.key = fragKey{} // drop the address handles
	e.next, e.prev = t.free, -1
	t.free = i
	t.n--
}

// cover adds the bytes [lo, hi) to the datagram's ranges. It reports
// whether they had all been seen before (a duplicate).
func (e *fragEntry) cover(lo, hi uint32) bool {
	if hi <= lo {
		return false
	}
	n := int(e.nspans)
	i := 0
	for i < n && e.spans[i].hi < lo {
		i++
	}
	j := i
	for j < n && e.spans[j].lo <= hi {
		j++
	}
	if i == j { // touches no range: a new one at i
		if n == maxFragSpans {
			e.overflow = true
			return false
		}
		copy(e.spans[i+1:n+1], e.spans[i:n])
		e.spans[i] = fragSpan{lo, hi}
		e.nspans++
		return false
	}
	if j == i+1 && e.spans[i].lo <= lo && hi <= e.spans[i].hi {
		return true
	}
	e.spans[i] = fragSpan{min(lo, e.spans[i].lo), max(hi, e.spans[j-1].hi)}
	copy(e.spans[i+1:], e.spans[j:n])
	e.nspans -= uint8(j - i - 1)
	return false
}

// outerFragment tracks the first fragment of an encapsulated packet whose
// outer IPv4 header is a fragment. The decoders keep the inner packet as
// the main view and only report that the outer one was fragmented, while
// its later fragments, which carry no tunnel header, decode as plain
// fragments; without this, every fragmented tunnel packet would end as
// incomplete. The outer header is read again from Ethernet (with VLAN
// tags), Linux cooked and raw IP frames; an IPv6 outer header is not.
func (w *Worker) outerFragment(frame []byte, lt decoders.LinkType, role flow.Role, now int64) {
	off, etype := 0, uint16(decoders.EtherTypeIPv4)
	switch lt {
	case decoders.LinkEthernet:
		off = 14
		for len(frame) >= off {
			etype = binary.BigEndian.Uint16(frame[off-2 : off])
			if etype != decoders.EtherTypeVLAN && etype != decoders.EtherTypeQinQ && etype != decoders.EtherTypeQinQ2 {
				break
			}
			off += 4
		}
	case decoders.LinkLinuxSLL:
		if len(frame) < 16 {
			return
		}
		off, etype = 16, binary.BigEndian.Uint16(frame[14:16])
	case decoders.LinkLinuxSLL2:
		if len(frame) < 20 {
			return
		}
		off, etype = 20, binary.BigEndian.Uint16(frame[0:2])
	case decoders.LinkRaw, decoders.LinkRawDLT, decoders.LinkRawDLT14, decoders.LinkIPv4:
	default:
		return
	}
	if etype != decoders.EtherTypeIPv4 || len(frame) < off+20 {
		return
	}
	h := frame[off:]
	fl := binary.BigEndian.Uint16(h[6:8])
	ihl := int(h[0]&0x0f) * 4
	if h[0]>>4 != 4 || ihl < 20 || fl&0x3fff == 0 {
		return
	}
	ip := decoders.IP{
		Family: 4, Proto: h[9], MF: fl&0x2000 != 0, FragOffset: (fl & 0x1fff) << 3,
		ID: uint32(binary.BigEndian.Uint16(h[4:6])), TotalLen: binary.BigEndian.Uint16(h[2:4]), HeaderLen: uint16(ihl),
		Src: netip.AddrFrom4([4]byte(h[12:16])), Dst: netip.AddrFrom4([4]byte(h[16:20])),
	}
	pos := 0
	if ip.FragOffset != 0 {
		pos = 1
	}
	w.c.FragRole[role][0][pos]++
	w.frags.add(&ip, 0, now, &w.c)
}
