package metrics

import (
	"github.com/layerscope/layerscope/agent/netstat"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
	"github.com/layerscope/layerscope/internal/nsenter"
)

// Kernel exports the namespace's own fragmentation counters
// (/proc/net/snmp, snmp6).
func Kernel(ns *nsenter.NS) prom.Source {
	return prom.SourceFunc{SourceName: "kernel", Fn: func(e *prom.Emitter) error {
		c, err := netstat.Read(ns)
		if err != nil {
			return err
		}
		v4, v6 := &c.IPv4, &c.IPv6
		e.Counter(metricdef.KReasmReqds, float64(v4.ReasmReqds), "ipv4")
		e.Counter(metricdef.KReasmOKs, float64(v4.ReasmOKs), "ipv4")
		e.Counter(metricdef.KReasmFails, float64(v4.ReasmFails), "ipv4")
		e.Counter(metricdef.KFragOKs, float64(v4.FragOKs), "ipv4")
		e.Counter(metricdef.KFragFails, float64(v4.FragFails), "ipv4")
		e.Counter(metricdef.KFragCreates, float64(v4.FragCreates), "ipv4")
		e.Counter(metricdef.KDestUnreach, float64(v4.InDestUnreachs), "ipv4", "in")
		e.Counter(metricdef.KDestUnreach, float64(v4.OutDestUnreachs), "ipv4", "out")
		if c.IPv6Present {
			e.Counter(metricdef.KReasmReqds, float64(v6.ReasmReqds), "ipv6")
			e.Counter(metricdef.KReasmOKs, float64(v6.ReasmOKs), "ipv6")
			e.Counter(metricdef.KReasmFails, float64(v6.ReasmFails), "ipv6")
			e.Counter(metricdef.KFragOKs, float64(v6.FragOKs), "ipv6")
			e.Counter(metricdef.KFragFails, float64(v6.FragFails), "ipv6")
			e.Counter(metricdef.KFragCreates, float64(v6.FragCreates), "ipv6")
			e.Counter(metricdef.KDestUnreach, float64(v6.InDestUnreachs), "ipv6", "in")
			e.Counter(metricdef.KDestUnreach, float64(v6.OutDestUnreachs), "ipv6", "out")
			e.Counter(metricdef.KPktTooBig, float64(v6.InPktTooBigs), "in")
			e.Counter(metricdef.KPktTooBig, float64(v6.OutPktTooBigs), "out")
		}
		return nil
	}}
}
