package flowtable

import (
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/layerscope/layerscope/agent/flow"
)

// benchKeys returns n random keys and the TCP packets of an established
// flow for each.
func benchPackets(n int) []flow.Packet {
	r := rand.New(rand.NewPCG(7, 8))
	ps := make([]flow.Packet, n)
	for i := range ps {
		k := randomKey(r)
		k.Proto = flow.ProtoTCP
		ps[i] = flow.Packet{Key: k, Time: base, Len: 1500, IfIndex: 3, Role: flow.RolePod, Dir: flow.DirOut,
			TCPFlags: flow.TCPAck | flow.TCPPsh, Seq: 1, PayloadLen: 1448, Window: 512}
	}
	return ps
}

// BenchmarkUpdateExisting updates established TCP flows (4096 of them,
// round robin, both directions): the per-packet cost in steady state.
func BenchmarkUpdateExisting(b *testing.B) {
	tab, _ := newTable(b, Config{})
	ps := benchPackets(4096)
	for i := range ps {
		tab.Update(&ps[i])
	}
	b.ReportAllocs()
	ct := startCPU(b)
	defer ct.stop()
	for i := 0; b.Loop(); i++ {
		p := &ps[i&4095]
		p.Seq += 1448
		p.Time += 1000
		tab.Update(p)
	}
}

// BenchmarkUpdateExistingHinted is BenchmarkUpdateExisting through
// UpdateHinted, with 256 flows (the live benchmark's, all in the writer's
// hints) and 4096 (four times the hints' slots).
func BenchmarkUpdateExistingHinted(b *testing.B) {
	for _, n := range []int{256, 4096} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			tab, _ := newTable(b, Config{})
			ps := benchPackets(n)
			var h Hints
			for i := range ps {
				tab.UpdateHinted(&ps[i], &h)
			}
			b.ReportAllocs()
			ct := startCPU(b)
			defer ct.stop()
			for i := 0; b.Loop(); i++ {
				p := &ps[i%n]
				p.Seq += 1448
				p.Time += 1000
				tab.UpdateHinted(p, &h)
			}
		})
	}
}

// BenchmarkUpdateExistingBatch is BenchmarkUpdateExistingHinted through
// UpdateBatch, MaxBatch packets at a time (the packets are not copied).
func BenchmarkUpdateExistingBatch(b *testing.B) {
	for _, n := range []int{256, 4096} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			tab, _ := newTable(b, Config{})
			ps := benchPackets(n)
			var h Hints
			tab.UpdateBatch(ps, &h)
			b.ReportAllocs()
			ct := startCPU(b)
			defer ct.stop()
			b.ResetTimer()
			for i := 0; i < b.N; i += MaxBatch {
				j := i % n
				batch := ps[j:min(j+MaxBatch, n, j+b.N-i)]
				for k := range batch {
					batch[k].Seq += 1448
					batch[k].Time += 1000
				}
				tab.UpdateBatch(batch, &h)
			}
		})
	}
}

// BenchmarkUpdateExisting256 is BenchmarkUpdateExisting with 256 flows, to
// compare with BenchmarkUpdateExistingHinted/256.
func BenchmarkUpdateExisting256(b *testing.B) {
	tab, _ := newTable(b, Config{})
	ps := benchPackets(256)
	for i := range ps {
		tab.Update(&ps[i])
	}
	b.ReportAllocs()
	ct := startCPU(b)
	defer ct.stop()
	for i := 0; b.Loop(); i++ {
		p := &ps[i&255]
		p.Seq += 1448
		p.Time += 1000
		tab.Update(p)
	}
}

// BenchmarkUpdateHot updates one established TCP flow: the CPU cost of
// an update without cache misses.
func BenchmarkUpdateHot(b *testing.B) {
	tab, _ := newTable(b, Config{})
	p := benchPackets(1)[0]
	tab.Update(&p)
	b.ReportAllocs()
	ct := startCPU(b)
	defer ct.stop()
	for b.Loop() {
		p.Seq += 1448
		p.Time += 1000
		tab.Update(&p)
	}
}

