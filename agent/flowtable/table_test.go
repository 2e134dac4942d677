package flowtable

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// randomKey is a UDP key from a random IPv4 source to the server: the shape
// of a spoofed-source flood.
func randomKey(r *rand.Rand) flow.Key {
	var a [4]byte
	v := r.Uint32()
	a[0], a[1], a[2], a[3] = 11, byte(v>>16), byte(v>>8), byte(v)
	return flow.Key{Src: netip.AddrFrom4(a), Dst: server, SrcPort: uint16(r.Uint32()), DstPort: 53, Proto: flow.ProtoUDP}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name            string
		cfg             *Config
		shards, capable int
		err             bool
	}{
		{name: "nil means defaults", cfg: nil, shards: 64, capable: DefaultMaxEntries},
		{name: "shards rounded up", cfg: &Config{MaxEntries: 1000, Shards: 3}, shards: 4, capable: 1000},
		{name: "small table keeps 16 per shard", cfg: &Config{MaxEntries: 100}, shards: 4, capable: 100},
		{name: "tiny table has one shard", cfg: &Config{MaxEntries: 5}, shards: 1, capable: 5},
		{name: "uneven split stays under the bound", cfg: &Config{MaxEntries: 1001, Shards: 8}, shards: 8, capable: 1000},
		{name: "negative max", cfg: &Config{MaxEntries: -1}, err: true},
		{name: "negative timeout", cfg: &Config{IdleTimeout: -time.Second}, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := New(tt.cfg)
			if tt.err {
				if !ErrConfig(err) {
					t.Fatalf("err %v, want a config error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tab.shards) != tt.shards || tab.Cap() != tt.capable {
				t.Errorf("shards %d cap %d, want %d %d", len(tab.shards), tab.Cap(), tt.shards, tt.capable)
			}
		})
	}
}

func TestFloodStaysBounded(t *testing.T) {
	tab, c := newTable(t, Config{MaxEntries: 1024, Shards: 4, EvictedBuffer: 8})
	// A two-sided connection, active throughout the flood.
	conn := tcpKey(41000)
	feed(t, tab, conn, handshake[:4])
	r := rand.New(rand.NewPCG(1, 2))
	const flood = 200000
	p := flow.Packet{IfIndex: 1, Len: 80}
	for i := range flood {
		p.Key = randomKey(r)
		p.Time = base + int64(ms) + int64(i)*int64(us)
		if !tab.Update(&p) {
			t.Fatalf("flood packet %d refused: one-sided flows must always be evictable", i)
		}
		if i%1000 == 0 {
			q := step{at: time.Duration(p.Time - base), flags: ack, seq: 1101}.packet(conn)
			tab.Update(&q)
			q = step{at: time.Duration(p.Time - base), srv: true, flags: ack, seq: 5001}.packet(conn)
			tab.Update(&q)
		}
		if n := tab.Len(); n > tab.Cap() {
			t.Fatalf("%d entries above the bound %d", n, tab.Cap())
		}
	}
	s := tab.Stats()
	if s.Entries != int64(tab.Cap()) || s.Capacity != 1024 {
		t.Errorf("entries %d capacity %d, want full at 1024", s.Entries, s.Capacity)
	}
	if s.Inserts != flood+1 || s.Evictions != s.Inserts-uint64(s.Entries) || s.Refused != 0 {
		t.Errorf("inserts %d evictions %d refused %d entries %d", s.Inserts, s.Evictions, s.Refused, s.Entries)
	}
	if _, ok := tab.Lookup(conn); !ok {
		t.Errorf("the active two-sided connection was evicted by one-sided flood flows")
	}
	if s.Outcomes[flow.OutcomeUnreplied] != s.Evictions {
		t.Errorf("outcomes %v, want %d unreplied evictions", s.Outcomes, s.Evictions)
	}
	// Evicted flows are reported at the next sweep, as far as the buffer
	// (8 per shard) held them; the rest are counted lost.
	tab.Sweep(p.Time)
	recs := c.take()
	if len(recs) != 4*8 || s.EvictedLost != s.Evictions-4*8 {
		t.Errorf("%d evicted records reported, %d lost of %d", len(recs), s.EvictedLost, s.Evictions)
	}
	for _, rec := range recs {
		if rec.End != flow.EndEvicted || rec.Outcome != flow.OutcomeUnreplied || rec.Hops[0].Packets[flow.FromClient] != 1 {
			t.Fatalf("evicted record %+v", rec)
		}
	}
}

