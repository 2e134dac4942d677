package history

import (
	"fmt"
	"sort"
	"sync"

	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
)

// DefaultSize is the number of entries a ring holds when Config.Size is
// zero.
const DefaultSize = 16384

// maxSize bounds Config.Size (about 820 MiB of entries).
const maxSize = 1 << 20

// Kind says what an entry is.
type Kind uint8

// Kinds of entries.
const (
	KindFinal    Kind = iota // the flow ended: its final record
	KindProgress             // the flow is still active; its state changed
	NumKinds
)

var kindNames = [NumKinds]string{"final", "progress"}

// String returns "final" or "progress".
func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return "unknown"
}

// Entry is one connection event: a copy of a flow record and the
// conntrack translation of its connection. Entries handed out by Read are
// the caller's copies.
type Entry struct {
	// Seq is the entry's sequence number: 1 for the first entry added to
	// the ring, one more for each next one.
	Seq uint64
	// Time is when the entry was added (Unix nanoseconds, wall clock).
	Time int64
	// Kind says whether the flow had ended.
	Kind Kind
	// HasNAT is true when NAT holds conntrack's entry of the connection
	// (translated or not); false when conntrack was off or did not know it.
	HasNAT bool
	// NAT is the connection's conntrack translation (valid when HasNAT).
	NAT correlate.Translation
	// Record is the flow table's record of the flow (Record.End says why
	// it was emitted; EndActive for KindProgress).
	Record flow.Record
	// Policy is what the NetworkPolicies said of the connection when it
	// failed (or stayed unanswered); nil otherwise. Shared, never written.
	Policy *correlate.Policy
}

// Config configures a Ring. The zero value (or a nil *Config) means
// defaults.
type Config struct {
	// Size is the number of entries held; the oldest is overwritten when a
	// new one arrives. Zero means DefaultSize. At most 1,048,576.
	Size int
}

// Stats are a ring's counters. Counters only grow; Len, Size and
// Subscribers are gauges.
type Stats struct {
	Size, Len int
	// Added counts entries by kind.
	Added [NumKinds]uint64
	// Overwritten counts entries overwritten by newer ones (the ring was
	// full).
	Overwritten uint64
	// Subscribers is the number of open subscriptions.
	Subscribers int
	// FollowerLost counts entries subscribers missed because the ring
	// overwrote them before they read them.
	FollowerLost uint64
}

// Ring is the bounded history. Create it with New.
type Ring struct {
	mu   sync.Mutex
	buf  []Entry
	next uint64 // Seq of the next entry; entries next-len(held) … next-1 are held
	held int
	subs []*Sub
	st   Stats
}

// initEntries is the number of entries a ring allocates at first (or its
// Size, when smaller); it doubles as they fill, up to Size.
const initEntries = 256

// New returns a ring that allocates its entries as they are added: it
// starts with a few and doubles them, up to Config.Size, when all are in
// use.
func New(cfg *Config) (*Ring, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	switch {
	case c.Size < 0:
		return nil, fmt.Errorf("%w: Size %d is negative", errConfig, c.Size)
	case c.Size > maxSize:
		return nil, fmt.Errorf("%w: Size %d is above %d", errConfig, c.Size, maxSize)
	case c.Size == 0:
		c.Size = DefaultSize
	}
	return &Ring{buf: make([]Entry, min(initEntries, c.Size)), next: 1, st: Stats{Size: c.Size}}, nil
}

// grow doubles the entries, up to the ring's Size, keeping each held
// entry at its sequence number's place in the larger buffer. r.mu must be
// held.
func (r *Ring) grow() {
	buf := make([]Entry, min(2*len(r.buf), r.st.Size))
	for seq := r.oldest(); seq < r.next; seq++ {
		buf[seq%uint64(len(buf))] = r.buf[seq%uint64(len(r.buf))]
	}
	r.buf = buf
}

// Add copies rec, with the translation nat (nil when unknown), into the
// ring as an entry of kind k added at now (Unix nanoseconds), signals the
// subscribers and returns the entry's sequence number. It never waits for
// a subscriber, and allocates only when the ring doubles its entries on
// the way to its Size.
func (r *Ring) Add(k Kind, rec *flow.Record, nat *correlate.Translation, now int64) uint64 {
	return r.AddExplained(k, rec, nat, nil, now)
}

