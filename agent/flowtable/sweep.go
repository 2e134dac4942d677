package flowtable

import (
	"context"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// Run sweeps the table every Config.SweepInterval with the wall clock
// until ctx is done, then returns nil. It does not flush: call Flush after
// Run returns to report the flows still held.
func (t *Table) Run(ctx context.Context) error {
	log := t.cfg.logger
	log.Debug("sweeping", "interval_seconds", t.cfg.sweepInterval.Seconds(), "capacity", t.Cap())
	tick := time.NewTicker(t.cfg.sweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Debug("stopped sweeping", "entries", t.Len())
			return nil
		case now := <-tick.C:
			t.Sweep(now.UnixNano())
		}
	}
}

// Sweep reports the flows evicted since the last sweep, removes and reports
// the flows idle at now (Unix nanoseconds, in the clock of the packets'
// Time: the wall clock live, the capture's clock in a replay) and, with
// Config.ActiveTimeout, reports long-running flows. It returns the number
// of records emitted. Each shard is locked only while it is scanned, and
// never while OnRecords runs.
func (t *Table) Sweep(now int64) int { return t.sweep(now, false) }

// Flush reports and removes every flow (End == flow.EndFlushed), after the
// evicted flows not yet reported. Use it at shutdown or at the end of a
// replay. It returns the number of records emitted.
func (t *Table) Flush() int { return t.sweep(0, true) }

func (t *Table) sweep(now int64, flush bool) int {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	emitted := 0
	for i := range t.shards {
		emitted += t.sweepShard(&t.shards[i], now, flush)
	}
	return emitted + t.emit()
}

func (t *Table) sweepShard(sh *shard, now int64, flush bool) int {
	emitted := 0
	sh.mu.Lock()
	for i := 0; i < len(sh.evicted); i++ {
		if len(t.batch) == cap(t.batch) {
			sh.mu.Unlock()
			emitted += t.emit()
			sh.mu.Lock()
		}
		t.batch = append(t.batch, sh.evicted[i])
		sh.records.Add(1)
	}
	sh.evicted = sh.evicted[:0]
	for i := sh.n - 1; i >= 0; i-- {
		if len(t.batch) == cap(t.batch) {
			sh.mu.Unlock()
			emitted += t.emit()
			sh.mu.Lock()
			if i >= sh.n { // entries left while unlocked
				i = sh.n
				continue
			}
		}
		e := &sh.entries[i]
		timeout := t.cfg.idle
		if e.k.proto() == flow.ProtoTCP && e.closed() {
			timeout = t.cfg.closed
		}
		switch {
		case flush || now-e.last > timeout:
			end := flow.EndIdle
			if flush {
				end = flow.EndFlushed
				sh.flushed.Add(1)
			} else {
				sh.expired.Add(1)
			}
			t.batch = append(t.batch, flow.Record{})
			r := &t.batch[len(t.batch)-1]
			e.record(r, end, true)
			sh.outcomes[r.Outcome].Add(1)
			sh.records.Add(1)
			sh.remove(i)
		case t.cfg.active > 0 && now-e.reported >= t.cfg.active:
			e.reported = now
			t.batch = append(t.batch, flow.Record{})
			e.record(&t.batch[len(t.batch)-1], flow.EndActive, false)
			sh.records.Add(1)
		}
	}
	if !flush {
		sh.shrink(now)
	}
	sh.mu.Unlock()
	return emitted
}

// emit hands the batch to OnRecords and empties it.
func (t *Table) emit() int {
	n := len(t.batch)
	if n > 0 && t.cfg.onRecords != nil {
		t.cfg.onRecords(t.batch)
	}
	t.batch = t.batch[:0]
	return n
}
