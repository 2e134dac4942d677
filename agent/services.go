package agent

import (
	"time"

	"github.com/layerscope/layerscope/agent/conntrack"
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// onRecords joins the flows the flow table reports ended with the
// conntrack translations of their connections, tallies the DNATed ones by
// service and backend, and hands every one to the tracer. It runs on the
// flow table's sweeping goroutine.
func (a *Agent) onRecords(recs []flow.Record) {
	a.recordHistory(recs)
	w, t := a.conntrack.Load(), a.tracer.Load()
	if w == nil && t == nil {
		return
	}
	now := time.Now()
	for i := range recs {
		r := &recs[i]
		if !r.End.Final() {
			continue
		}
		var (
			tr     correlate.Translation
			joined *correlate.Conn
		)
		if w != nil {
			if nat, ok := w.Lookup(r.Key); ok {
				tr = translation(&nat)
				if c, ok := correlate.Join(r, &tr); ok {
					a.services.Add(&c, now.UnixNano())
					joined = &c
				}
			}
		}
		if t != nil {
			t.record(r, &tr, joined, now)
		}
	}
}

func translation(n *conntrack.NAT) correlate.Translation {
	return correlate.Translation{ID: n.ID, Original: n.Original.Key(), Reply: n.Reply.Key()}
}

// servicesSource exports connections per service, backend and outcome, and
// the backends that fail.
func (a *Agent) servicesSource() prom.Source {
	return prom.SourceFunc{SourceName: "services", Fn: func(e *prom.Emitter) error {
		backends, overflow := a.services.Snapshot(time.Now().UnixNano())
		for i := range backends {
			b := &backends[i]
			svc, be, proto := b.Service.String(), b.Backend.String(), flow.ProtoName(b.Proto)
			for o, v := range b.Outcomes {
				if v > 0 {
					e.Counter(metricdef.SvcConnections, float64(v), svc, be, proto, flow.Outcome(o).String())
				}
			}
			e.Gauge(metricdef.SvcFailureRatio, b.FailureRatio(), svc, be, proto)
			dead := 0.0
			if b.Dead {
				dead = 1
			}
			e.Gauge(metricdef.SvcDeadBackend, dead, svc, be, proto)
		}
		e.Counter(metricdef.SvcOverflow, float64(overflow))
		return nil
	}}
}