// BenchmarkUpdateExistingParallel is BenchmarkUpdateExisting from all
// Ps at once, each with its own flows.
func BenchmarkUpdateExistingParallel(b *testing.B) {
	tab, _ := newTable(b, Config{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ps := benchPackets(4096)
		for i := range ps {
			ps[i].Key.SrcPort ^= uint16(rand.Uint32())
			tab.Update(&ps[i])
		}
		for i := 0; pb.Next(); i++ {
			p := &ps[i&4095]
			p.Seq += 1448
			p.Time += 1000
			tab.Update(p)
		}
	})
}

// BenchmarkInsertEvict adds a new flow per packet to a full table: every
// insert evicts (the flood case).
func BenchmarkInsertEvict(b *testing.B) {
	tab, _ := newTable(b, Config{MaxEntries: 65536})
	r := rand.New(rand.NewPCG(9, 10))
	p := flow.Packet{IfIndex: 1, Len: 80, Time: base}
	for range 2 * tab.Cap() {
		p.Key = randomKey(r)
		tab.Update(&p)
	}
	keys := make([]flow.Key, 1<<16)
	for i := range keys {
		keys[i] = randomKey(r)
	}
	b.ReportAllocs()
	ct := startCPU(b)
	defer ct.stop()
	for i := 0; b.Loop(); i++ {
		p.Key = keys[i&(1<<16-1)]
		p.Key.DstPort = uint16(i >> 16) // new on every pass
		p.Time++
		tab.Update(&p)
	}
}

// BenchmarkMixed is 95% packets of 100k established flows and 5% new
// flows in a table at its bound.
func BenchmarkMixed(b *testing.B) {
	tab, _ := newTable(b, Config{MaxEntries: 131072})
	ps := benchPackets(100000)
	for i := range ps {
		tab.Update(&ps[i])
	}
	r := rand.New(rand.NewPCG(11, 12))
	fresh := flow.Packet{IfIndex: 1, Len: 80, Time: base}
	order := make([]int32, 1<<16)
	for i := range order {
		order[i] = int32(r.IntN(len(ps)))
	}
	b.ReportAllocs()
	ct := startCPU(b)
	defer ct.stop()
	for i := 0; b.Loop(); i++ {
		if i%20 == 0 {
			fresh.Key = randomKey(r)
			fresh.Time += 1000
			tab.Update(&fresh)
			continue
		}
		p := &ps[order[i&(1<<16-1)]]
		p.Seq += 1448
		p.Time += 1000
		tab.Update(p)
	}
}

// The lookups below compare the shard's open-addressing index with a
// plain Go map from key to entry index over the same 4096 keys.
func BenchmarkLookupOpenAddressing(b *testing.B) {
	tab, _ := newTable(b, Config{MaxEntries: 8192, Shards: 1})
	ps := benchPackets(4096)
	for i := range ps {
		tab.Update(&ps[i])
	}
	sh := &tab.shards[0]
	b.ReportAllocs()
	ct := startCPU(b)
	defer ct.stop()
	found := 0
	for i := 0; b.Loop(); i++ {
		k, _ := makeKey(&ps[i&4095].Key)
		if idx, _ := sh.find(&k, tab.hash(&k)); idx >= 0 {
			found++
		}
	}
	if found != b.N {
		b.Fatalf("found %d of %d", found, b.N)
	}
}

func BenchmarkLookupGoMap(b *testing.B) {
	ps := benchPackets(4096)
	m := make(map[flow.Key]int32, 8192)
	for i := range ps {
		k, _ := ps[i].Key.Canonical()
		m[k] = int32(i)
	}
	b.ReportAllocs()
	ct := startCPU(b)
	defer ct.stop()
	found := 0
	for i := 0; b.Loop(); i++ {
		k, _ := ps[i&4095].Key.Canonical()
		if _, ok := m[k]; ok {
			found++
		}
	}
	if found != b.N {
		b.Fatalf("found %d of %d", found, b.N)
	}
}

