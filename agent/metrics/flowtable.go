package metrics

import (
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// httpClasses are the label values of flowtable.CodeClass slots 0..5.
var httpClasses = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// emitL7 exports the DNS and HTTP messages the flow table counted, once
// per message.
func emitL7(e *prom.Emitter, s *flowtable.Stats) {
	e.Counter(metricdef.L7DNSQueries, float64(s.Requests[flow.AppDNS]))
	var other uint64
	for code, v := range s.Responses[flow.AppDNS] {
		if code < flow.NumLabeledRcodes {
			e.Counter(metricdef.L7DNSResponses, float64(v), flow.Rcode(code).Label())
		} else {
			other += v
		}
	}
	e.Counter(metricdef.L7DNSResponses, float64(other), "other")
	e.Counter(metricdef.L7HTTPRequests, float64(s.Requests[flow.AppHTTP]))
	for class, name := range httpClasses {
		e.Counter(metricdef.L7HTTPResponses, float64(s.Responses[flow.AppHTTP][class]), name)
	}
}

// FlowTable returns the metrics source of the flow table: its size,
// churn, TCP retransmissions and the latency histograms.
func FlowTable(t *flowtable.Table) prom.Source {
	return prom.SourceFunc{SourceName: "flowtable", Fn: func(e *prom.Emitter) error {
		s := t.Stats()
		e.Gauge(metricdef.FlowEntries, float64(s.Entries))
		e.Gauge(metricdef.FlowCapacity, float64(s.Capacity))
		e.Gauge(metricdef.FlowAllocated, float64(s.Allocated))
		e.Counter(metricdef.FlowInserts, float64(s.Inserts))
		e.Counter(metricdef.FlowEvictions, float64(s.Evictions))
		e.Counter(metricdef.FlowRefused, float64(s.Refused))
		e.Counter(metricdef.FlowExpired, float64(s.Expired))
		e.Counter(metricdef.L4Retransmits, float64(s.Retransmits))
		for o, v := range s.Outcomes {
			e.Counter(metricdef.L4Connections, float64(v), flow.Outcome(o).String())
		}
		emitL7(e, &s)
		histogram(e, metricdef.L4Handshake, &s.HandshakeRTT)
		histogram(e, metricdef.L7DNSLatency, &s.DNSLatency)
		histogram(e, metricdef.L7HTTPLatency, &s.HTTPLatency)
		return nil
	}}
}

func histogram(e *prom.Emitter, d metricdef.Def, h *flowtable.Histogram) {
	e.Histogram(d, flowtable.LatencyBounds, h.Counts[:], h.Sum)
}
