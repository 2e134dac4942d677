package history

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
)

func rec(port uint16) flow.Record {
	return flow.Record{
		Key: flow.Key{Src: netip.MustParseAddr("10.244.0.5"), Dst: netip.MustParseAddr("10.96.0.42"),
			SrcPort: port, DstPort: 8080, Proto: flow.ProtoTCP},
		First: int64(port), Outcome: flow.OutcomeClosed, End: flow.EndIdle,
	}
}

func TestNewConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  *Config
		size int
		bad  bool
	}{
		{"nil", nil, DefaultSize, false},
		{"zero", &Config{}, DefaultSize, false},
		{"small", &Config{Size: 3}, 3, false},
		{"negative", &Config{Size: -1}, 0, true},
		{"huge", &Config{Size: maxSize + 1}, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg)
			if tt.bad {
				if !ErrConfig(err) {
					t.Fatalf("New(%+v) = %v, want a config error", tt.cfg, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Stats().Size; got != tt.size {
				t.Errorf("size %d, want %d", got, tt.size)
			}
		})
	}
}

func TestRingOverwritesOldest(t *testing.T) {
	r, _ := New(&Config{Size: 4})
	nat := correlate.Translation{ID: 7}
	for i := range 6 {
		rc := rec(uint16(1000 + i))
		var n *correlate.Translation
		if i%2 == 0 {
			n = &nat
		}
		if seq := r.Add(KindFinal, &rc, n, int64(100+i)); seq != uint64(i+1) {
			t.Fatalf("entry %d got seq %d", i, seq)
		}
	}
	got, next, skipped := r.Read(1, make([]Entry, 0, 10))
	if skipped != 2 || next != 7 || len(got) != 4 {
		t.Fatalf("Read(1) = %d entries, next %d, skipped %d; want 4, 7, 2", len(got), next, skipped)
	}
	for i, e := range got {
		if want := uint16(1002 + i); e.Record.Key.SrcPort != want || e.Seq != uint64(i+3) {
			t.Errorf("entry %d: port %d seq %d, want port %d seq %d", i, e.Record.Key.SrcPort, e.Seq, want, i+3)
		}
		if e.HasNAT != (i%2 == 0) || (e.HasNAT && e.NAT.ID != 7) || (!e.HasNAT && e.NAT.ID != 0) {
			t.Errorf("entry %d: HasNAT %v NAT %+v", i, e.HasNAT, e.NAT)
		}
	}
	st := r.Stats()
	if st.Len != 4 || st.Overwritten != 2 || st.Added[KindFinal] != 6 {
		t.Errorf("stats %+v", st)
	}
	if s := r.SeqAt(104); s != 5 {
		t.Errorf("SeqAt(104) = %d, want 5", s)
	}
	if s := r.SeqAt(0); s != 3 {
		t.Errorf("SeqAt(0) = %d, want the oldest, 3", s)
	}
	if s := r.SeqAt(1000); s != 7 {
		t.Errorf("SeqAt(1000) = %d, want next, 7", s)
	}
	// A bounded read returns at most the room of dst.
	got, next, _ = r.Read(3, make([]Entry, 0, 2))
	if len(got) != 2 || next != 5 {
		t.Errorf("bounded read: %d entries, next %d", len(got), next)
	}
}

func TestSubscriberLosesWithoutBlocking(t *testing.T) {
	r, _ := New(&Config{Size: 8})
	s := r.Subscribe()
	defer s.Close()
	fast := r.Subscribe()
	rc := rec(1)
	done := make(chan struct{})
	go func() { // nobody reads s while 100 entries go in: Add must not wait
		for range 100 {
			r.Add(KindProgress, &rc, nil, time.Now().UnixNano())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Add blocked on a subscriber that does not read")
	}
	select {
	case <-s.Ready():
	default:
		t.Fatal("subscriber not signalled")
	}
	got, lost := s.Read(make([]Entry, 0, 100))
	if lost != 92 || len(got) != 8 || got[0].Seq != 93 {
		t.Fatalf("slow subscriber: %d entries from seq %d, lost %d; want 8 from 93, lost 92", len(got), got[0].Seq, lost)
	}
	if st := r.Stats(); st.FollowerLost != 92 || st.Subscribers != 2 {
		t.Errorf("stats %+v", st)
	}
	fast.Close()
	if st := r.Stats(); st.Subscribers != 1 {
		t.Errorf("after Close: %d subscribers", st.Subscribers)
	}
	// Nothing new: an empty read, no loss.
	if got, lost := s.Read(make([]Entry, 0, 4)); len(got) != 0 || lost != 0 {
		t.Errorf("idle read: %d entries, lost %d", len(got), lost)
	}
}

func TestProgressReportsChanges(t *testing.T) {
	p := NewProgress()
	a, b := rec(1), rec(2)
	a.Outcome, b.Outcome = flow.OutcomeSynSent, flow.OutcomeEstablished
	var seen []uint16
	collect := func(r *flow.Record) { seen = append(seen, r.Key.SrcPort) }
	if n := p.Changed([]flow.Record{a, b}, collect); n != 2 {
		t.Fatalf("first snapshot: %d changes, want 2", n)
	}
	b.Hops[0].Packets[0] = 99 // packets alone are no change
	if n := p.Changed([]flow.Record{a, b}, collect); n != 0 {
		t.Fatalf("unchanged snapshot: %d changes (%v)", n, seen)
	}
	a.TCP.SYNRetransmits = 2
	if n := p.Changed([]flow.Record{a, b}, collect); n != 1 || seen[len(seen)-1] != 1 {
		t.Fatalf("SYN retransmission: %d changes, last %v", n, seen)
	}
	p.Changed([]flow.Record{b}, collect) // a left the table
	if p.Len() != 1 {
		t.Errorf("remembers %d flows, want 1", p.Len())
	}
	if n := p.Changed([]flow.Record{a, b}, collect); n != 1 {
		t.Errorf("a flow seen again after it left counts as new: got %d changes", n)
	}
}

// BenchmarkRingAdd is the cost of recording one connection event; it must
// not allocate.
func BenchmarkRingAdd(b *testing.B) {
	r, _ := New(nil)
	s := r.Subscribe() // a subscriber that never reads
	defer s.Close()
	rc := rec(1)
	nat := correlate.Translation{ID: 1}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Add(KindFinal, &rc, &nat, int64(i))
	}
}