// AddExplained is Add with the NetworkPolicies' explanation of a failed
// connection (nil: none), kept by pointer.
func (r *Ring) AddExplained(k Kind, rec *flow.Record, nat *correlate.Translation, pol *correlate.Policy, now int64) uint64 {
	r.mu.Lock()
	if r.held == len(r.buf) && len(r.buf) < r.st.Size {
		r.grow()
	}
	seq := r.next
	e := &r.buf[seq%uint64(len(r.buf))]
	e.Seq, e.Time, e.Kind, e.Record, e.Policy = seq, now, k, *rec, pol
	if nat != nil {
		e.HasNAT, e.NAT = true, *nat
	} else {
		e.HasNAT, e.NAT = false, correlate.Translation{}
	}
	r.next++
	if r.held < len(r.buf) {
		r.held++
	} else {
		r.st.Overwritten++
	}
	if k < NumKinds {
		r.st.Added[k]++
	}
	for _, s := range r.subs {
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}
	r.mu.Unlock()
	return seq
}

// oldest returns the Seq of the oldest entry held (next when empty).
func (r *Ring) oldest() uint64 { return r.next - uint64(r.held) }

// Read copies entries, oldest first, starting at sequence number from, into
// dst (appending up to cap(dst)-len(dst) of them, at least one when dst has
// no room) and returns dst, the sequence number to read from next, and the
// number of entries from from on that the ring no longer holds (skipped).
func (r *Ring) Read(from uint64, dst []Entry) (out []Entry, next, skipped uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readLocked(from, dst)
}

func (r *Ring) readLocked(from uint64, dst []Entry) ([]Entry, uint64, uint64) {
	var skipped uint64
	if o := r.oldest(); from < o {
		skipped, from = o-from, o
	}
	room := max(cap(dst)-len(dst), 1)
	for ; from < r.next && room > 0; from++ {
		dst = append(dst, r.buf[from%uint64(len(r.buf))])
		room--
	}
	return dst, from, skipped
}

// SeqAt returns the sequence number of the oldest entry added at or after
// t (Unix nanoseconds); the next sequence number when there is none.
func (r *Ring) SeqAt(t int64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.oldest()
	i := sort.Search(r.held, func(i int) bool {
		return r.buf[(o+uint64(i))%uint64(len(r.buf))].Time >= t
	})
	return o + uint64(i)
}

// Next returns the sequence number the next entry will have.
func (r *Ring) Next() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

// Stats returns the ring's counters.
func (r *Ring) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.st
	s.Len = r.held
	s.Subscribers = len(r.subs)
	return s
}

// Sub is a subscription: a cursor that reads the entries added after it
// was made. Its methods are not safe for concurrent use with each other
// (one goroutine follows one subscription); Close may be called once.
type Sub struct {
	r     *Ring
	ready chan struct{}
	next  uint64
	lost  uint64
}

// Subscribe returns a subscription to the entries added from now on.
func (r *Ring) Subscribe() *Sub {
	s := &Sub{r: r, ready: make(chan struct{}, 1)}
	r.mu.Lock()
	s.next = r.next
	r.subs = append(r.subs, s)
	r.mu.Unlock()
	return s
}

// Ready receives a value when entries were added since the last Read (it
// may also receive one when the last Read already took them).
func (s *Sub) Ready() <-chan struct{} { return s.ready }

// Read appends the subscription's unread entries to dst (up to its free
// capacity, at least one) and returns dst and the number of entries lost
// since the last Read because the ring overwrote them first.
func (s *Sub) Read(dst []Entry) (out []Entry, lost uint64) {
	r := s.r
	r.mu.Lock()
	out, s.next, lost = r.readLocked(s.next, dst)
	r.st.FollowerLost += lost
	pending := s.next < r.next
	r.mu.Unlock()
	s.lost += lost
	if pending { // dst was full: make the next wait return at once
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}
	return out, lost
}

// Lost returns the number of entries the subscription lost so far.
func (s *Sub) Lost() uint64 { return s.lost }

// Close ends the subscription.
func (s *Sub) Close() {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, x := range r.subs {
		if x == s {
			r.subs = append(r.subs[:i], r.subs[i+1:]...)
			return
		}
	}
}
