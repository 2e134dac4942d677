package metrics

import (
	"sync"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
	"github.com/layerscope/layerscope/internal/nsenter"
)

// l1Counters are the kernel counters of layer 1 summed by role.
type l1Counters struct {
	carrier     uint64
	errs, drops [2]uint64 // rx, tx
}

func (c *l1Counters) add(o *l1Counters) {
	c.carrier += o.carrier
	for i := range 2 {
		c.errs[i] += o.errs[i]
		c.drops[i] += o.drops[i]
	}
}

type linkSeen struct {
	role flow.Role
	c    l1Counters
}

// linkTotals keeps the layer-1 sums monotonic while interfaces come and go:
// the last counters of an interface that disappeared (or changed role) stay
// in the sum of its role.
type linkTotals struct {
	ns      *nsenter.NS
	mu      sync.Mutex
	last    map[int]linkSeen
	retired [flow.NumRoles]l1Counters
}

// Links is the source of layer 1: it reads the kernel counters of the
// namespace's interfaces at scrape time (counters change without a link
// event, so they are read, not taken from the link watch) and sums them by
// role.
func Links(ns *nsenter.NS) prom.Source {
	t := &linkTotals{ns: ns, last: map[int]linkSeen{}}
	return prom.SourceFunc{SourceName: "links", Fn: t.collect}
}

func (t *linkTotals) collect(e *prom.Emitter) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	ls, err := links.List(links.Config{NetNS: t.ns})
	if err != nil {
		return err
	}
	var (
		byKind [links.NumKinds][flow.NumRoles]int
		up     [flow.NumRoles]int
		sums   [flow.NumRoles]l1Counters
	)
	now := make(map[int]linkSeen, len(ls))
	for _, l := range ls {
		r := min(l.Role, flow.NumRoles-1)
		byKind[min(l.Kind, links.NumKinds-1)][r]++
		if l.OperState == links.OperUp || (l.Up && l.Carrier) {
			up[r]++
		}
		now[l.Index] = linkSeen{role: r, c: l1Counters{
			carrier: uint64(l.Stats.CarrierChanges),
			errs:    [2]uint64{l.Stats.RxErrors, l.Stats.TxErrors},
			drops:   [2]uint64{l.Stats.RxDropped, l.Stats.TxDropped},
		}}
	}
	for idx, old := range t.last {
		if cur, ok := now[idx]; !ok || cur.role != old.role {
			t.retired[old.role].add(&old.c)
		}
	}
	t.last = now
	sums = t.retired
	for _, s := range now {
		sums[s.role].add(&s.c)
	}
	for k := range links.NumKinds {
		for r := range flow.NumRoles {
			if byKind[k][r] > 0 {
				e.Gauge(metricdef.AgentInterfaces, float64(byKind[k][r]), k.String(), r.String())
			}
		}
	}
	for r := range flow.NumRoles {
		if r == flow.RoleReplay {
			continue
		}
		role, s := r.String(), &sums[r]
		e.Gauge(metricdef.L1LinkUp, float64(up[r]), role)
		e.Counter(metricdef.L1CarrierChanges, float64(s.carrier), role)
		e.Counter(metricdef.L1Errors, float64(s.errs[0]), role, "rx")
		e.Counter(metricdef.L1Errors, float64(s.errs[1]), role, "tx")
		e.Counter(metricdef.L1Drops, float64(s.drops[0]), role, "rx")
		e.Counter(metricdef.L1Drops, float64(s.drops[1]), role, "tx")
	}
	return nil
}