// BenchmarkRingMemory reports the memory a full ring of the default size
// takes, per entry.
func BenchmarkRingMemory(b *testing.B) {
	var before, after runtime.MemStats
	rc := rec(1)
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		r, _ := New(nil)
		for range DefaultSize {
			r.Add(KindFinal, &rc, nil, 1)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(r)
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / DefaultSize
	b.ReportMetric(per, "B/entry")
	b.ReportMetric(per*DefaultSize/(1<<20), "MiB/ring")
}

func TestZeroAllocAdd(t *testing.T) {
	r, _ := New(&Config{Size: 3 * initEntries})
	s := r.Subscribe()
	defer s.Close()
	rc := rec(1)
	for range 3 * initEntries { // grown to its size
		r.Add(KindFinal, &rc, nil, 1)
	}
	if n := testing.AllocsPerRun(1000, func() { r.Add(KindFinal, &rc, nil, 1) }); n != 0 {
		t.Errorf("Add allocates %v times", n)
	}
}

// TestGrowsToSize checks that a ring that allocates its entries as they
// arrive holds, reads and follows them as one allocated whole would: in
// order, across each doubling and the last, partial one.
func TestGrowsToSize(t *testing.T) {
	const size = 3*initEntries + 17
	r, _ := New(&Config{Size: size})
	s := r.Subscribe()
	defer s.Close()
	add := func(from, to int) {
		for i := from; i <= to; i++ {
			rc := rec(uint16(i))
			if seq := r.Add(KindFinal, &rc, nil, int64(i)); seq != uint64(i) {
				t.Fatalf("entry %d got seq %d", i, seq)
			}
		}
	}
	check := func(from uint64, wantFirst, wantLast int, wantSkipped uint64) {
		t.Helper()
		got, next, skipped := r.Read(from, make([]Entry, 0, 2*size))
		if skipped != wantSkipped || next != uint64(wantLast+1) || len(got) != wantLast-wantFirst+1 {
			t.Fatalf("Read(%d): %d entries, next %d, skipped %d; want %d..%d, skipped %d",
				from, len(got), next, skipped, wantFirst, wantLast, wantSkipped)
		}
		for i, e := range got {
			if want := wantFirst + i; e.Seq != uint64(want) || e.Record.Key.SrcPort != uint16(want) || e.Time != int64(want) {
				t.Fatalf("Read(%d)[%d]: seq %d port %d time %d, want %d", from, i, e.Seq, e.Record.Key.SrcPort, e.Time, want)
			}
		}
	}
	add(1, initEntries+10) // one doubling
	check(1, 1, initEntries+10, 0)
	if at := r.SeqAt(100); at != 100 {
		t.Errorf("SeqAt(100) = %d", at)
	}
	add(initEntries+11, size) // up to its size: the last doubling is partial
	check(1, 1, size, 0)
	add(size+1, 2*size+5) // overwriting
	check(1, size+6, 2*size+5, size+5)
	st := r.Stats()
	if st.Len != size || st.Size != size || st.Overwritten != size+5 {
		t.Errorf("stats: len %d size %d overwritten %d", st.Len, st.Size, st.Overwritten)
	}
	// The subscriber made at the start lost what was overwritten.
	got, lost := s.Read(make([]Entry, 0, 2*size))
	if lost != size+5 || len(got) != size || got[0].Seq != size+6 {
		t.Errorf("subscriber: %d entries from %d, lost %d", len(got), got[0].Seq, lost)
	}
}
