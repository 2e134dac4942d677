package flowtable

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/stretchr/testify/require"
)

// UpdateHinted gives exactly what Update gives, through evictions, sweeps
// and flows that come back after being removed (hints gone stale): two
// tables with one seed, fed the same packets, one with each, emit the same
// records and hold the same flows and counters.
func TestUpdateHintedEqualsUpdate(t *testing.T) {
	cfg := Config{MaxEntries: 512, Shards: 4, IdleTimeout: 50 * time.Millisecond, EvictProtect: -1}
	a, ca := newTable(t, cfg)
	b, cb := newTable(t, cfg)
	b.seed = a.seed
	var hints Hints
	compareRandomTraffic(t, a, ca, b, cb, func(p *flow.Packet) bool { return b.UpdateHinted(p, &hints) }, nil)
}

// UpdateBatch gives exactly what Update gives, with batches of every size
// (split above MaxBatch), through evictions (a full shard evicts within a
// batch), sweeps between batches and stale hints, with more shards than
// UpdateBatch has groups (shards sharing a group) and with fewer.
func TestUpdateBatchEqualsUpdate(t *testing.T) {
	for _, shards := range []int{4, 128} {
		cfg := Config{MaxEntries: 2048, Shards: shards, IdleTimeout: 50 * time.Millisecond, EvictProtect: -1}
		if shards < batchBuckets {
			cfg.MaxEntries = 512
		}
		a, ca := newTable(t, cfg)
		b, cb := newTable(t, cfg)
		b.seed = a.seed
		var hints Hints
		var batch []flow.Packet
		size := 1
		rng := rand.New(rand.NewPCG(5, 6))
		flush := func() {
			b.UpdateBatch(batch, &hints)
			batch = batch[:0]
			size = 1 + rng.IntN(2*MaxBatch)
		}
		compareRandomTraffic(t, a, ca, b, cb, func(p *flow.Packet) bool {
			batch = append(batch, *p)
			if len(batch) >= size {
				flush()
			}
			return true
		}, flush)
	}
}

// compareRandomTraffic feeds a with Update and b through update (which
// reports Update's result, or true when it defers the packet to flush) the
// same random packets, sweeping both every 5000, and checks that they end
// with the same counters, flows and records.
func compareRandomTraffic(t *testing.T, a *Table, ca *collector, b *Table, cb *collector, update func(*flow.Packet) bool, flush func()) {
	t.Helper()
	if flush == nil {
		flush = func() {}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	flags := []uint8{syn, synack, ack, psh, psh, psh, finack, rstack}
	now := int64(1e9)
	for i := range 200_000 {
		f := rng.IntN(3000)
		if rng.IntN(4) != 0 {
			f %= 300 // a working set of hot flows and a tail that evicts
		}
		k := flow.Key{Src: netip.AddrFrom4([4]byte{10, 0, byte(f >> 8), byte(f)}), Dst: netip.AddrFrom4([4]byte{10, 1, 0, 1}),
			SrcPort: uint16(40000 + f%7), DstPort: 8080, Proto: flow.ProtoTCP}
		if f%5 == 0 {
			k.Proto, k.DstPort = flow.ProtoUDP, 53
		}
		if rng.IntN(2) == 0 {
			k = k.Reverse()
		}
		now += int64(rng.IntN(20)) * int64(us)
		p := flow.Packet{Key: k, Time: now, Len: uint32(60 + rng.IntN(1400)), IfIndex: int32(1 + rng.IntN(3)),
			Role: flow.RolePod, Dir: flow.DirOut, TCPFlags: flags[rng.IntN(len(flags))], Seq: rng.Uint32(),
			PayloadLen: uint16(rng.IntN(1448)), Window: uint16(rng.IntN(3))}
		if ok := a.Update(&p); !update(&p) {
			require.False(t, ok)
		}
		if i%5000 == 4999 {
			flush()
			a.Sweep(now)
			b.Sweep(now)
		}
	}
	flush()
	require.Equal(t, a.Stats(), b.Stats())
	require.Equal(t, a.Snapshot(nil), b.Snapshot(nil))
	a.Flush()
	b.Flush()
	ra, rb := ca.take(), cb.take()
	require.NotEmpty(t, ra)
	require.Equal(t, ra, rb)
	require.Positive(t, a.Stats().Evictions)
}