func TestFullOfActiveFlowsRefuses(t *testing.T) {
	for _, protect := range []time.Duration{0, -1} {
		tab, _ := newTable(t, Config{MaxEntries: 16, EvictProtect: protect})
		for i := range 16 {
			feed(t, tab, udpKey(uint16(42000+i), 53), []step{{at: 0}, {at: us, srv: true}})
		}
		p := step{at: 500 * ms}.packet(udpKey(43000, 53))
		ok := tab.Update(&p)
		s := tab.Stats()
		if protect == 0 {
			// Default: two-sided flows seen within 1 s are protected.
			if ok || s.Refused != 1 || s.Evictions != 0 || tab.Len() != 16 {
				t.Errorf("protected: accepted %v, refused %d, evictions %d", ok, s.Refused, s.Evictions)
			}
			p.Time = base + int64(1500*ms) // now older than the protection window
			if !tab.Update(&p) {
				t.Errorf("a flow idle past EvictProtect was not evicted")
			}
			continue
		}
		if !ok || s.Refused != 0 || s.Evictions != 1 || tab.Len() != 16 {
			t.Errorf("unprotected: accepted %v, refused %d, evictions %d", ok, s.Refused, s.Evictions)
		}
	}
}

func TestSweep(t *testing.T) {
	tab, c := newTable(t, Config{
		MaxEntries: 256, IdleTimeout: 10 * time.Second, ClosedTimeout: time.Second,
		ActiveTimeout: 4 * time.Second, BatchSize: 3,
	})
	feed(t, tab, tcpKey(44000), handshake) // closed, last packet at 950 µs
	for i := range 7 {                     // open UDP flows, last packet at 0 s
		feed(t, tab, udpKey(uint16(44100+i), 53), []step{{at: 0}})
	}
	long := udpKey(44200, 53) // active throughout
	for s := range 13 {
		feed(t, tab, long, []step{{at: time.Duration(s) * time.Second}})
		got := tab.Sweep(base + int64(s)*int64(time.Second) + int64(ms))
		recs := c.take()
		if got != len(recs) {
			t.Errorf("at %d s: Sweep returned %d, consumer got %d", s, got, len(recs))
		}
		switch s {
		case 1: // the closed TCP flow, 1.00005 s idle, past ClosedTimeout
			if len(recs) != 1 || recs[0].Key != tcpKey(44000) || recs[0].End != flow.EndIdle || recs[0].Outcome != flow.OutcomeClosed {
				t.Errorf("at 1 s: %+v", recs)
			}
		case 4, 8: // active reports of every flow held since 0 s
			if len(recs) != 8 {
				t.Errorf("at %d s: %d records, want 8 active reports", s, len(recs))
			}
			for _, r := range recs {
				if r.End != flow.EndActive || (r.Key == long && r.Hops[0].Packets[0] != uint64(s+1)) {
					t.Errorf("at %d s: %v end %v packets %v", s, r.Key, r.End, r.Hops[0].Packets)
				}
			}
		case 10: // the open UDP flows, past IdleTimeout
			if len(recs) != 7 {
				t.Errorf("at 10 s: %d records, want 7", len(recs))
			}
			for _, r := range recs {
				if r.End != flow.EndIdle || r.Outcome != flow.OutcomeUnreplied || r.Key == long {
					t.Errorf("at 10 s: %v %v %v", r.Key, r.End, r.Outcome)
				}
			}
		case 12:
			if len(recs) != 1 || recs[0].Key != long || recs[0].End != flow.EndActive {
				t.Errorf("at 12 s: %d records, want the long flow's active report", len(recs))
			}
		default:
			if len(recs) != 0 {
				t.Errorf("at %d s: %d records, want none", s, len(recs))
			}
		}
	}
	if tab.Len() != 1 {
		t.Errorf("%d flows left, want the long one", tab.Len())
	}
	s := tab.Stats()
	if s.Expired != 8 || s.Records != 25 || s.Outcomes[flow.OutcomeClosed] != 1 || s.Outcomes[flow.OutcomeUnreplied] != 7 {
		t.Errorf("expired %d records %d outcomes %v", s.Expired, s.Records, s.Outcomes)
	}
}

func TestSweepBatches(t *testing.T) {
	tab, c := newTable(t, Config{MaxEntries: 4096, Shards: 4, BatchSize: 7})
	for i := range 1000 {
		feed(t, tab, udpKey(uint16(10000+i), 53), []step{{at: 0}})
	}
	if n := tab.Flush(); n != 1000 {
		t.Fatalf("flush emitted %d, want 1000", n)
	}
	seen := map[flow.Key]bool{}
	for _, r := range c.records {
		seen[r.Key] = true
	}
	for _, b := range c.batches {
		if b > 7 || b == 0 {
			t.Fatalf("batch of %d, want 1..7", b)
		}
	}
	if len(seen) != 1000 || tab.Len() != 0 || tab.Stats().Flushed != 1000 {
		t.Errorf("%d distinct records, %d left", len(seen), tab.Len())
	}
}

