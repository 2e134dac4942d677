package mtu

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTracker(t *testing.T) {
	b := podMismatch(6, "veth-pod-b", 1450, 1500, ReasonPodAboveOverlay, "vxlan0")
	a := podMismatch(5, "veth-pod-a", 1450, 1500, ReasonPodAboveOverlay, "vxlan0")
	b9000 := podMismatch(6, "veth-pod-b", 1450, 9000, ReasonPodAboveOverlay, "vxlan0")
	steps := []struct {
		name           string
		now            []Mismatch
		added, cleared []Mismatch
	}{
		{name: "nothing to start with", now: nil},
		{name: "pod-b appears", now: []Mismatch{b}, added: []Mismatch{b}},
		{name: "same again: no change", now: []Mismatch{b}},
		{name: "pod-a joins, listed out of order", now: []Mismatch{b, a}, added: []Mismatch{a}},
		{name: "pod-b's MTU changes", now: []Mismatch{a, b9000}, added: []Mismatch{b9000}, cleared: []Mismatch{b}},
		{name: "everything fixed", now: nil, cleared: []Mismatch{a, b9000}},
		{name: "still fixed", now: []Mismatch{}},
	}
	var tr Tracker
	for _, s := range steps {
		c := tr.Update(Report{Mismatches: s.now})
		require.Equal(t, s.added, c.Added, s.name)
		require.Equal(t, s.cleared, c.Cleared, s.name)
		require.Equal(t, len(s.added)+len(s.cleared) == 0, c.Empty(), s.name)
		require.ElementsMatch(t, s.now, tr.Current(), s.name)
	}
}

// Updates from several goroutines see each change exactly once.
func TestTrackerConcurrent(t *testing.T) {
	m := podMismatch(6, "veth-pod-b", 1450, 1500, ReasonPodAboveOverlay, "vxlan0")
	var (
		tr            Tracker
		mu            sync.Mutex
		added, clears int
		wg            sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			c := tr.Update(Report{Mismatches: []Mismatch{m}})
			mu.Lock()
			added += len(c.Added)
			clears += len(c.Cleared)
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Equal(t, 1, added)
	require.Zero(t, clears)
}
