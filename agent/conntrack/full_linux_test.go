package conntrack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
	"github.com/stretchr/testify/require"
)

// With the lab's conntrack-flood and a lowered global limit, node-1's table
// fills: the fill ratio reaches 1, the per-CPU drop counter rises and
// equals conntrack-tools' sum, and the exhaustion ETA falls while it fills.
func TestTableFull(t *testing.T) {
	testns.RequireRoot(t)
	var b [2]byte
	rand.Read(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.New(ctx, &lab.Config{Prefix: "ct" + hex.EncodeToString(b[:]) + "-"})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	ns, err := l.Namespace(lab.Node1)
	require.NoError(t, err)
	w := openWatcher(t, ns, Config{StatsInterval: 20 * time.Millisecond, RateWindow: 200 * time.Millisecond})
	before := w.Snapshot()

	const limit = 2000
	var (
		mu      sync.Mutex
		maxFill float64
		minETA  = before.ExhaustionETA
		peak    Snapshot
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			s := w.Snapshot()
			mu.Lock()
			if s.Limit == limit && s.FillRatio > maxFill {
				maxFill, peak = s.FillRatio, s
			}
			if s.Limit == limit && s.Entries < s.Limit && s.ExhaustionETA < minETA {
				minETA = s.ExhaustionETA
			}
			mu.Unlock()
		}
	})
	r, err := l.Traffic(ctx, lab.ScenarioConntrackFlood, lab.TrafficOptions{Count: 2600, ConntrackMax: limit})
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.True(t, r.Flood.Restored)
	t.Logf("flood: %d attempted, %d failed; node entries %v", r.Flood.Attempted, r.Flood.Failed, r.Flood.Entries)

	require.NoError(t, w.Sample(ctx))
	after := w.Snapshot()
	t.Logf("peak fill %.3f (entries %d of %d), lowest ETA while filling %.2fs, drops %d -> %d",
		maxFill, peak.Entries, peak.Limit, minETA, before.Stats.Drop, after.Stats.Drop)
	require.GreaterOrEqual(t, maxFill, 0.99, "the table filled")
	require.Greater(t, after.Stats.Drop, before.Stats.Drop, "the kernel dropped packets")
	require.Equal(t, ctStats(t, l.NetNS(lab.Node1))["drop"], after.Stats.Drop, "drop vs conntrack -S")
	rec, ok := w.Recent(RecentWindow)
	require.True(t, ok)
	require.Equal(t, after.Stats.Drop-before.Stats.Drop, rec.Drop, "the drops of the flood are the recent ones")
	require.Less(t, minETA, 5.0, "the ETA fell toward 0 while the table filled")
	require.Equal(t, ctCount(t, l.NetNS(lab.Node1)), after.Entries)
	require.NotEqual(t, limit, after.Limit, "the lab restored the limit")
}