// TestIndexConsistency drives one shard through random inserts and removals
// and checks the open-addressing index against a plain map after each.
func TestIndexConsistency(t *testing.T) {
	tab, _ := newTable(t, Config{MaxEntries: 64, Shards: 1, EvictProtect: -1})
	sh := &tab.shards[0]
	r := rand.New(rand.NewPCG(3, 4))
	model := map[ikey]bool{}
	keys := make([]flow.Key, 200)
	for i := range keys {
		keys[i] = randomKey(r)
	}
	for op := range 20000 {
		k := keys[r.IntN(len(keys))]
		ck, _ := makeKey(&k)
		h := tab.hash(&ck)
		if idx, _ := sh.find(&ck, h); r.IntN(3) == 0 && idx >= 0 {
			sh.remove(idx)
			delete(model, ck)
		} else {
			p := flow.Packet{Key: k, Time: base + int64(op), IfIndex: 1}
			tab.Update(&p)
			model[ck] = true
			if len(model) > 64 { // an eviction happened: resync the model
				model = map[ikey]bool{}
				for i := range sh.n {
					model[sh.entries[i].k] = true
				}
			}
		}
		if int(sh.n) != len(model) {
			t.Fatalf("op %d: %d entries, model %d", op, sh.n, len(model))
		}
		for _, k := range keys {
			ck, _ := makeKey(&k)
			idx, _ := sh.find(&ck, tab.hash(&ck))
			if (idx >= 0) != model[ck] || (idx >= 0 && sh.entries[idx].k != ck) {
				t.Fatalf("op %d: find(%v) = %d, model %v", op, ck, idx, model[ck])
			}
		}
	}
}

func TestConcurrentUpdates(t *testing.T) {
	tab, c := newTable(t, Config{MaxEntries: 1 << 14, Shards: 8})
	const workers, flows, rounds = 4, 64, 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() { // scrape and query while packets flow
		for {
			select {
			case <-stop:
				return
			default:
				tab.Stats()
				tab.Snapshot(nil)
				tab.Sweep(base) // nothing is idle at base
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Worker 0 calls Update, worker 1 UpdateHinted, the others
			// UpdateBatch, a round's packets at a time.
			var hints Hints
			var batch []flow.Packet
			for i := range rounds {
				for f := range flows {
					// Every worker updates every flow, from both sides,
					// on its own interface.
					s := step{at: time.Duration(i) * us, ifIndex: int32(w + 1), srv: i%2 == 1, len: 100}
					p := s.packet(udpKey(uint16(20000+f), 53))
					switch w {
					case 0:
						tab.Update(&p)
					case 1:
						tab.UpdateHinted(&p, &hints)
					default:
						batch = append(batch, p)
					}
				}
				tab.UpdateBatch(batch, &hints)
				batch = batch[:0]
			}
		}()
	}
	wg.Wait()
	close(stop)
	tab.Flush()
	recs := c.take()
	if len(recs) != flows {
		t.Fatalf("%d records, want %d", len(recs), flows)
	}
	for _, r := range recs {
		if r.NumHops != workers {
			t.Fatalf("%v: %d hops, want %d", r.Key, r.NumHops, workers)
		}
		for _, h := range r.Hops[:r.NumHops] {
			if h.Packets != [2]uint64{rounds / 2, rounds / 2} || h.Bytes[0] != 100*rounds/2 {
				t.Fatalf("%v hop %d: packets %v bytes %v", r.Key, h.IfIndex, h.Packets, h.Bytes)
			}
		}
	}
}

func TestNoAllocations(t *testing.T) {
	tab, _ := newTable(t, Config{MaxEntries: 4096, Shards: 4, EvictProtect: -1})
	r := rand.New(rand.NewPCG(5, 6))
	p := flow.Packet{IfIndex: 1, Len: 80, Time: base}
	for range 10000 { // fill and warm
		p.Key = randomKey(r)
		tab.Update(&p)
	}
	if a := testing.AllocsPerRun(1000, func() {
		p.Key = randomKey(r)
		p.Time++
		tab.Update(&p)
	}); a != 0 {
		t.Errorf("insert with eviction: %v allocs", a)
	}
	q := handshake[3].packet(tcpKey(46000))
	tab.Update(&q)
	if a := testing.AllocsPerRun(1000, func() {
		q.Seq += 100
		tab.Update(&q)
	}); a != 0 {
		t.Errorf("existing flow: %v allocs", a)
	}
	tab.Sweep(base) // warm the batch
	if a := testing.AllocsPerRun(10, func() { tab.Sweep(base) }); a != 0 {
		t.Errorf("sweep: %v allocs", a)
	}
}

func TestKeyRoundTrip(t *testing.T) {
	keys := []flow.Key{
		tcpKey(1), tcpKey(1).Reverse(),
		{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"), SrcPort: 5, DstPort: 6, Proto: flow.ProtoUDP},
		{Src: netip.MustParseAddr("::ffff:10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.1"), SrcPort: 7, DstPort: 7, Proto: flow.ProtoTCP},
		{Src: server, Dst: server, SrcPort: 9, DstPort: 8, Proto: flow.ProtoICMP},
	}
	for _, k := range keys {
		x, rev := makeKey(&k)
		back := x.flowKey()
		if rev {
			back = back.Reverse()
		}
		if back != k {
			t.Errorf("%v came back as %v", k, back)
		}
		r := k.Reverse()
		y, rrev := makeKey(&r)
		if y != x || (rrev == rev && k != r) {
			t.Errorf("%v: reverse key %v/%v, want the same ikey, other orientation", k, y, rrev)
		}
	}
	a, _ := makeKey(&keys[3])
	b4 := keys[3]
	b4.Src = netip.MustParseAddr("10.0.0.1")
	b, _ := makeKey(&b4)
	if a == b {
		t.Errorf("IPv4 and IPv4-mapped IPv6 addresses share a key")
	}
}

func TestAddrWords(t *testing.T) {
	if !directWords {
		t.Logf("netip.Addr layout changed: the flow table reads addresses through As16 (slower)")
	}
	r := rand.New(rand.NewPCG(13, 14))
	for i := range 1000 {
		var b [16]byte
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		a := netip.AddrFrom16(b)
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte(b[:4]))
		}
		hi, lo := addrWords(&a)
		if got := addr(hi, lo, a.Is4()); got != a {
			t.Fatalf("%v came back as %v", a, got)
		}
	}
}

