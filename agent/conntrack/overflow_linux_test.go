package conntrack

import (
	"context"
	"testing"
	"time"

	"github.com/layerscope/layerscope/lab"
	"github.com/stretchr/testify/require"
)

// holdMax keeps other labs from lowering nf_conntrack_max while a test
// makes many entries outside lab.Traffic.
func holdMax(t testing.TB) {
	t.Helper()
	release, err := lab.HoldConntrackMax(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
}

// A burst of new flows faster than a deliberately tiny event buffer can
// hold makes the kernel drop events: the Watcher counts exactly the events
// the kernel dropped, resyncs, and ends with the kernel's table.
func TestOverflowResync(t *testing.T) {
	p := newPair(t)
	p.sysctl(t, "net.netfilter.nf_conntrack_udp_timeout=300")
	w := openWatcher(t, p.clientNS, Config{ReadBuffer: 1, StatsInterval: 100 * time.Millisecond})
	fds := []int{p.udpSocket(t), p.udpSocket(t)}
	const n = 100_000
	rate := burst(t, fds, n)
	t.Logf("burst: %d new flows at %.0f/s; event socket buffer %d bytes", n, rate, w.Snapshot().Health.ReadBuffer)
	require.GreaterOrEqual(t, rate, 50_000.0, "the burst must reach the incident's rate")

	// Converged: no resync pending, and the table equals the kernel's.
	var last Snapshot
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last state: tracked %d, kernel %d, health %+v", last.Tracked, ctCount(t, p.client), last.Health)
		}
	})
	eventually(t, 20*time.Second, "convergence", func() bool {
		s := w.Snapshot()
		last = s
		return s.Health.EventsNew+s.Health.EventsLost == n && len(w.resyncReq) == 0 &&
			s.Health.LastResync.After(time.Now().Add(-10*time.Second)) && s.Tracked == n
	})
	time.Sleep(300 * time.Millisecond) // let a resync that started last finish
	require.NoError(t, w.Resync())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, w.Sample(ctx))
	s := w.Snapshot()
	h := s.Health
	t.Logf("events new=%d lost=%d overflows=%d resyncs=%d last dump %v (%d entries)",
		h.EventsNew, h.EventsLost, h.Overflows, h.Resyncs, h.LastDump, h.LastDumpEntries)
	require.Positive(t, h.Overflows)
	require.Positive(t, h.EventsLost)
	require.Greater(t, h.Resyncs, uint64(1), "an overflow resyncs")
	require.Equal(t, uint64(n), h.EventsNew+h.EventsLost, "every new flow was either applied or counted lost")
	kernel := ctCount(t, p.client)
	require.Equal(t, n, kernel)
	require.Equal(t, kernel, s.Entries)
	require.Equal(t, kernel, s.Tracked)
	require.Equal(t, n, s.Unreplied)
	require.Zero(t, h.ParseErrors)
}

// The Watcher only reads: the table is the same before and after a run
// with dumps, resyncs and stats samples.
func TestReadOnly(t *testing.T) {
	p := newPair(t)
	p.sysctl(t, "net.netfilter.nf_conntrack_udp_timeout=300")
	p.listenTCP(t, 8080)
	fd := p.udpSocket(t)
	sendFlows(t, fd, 0, 200, 0)
	p.dialTCP(t, serviceAddrPort())
	time.Sleep(100 * time.Millisecond)
	before := ctList(t, p.client)
	statsBefore := ctStats(t, p.client)
	w := openWatcher(t, p.clientNS, Config{StatsInterval: 10 * time.Millisecond})
	for range 3 {
		require.NoError(t, w.Resync())
	}
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, len(before), w.Snapshot().Tracked)
	require.NoError(t, w.Close())
	require.Equal(t, before, ctList(t, p.client))
	after := ctStats(t, p.client)
	for _, k := range []string{"insert", "insert_failed", "drop", "early_drop", "invalid", "error"} {
		require.Equal(t, statsBefore[k], after[k], k)
	}
}
