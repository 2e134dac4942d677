// Package workloads tallies the ended connections of this node's pods by
// Kubernetes workload, side, protocol and outcome: a correlate.Sink fed by
// the agent's fan-out, read by the metrics package's workloads source.
//
// # Counting each end once
//
// A DNATed connection is seen in two views with different keys: its client
// is counted from the view before DNAT (the client's address as it sent),
// its backend from the view after (the backend's address), so each end
// counts once. A connection that was not DNATed is counted at both ends
// from its one view. Only addresses of this node's pods (kube.Store's
// LocalPod) are counted.
//
// # Bounds
//
// The tally holds at most Max series; beyond, new series are counted in
// Overflow. Series of pods (with PodNames) or workloads the metadata no
// longer lists are dropped by Range.
//
// # Concurrency
//
// Consume runs on the flow table's sweeping goroutine, Range on scrapes;
// one mutex guards the tally.
package workloads

import (
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/kube"
)

// DefaultMax bounds a tally's series.
const DefaultMax = 4096

// Side of a connection a pod was on.
type Side uint8

// Sides.
const (
	Client Side = iota
	Server
)

var sideNames = [2]string{"client", "server"}

func (s Side) String() string { return sideNames[s&1] }

// Key is one series of the tally.
type Key struct {
	Namespace, Workload, Pod string // Pod only with PodNames
	Side                     Side
	Proto                    uint8
}

// Tally counts ended connections of this node's pods by workload.
type Tally struct {
	store    *kube.Store
	podNames bool
	max      int

	mu       sync.Mutex
	m        map[Key]*[flow.NumOutcomes]uint64
	overflow uint64
}

// New returns a tally naming pods from store; podNames adds the pod to each
// key (one series per pod); max <= 0 means DefaultMax.
func New(store *kube.Store, podNames bool, max int) *Tally {
	if max <= 0 {
		max = DefaultMax
	}
	return &Tally{store: store, podNames: podNames, max: max, m: map[Key]*[flow.NumOutcomes]uint64{}}
}

// PodNames reports whether keys carry the pod.
func (t *Tally) PodNames() bool { return t.podNames }

// Consume tallies an ended flow for the pods of this node at its ends (a
// correlate.Sink).
func (t *Tally) Consume(e *correlate.Enriched, _ time.Time) {
	store := t.store
	if !store.Synced() {
		return
	}
	r := e.Record
	client, server := r.Key.Src, r.Key.Dst
	if e.Conn != nil {
		client, server = netip.Addr{}, netip.Addr{}
		switch e.Conn.View {
		case correlate.ViewPre:
			client = e.NAT.Original.Src
		case correlate.ViewPost:
			server = e.Conn.Backend.Addr()
		}
	}
	for side, addr := range [2]netip.Addr{client, server} {
		if !addr.IsValid() {
			continue
		}
		if p, ok := store.LocalPod(addr); ok {
			k := Key{Namespace: p.Namespace, Workload: p.Workload, Side: Side(side), Proto: r.Key.Proto}
			if t.podNames {
				k.Pod = p.Name
			}
			t.add(k, r.Outcome)
		}
	}
}

func (t *Tally) add(k Key, o flow.Outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.m[k]
	if c == nil {
		if len(t.m) >= t.max {
			t.overflow++
			return
		}
		c = new([flow.NumOutcomes]uint64)
		t.m[k] = c
	}
	c[min(o, flow.NumOutcomes-1)]++
}

// Range drops the series of pods and workloads the metadata no longer
// lists (once it is synced), then calls fn for each series in key order
// with its counts by outcome, and returns the series refused for the bound.
func (t *Tally) Range(fn func(k Key, outcomes *[flow.NumOutcomes]uint64)) (overflow uint64) {
	store := t.store
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]Key, 0, len(t.m))
	for k := range t.m {
		gone := !store.HasWorkload(k.Namespace, k.Workload)
		if k.Pod != "" {
			gone = !store.HasPod(k.Namespace, k.Pod)
		}
		if gone && store.Synced() {
			delete(t.m, k)
			continue
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Workload != b.Workload {
			return a.Workload < b.Workload
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		if a.Side != b.Side {
			return a.Side < b.Side
		}
		return a.Proto < b.Proto
	})
	for _, k := range keys {
		fn(k, t.m[k])
	}
	return t.overflow
}