// TestL7MessagesCountedOnce checks that DNS and HTTP messages seen on two
// hops are counted once each, by rcode and status class.
func TestL7MessagesCountedOnce(t *testing.T) {
	tab, _ := newTable(t, Config{})
	dns := udpKey(40000, 53)
	feed(t, tab, dns, []step{
		{at: 0, app: flow.AppDNS, dnsID: 1},
		{at: 5 * time.Microsecond, ifIndex: 2, app: flow.AppDNS, dnsID: 1},
		{at: time.Millisecond, ifIndex: 2, srv: true, app: flow.AppDNS, resp: true, dnsID: 1, rcode: 3},
		{at: time.Millisecond + 5*time.Microsecond, srv: true, app: flow.AppDNS, resp: true, dnsID: 1, rcode: 3},
		{at: 2 * time.Millisecond, app: flow.AppDNS, dnsID: 2},
		{at: 3 * time.Millisecond, srv: true, app: flow.AppDNS, resp: true, dnsID: 2, rcode: 2},
	})
	web := tcpKey(41000)
	feed(t, tab, web, []step{
		{at: 0, app: flow.AppHTTP},
		{at: time.Millisecond, srv: true, app: flow.AppHTTP, resp: true, status: 503},
		{at: 2 * time.Millisecond, app: flow.AppHTTP},
		{at: 3 * time.Millisecond, srv: true, app: flow.AppHTTP, resp: true, status: 200},
	})
	s := tab.Stats()
	if s.Requests[flow.AppDNS] != 2 || s.Responses[flow.AppDNS][3] != 1 || s.Responses[flow.AppDNS][2] != 1 {
		t.Errorf("DNS queries %d, NXDOMAIN %d, SERVFAIL %d; want 2, 1, 1",
			s.Requests[flow.AppDNS], s.Responses[flow.AppDNS][3], s.Responses[flow.AppDNS][2])
	}
	if s.Requests[flow.AppHTTP] != 2 || s.Responses[flow.AppHTTP][5] != 1 || s.Responses[flow.AppHTTP][2] != 1 {
		t.Errorf("HTTP requests %d, 5xx %d, 2xx %d; want 2, 1, 1",
			s.Requests[flow.AppHTTP], s.Responses[flow.AppHTTP][5], s.Responses[flow.AppHTTP][2])
	}
}

