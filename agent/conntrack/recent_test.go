package conntrack

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRecentLosses(t *testing.T) {
	w := &Watcher{}
	_, ok := w.Recent(time.Minute)
	require.False(t, ok, "no samples")
	t0 := time.Unix(1_000_000, 0)
	drops := func(d uint64) []CPUStats { return []CPUStats{{Drop: d}, {Drop: d, InsertFailed: d}} }
	// 20 minutes of samples every 100 ms; the drops count 2 per second
	// (one per CPU), insert_failed 1 per second.
	var at time.Time
	for i := 0; i <= 20*60*10; i++ {
		at = t0.Add(time.Duration(i) * 100 * time.Millisecond)
		w.mu.Lock()
		w.markLocked(at, drops(uint64(i/10)))
		w.mu.Unlock()
	}
	require.LessOrEqual(t, len(w.marks), int(RecentWindow/recentStep)+2, "marks are spaced a step apart")
	require.Equal(t, at, w.latest.at)

	r, ok := w.Recent(5 * time.Minute)
	require.True(t, ok)
	require.Equal(t, at, r.Until)
	require.Equal(t, 5*time.Minute, r.Until.Sub(r.Since))
	require.Equal(t, uint64(2*300), r.Drop)
	require.Equal(t, uint64(300), r.InsertFailed)

	r, _ = w.Recent(time.Hour) // capped at the window kept
	require.GreaterOrEqual(t, r.Until.Sub(r.Since), RecentWindow)
	require.Less(t, r.Until.Sub(r.Since), RecentWindow+2*recentStep)

	r, _ = w.Recent(0) // shorter than a step: the last step
	require.LessOrEqual(t, r.Until.Sub(r.Since), recentStep)

	// A CPU gone offline takes its counts with it: never a negative increase.
	w.mu.Lock()
	w.markLocked(at.Add(2*time.Second), drops(0)[:1])
	w.mu.Unlock()
	r, _ = w.Recent(time.Second)
	require.Zero(t, r.Drop)
}
