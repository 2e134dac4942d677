package conntrack

import "time"

// RecentWindow is how far back Watcher.Recent can look. The kernel's drop,
// early_drop and insert_failed counters only ever grow, from the
// namespace's creation: a drop an hour ago says nothing of the table now,
// so verdicts about the present read their increase over a recent period.
const RecentWindow = 15 * time.Minute

// Marks of the counters are kept at most every recentStep, so the window
// costs a few kilobytes at any sampling interval.
const recentStep = time.Second

// Recent is the increase of the kernel's loss counters over a period that
// ended at the last stats sample.
type Recent struct {
	// Since is the sample the increase is counted from: the oldest one
	// within the asked period (later than asked when the Watcher has not
	// been sampling that long).
	Since time.Time
	// Until is the last sample.
	Until                         time.Time
	Drop, EarlyDrop, InsertFailed uint64
}

// lossMark is the loss counters, summed over CPUs, at one sample.
type lossMark struct {
	at                            time.Time
	drop, earlyDrop, insertFailed uint64
}

// markLocked records the summed loss counters of the sample taken at now:
// it is the latest sample, and a mark when a step has passed since the
// last mark. Marks older than RecentWindow are forgotten but for the
// newest of them, the start of a full window. w.mu is held.
func (w *Watcher) markLocked(now time.Time, cpus []CPUStats) {
	m := lossMark{at: now}
	for i := range cpus {
		m.drop += cpus[i].Drop
		m.earlyDrop += cpus[i].EarlyDrop
		m.insertFailed += cpus[i].InsertFailed
	}
	w.latest = m
	if n := len(w.marks); n > 0 && now.Sub(w.marks[n-1].at) < recentStep {
		return
	}
	w.marks = append(w.marks, m)
	old := 0
	for old+1 < len(w.marks) && now.Sub(w.marks[old+1].at) >= RecentWindow {
		old++
	}
	if old > 0 {
		w.marks = append(w.marks[:0], w.marks[old:]...)
	}
}

// Recent returns the increase of the loss counters over the last period
// (at most RecentWindow, at least the last step); ok is false before two
// samples.
func (w *Watcher) Recent(period time.Duration) (r Recent, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	last := w.latest
	if len(w.marks) == 0 || !last.at.After(w.marks[0].at) {
		return Recent{}, false
	}
	from := w.marks[len(w.marks)-1]
	if !last.at.After(from.at) && len(w.marks) > 1 {
		from = w.marks[len(w.marks)-2] // the latest sample is this mark
	}
	for _, m := range w.marks {
		if last.at.Sub(m.at) <= period && last.at.After(m.at) {
			from = m // the oldest within the period
			break
		}
	}
	r.Since, r.Until = from.at, last.at
	r.Drop = sub(last.drop, from.drop)
	r.EarlyDrop = sub(last.earlyDrop, from.earlyDrop)
	r.InsertFailed = sub(last.insertFailed, from.insertFailed)
	return r, true
}

// sub is a-b, 0 when a counter went back (a CPU went offline).
func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