func BenchmarkLookupGoMapIkey(b *testing.B) {
	ps := benchPackets(4096)
	m := make(map[ikey]int32, 8192)
	for i := range ps {
		k, _ := makeKey(&ps[i].Key)
		m[k] = int32(i)
	}
	b.ReportAllocs()
	ct := startCPU(b)
	defer ct.stop()
	found := 0
	for i := 0; b.Loop(); i++ {
		k, _ := makeKey(&ps[i&4095].Key)
		if _, ok := m[k]; ok {
			found++
		}
	}
	if found != b.N {
		b.Fatalf("found %d of %d", found, b.N)
	}
}

// TestEntrySize keeps the layout the package documentation describes: the
// key, times and state bytes in line 0, one line per hop right after it,
// whole cache lines, and no pointers (the collector never scans entries).
func TestEntrySize(t *testing.T) {
	var e entry
	if got := unsafe.Sizeof(e); got != 768 {
		t.Errorf("entry is %d bytes; the package documentation says 768", got)
	}
	if got := unsafe.Sizeof(e) % 64; got != 0 {
		t.Errorf("entry is not a whole number of cache lines (%d bytes over)", got)
	}
	if got := unsafe.Sizeof(hop{}); got != 64 {
		t.Errorf("hop is %d bytes, want one cache line", got)
	}
	if off := unsafe.Offsetof(e.hops); off != 64 {
		t.Errorf("hops start at byte %d, want 64 (right after the key line)", off)
	}
	if off := unsafe.Offsetof(e.app); off >= 64 {
		t.Errorf("state bytes at %d, want them in line 0 with the key and last-seen time", off)
	}
	if off := unsafe.Offsetof(e.first); off >= 64 {
		t.Errorf("first-seen time at %d, want it in line 0", off)
	}
	if hasPointers(reflect.TypeOf(e)) {
		t.Errorf("entry holds pointers: the collector would scan the whole table")
	}
	tab, _ := newTable(t, Config{})
	idx := float64(len(tab.shards)*len(tab.shards[0].index)*8) / float64(tab.Cap())
	t.Logf("entry %d bytes, index %.0f bytes per entry, record %d bytes, packet %d bytes; %d entries: %.1f MiB",
		unsafe.Sizeof(e), idx, unsafe.Sizeof(flow.Record{}), unsafe.Sizeof(flow.Packet{}), tab.Cap(),
		(float64(unsafe.Sizeof(e))+idx)*float64(tab.Cap())/(1<<20))
}

// hasPointers reports whether values of t hold pointers.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.UnsafePointer, reflect.Map, reflect.Slice, reflect.String,
		reflect.Chan, reflect.Func, reflect.Interface:
		return true
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// BenchmarkUpdateColdBatches updates 256 established flows round robin in
// batches of 550 packets, the live benchmark's packets per reader
// wake-up, and evicts the table from the caches between batches (it writes
// 8 MiB, twice this machine's L2), as the rest of the machine does while the
// reader sleeps. ns/pkt is the batches' own time per packet.
func BenchmarkUpdateColdBatches(b *testing.B) {
	for _, mode := range []string{"update", "hinted", "batch"} {
		b.Run(mode, func(b *testing.B) {
			tab, _ := newTable(b, Config{MaxEntries: 65536})
			ps := benchPackets(256)
			var h Hints
			for i := range ps {
				tab.UpdateHinted(&ps[i], &h)
			}
			batch := make([]flow.Packet, 0, 256)
			junk := make([]byte, 8<<20)
			b.ReportAllocs()
			var busy time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; {
				n := min(550, b.N-i)
				t0 := time.Now()
				for j := range n {
					p := &ps[(i+j)&255]
					p.Seq += 1448
					p.Time += 1000
					switch mode {
					case "update":
						tab.Update(p)
					case "hinted":
						tab.UpdateHinted(p, &h)
					default:
						// The worker's way: the packet is built in the batch.
						batch = append(batch, *p)
						if len(batch) == cap(batch) {
							tab.UpdateBatch(batch, &h)
							batch = batch[:0]
						}
					}
				}
				if len(batch) > 0 {
					tab.UpdateBatch(batch, &h)
					batch = batch[:0]
				}
				busy += time.Since(t0)
				i += n
				for k := 0; k < len(junk); k += 64 {
					junk[k]++
				}
			}
			b.ReportMetric(float64(busy.Nanoseconds())/float64(b.N), "ns/pkt")
		})
	}
}
