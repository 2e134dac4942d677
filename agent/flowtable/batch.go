package flowtable

import (
	"unsafe"

	"github.com/layerscope/layerscope/agent/flow"
)

// MaxBatch is the number of packets UpdateBatch accounts in one pass; it
// splits longer batches.
const MaxBatch = 256

// batchBuckets is the number of groups UpdateBatch sorts a batch's packets
// into: one per shard when the table has at most this many shards.
const batchBuckets = 64

// batchScratch is UpdateBatch's working space, kept in the writer's Hints.
type batchScratch struct {
	key   [MaxBatch]ikey
	hash  [MaxBatch]uint64
	rev   [MaxBatch]bool
	order [MaxBatch]uint8
}

// UpdateBatch accounts ps to their flows as Update would, for a writer that
// keeps Hints, and returns the number of packets refused (see Update). The
// result is the same as that of UpdateHinted on each packet in order: the
// packets are grouped by shard, keeping their order within each shard
// (where all of a flow's state lives), so each shard is locked once per
// group rather than once per packet. Before any lock is taken, the shards'
// lock lines, the hints and the entries the hints point to are prefetched
// for the whole batch, so their cache misses overlap instead of following
// one another.
func (t *Table) UpdateBatch(ps []flow.Packet, hs *Hints) (refused int) {
	for len(ps) > MaxBatch {
		refused += t.UpdateBatch(ps[:MaxBatch], hs)
		ps = ps[MaxBatch:]
	}
	n := len(ps)
	if n == 0 {
		return refused
	}
	b := &hs.batch
	var count [batchBuckets + 1]uint16
	for i := range ps {
		k := &b.key[i]
		b.rev[i] = k.set(&ps[i].Key)
		h := t.hash(k)
		b.hash[i] = h
		s := h >> t.shardShift
		prefetch(unsafe.Pointer(&t.shards[s]))
		prefetch(unsafe.Pointer(&hs.slot[h&(hintSlots-2)]))
		count[s&(batchBuckets-1)+1]++
	}
	for i := 1; i < len(count); i++ {
		count[i] += count[i-1]
	}
	for i := range n {
		s := b.hash[i] >> t.shardShift & (batchBuckets - 1)
		b.order[count[s]] = uint8(i)
		count[s]++
	}
	// The hinted entries' key line and first hop. Only addresses are
	// formed here, without the lock: the hint is checked under it.
	for i := range n {
		h := b.hash[i]
		pair := (*[2]uint64)(hs.slot[h&(hintSlots-2):])
		hint := pair[0]
		if hint>>32 != h>>32 {
			hint = pair[1]
		}
		entries := *t.shards[h>>t.shardShift].view.Load()
		if e := int(uint32(hint)) - 1; hint>>32 == h>>32 && e >= 0 && e < len(entries) {
			prefetch2(unsafe.Pointer(&entries[e]))
		}
	}
	var cur *shard
	for _, o := range b.order[:n] {
		h := b.hash[o]
		sh := &t.shards[h>>t.shardShift]
		if sh != cur {
			if cur != nil {
				cur.mu.Unlock()
			}
			sh.mu.Lock()
			cur = sh
		}
		if !sh.updateHinted(t, &ps[o], &b.key[o], h, b.rev[o], hs) {
			refused++
		}
	}
	cur.mu.Unlock()
	return refused
}