// TestGrowsWithFlowsAndShrinksAsTheyEnd checks that the table allocates
// entries as flows arrive and gives them back a shrink window after they
// expire, and that no flow or count is lost when a shard's array and index
// are rebuilt.
func TestGrowsWithFlowsAndShrinksAsTheyEnd(t *testing.T) {
	tab, c := newTable(t, Config{MaxEntries: 4096, Shards: 4, IdleTimeout: time.Second})
	if got := tab.Stats().Allocated; got != 4*initShardEntries {
		t.Fatalf("new table allocated %d entries, want %d", got, 4*initShardEntries)
	}
	r := rand.New(rand.NewPCG(7, 8))
	keys := make([]flow.Key, 1500)
	for i := range keys {
		keys[i] = randomKey(r)
	}
	// Each flow gets one packet per round; the arrays double during the
	// first round, between a flow's packets.
	const rounds = 3
	for round := range rounds {
		for i := range keys {
			p := flow.Packet{Key: keys[i], IfIndex: 1, Len: uint32(100 + i), Time: base + int64(round)}
			if !tab.Update(&p) {
				t.Fatalf("flow %d refused", i)
			}
		}
	}
	s := tab.Stats()
	if s.Entries != int64(len(keys)) || s.Evictions != 0 || s.Refused != 0 {
		t.Fatalf("entries %d evictions %d refused %d, want %d 0 0", s.Entries, s.Evictions, s.Refused, len(keys))
	}
	// 1,500 flows over 4 shards: each array is the next power of two at
	// or above its share, at most twice the flows held plus a shard's
	// rounding.
	if s.Allocated < s.Entries || s.Allocated > 2*s.Entries+4*initShardEntries {
		t.Errorf("allocated %d entries for %d flows", s.Allocated, s.Entries)
	}
	for i, k := range keys {
		rec, ok := tab.Lookup(k)
		h := rec.Hops[0]
		pk, by := h.Packets[0]+h.Packets[1], h.Bytes[0]+h.Bytes[1]
		if !ok || pk != rounds || by != uint64(rounds*(100+i)) {
			t.Fatalf("flow %d after growth: %v packets %d bytes %d, want %d and %d", i, ok, pk, by, rounds, rounds*(100+i))
		}
	}
	// The flows expire: the table gives its entries back.
	if n := tab.Sweep(base + int64(2*time.Second)); n != len(keys) {
		t.Fatalf("sweep emitted %d records, want %d", n, len(keys))
	}
	if got := len(c.take()); got != len(keys) {
		t.Fatalf("collected %d records", got)
	}
	// Not at once: the flows held in the last window count. A window
	// later the shards shrink to what they held in it.
	if s := tab.Stats(); s.Entries != 0 || s.Allocated < int64(len(keys)) {
		t.Errorf("right after expiry: entries %d, allocated %d, want 0 and the arrays kept", s.Entries, s.Allocated)
	}
	later := base + 2*int64(time.Second) + shrinkWindow
	tab.Sweep(later)
	if s := tab.Stats(); s.Entries != 0 || s.Allocated != 4*initShardEntries {
		t.Errorf("a window after expiry: entries %d, allocated %d, want 0 and %d", s.Entries, s.Allocated, 4*initShardEntries)
	}
	// And grows again.
	for i := range keys[:100] {
		p := flow.Packet{Key: keys[i], IfIndex: 1, Len: 60, Time: later + 1}
		tab.Update(&p)
	}
	if s := tab.Stats(); s.Entries != 100 {
		t.Errorf("after regrowth: entries %d, want 100", s.Entries)
	}
}

// TestChurnDoesNotReallocate checks that a steady churn of short flows,
// each sweep expiring what arrived since the one before, keeps the shards'
// arrays instead of shrinking them at every sweep and growing them again.
func TestChurnDoesNotReallocate(t *testing.T) {
	tab, c := newTable(t, Config{MaxEntries: 4096, Shards: 4, IdleTimeout: time.Second})
	r := rand.New(rand.NewPCG(9, 10))
	for sec := range 120 {
		now := base + int64(sec)*int64(time.Second)
		for range 600 {
			p := flow.Packet{Key: randomKey(r), IfIndex: 1, Len: 60, Time: now}
			tab.Update(&p)
		}
		tab.Sweep(now + int64(time.Second) + 1) // expires this second's flows
		c.take()
		if s := tab.Stats(); s.Entries != 0 || s.Allocated < 600 {
			t.Fatalf("second %d: %d entries, %d allocated after the sweep: the arrays were shrunk under a steady churn of 600 flows a second",
				sec, s.Entries, s.Allocated)
		}
	}
}
