package metrics

import (
	"github.com/layerscope/layerscope/agent/netstat"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
	"github.com/layerscope/layerscope/internal/nsenter"
)

// fragCounters are the reassembly, fragmentation and destination
// unreachable counters one address family reports.
type fragCounters struct {
	family                           string
	reasmReqds, reasmOKs, reasmFails uint64
	fragOKs, fragFails, fragCreates  uint64
	inDestUnreachs, outDestUnreachs  uint64
}

// Kernel exports the namespace's own fragmentation counters
// (/proc/net/snmp, snmp6).
func Kernel(ns *nsenter.NS) prom.Source {
	return prom.SourceFunc{SourceName: "kernel", Fn: func(e *prom.Emitter) error {
		c, err := netstat.Read(ns)
		if err != nil {
			return err
		}
		v4, v6 := &c.IPv4, &c.IPv6
		fams := []fragCounters{{"ipv4", v4.ReasmReqds, v4.ReasmOKs, v4.ReasmFails, v4.FragOKs, v4.FragFails, v4.FragCreates, v4.InDestUnreachs, v4.OutDestUnreachs}}
		if c.IPv6Present {
			fams = append(fams, fragCounters{"ipv6", v6.ReasmReqds, v6.ReasmOKs, v6.ReasmFails, v6.FragOKs, v6.FragFails, v6.FragCreates, v6.InDestUnreachs, v6.OutDestUnreachs})
		}
		for _, f := range fams {
			e.Counter(metricdef.KReasmReqds, float64(f.reasmReqds), f.family)
			e.Counter(metricdef.KReasmOKs, float64(f.reasmOKs), f.family)
			e.Counter(metricdef.KReasmFails, float64(f.reasmFails), f.family)
			e.Counter(metricdef.KFragOKs, float64(f.fragOKs), f.family)
			e.Counter(metricdef.KFragFails, float64(f.fragFails), f.family)
			e.Counter(metricdef.KFragCreates, float64(f.fragCreates), f.family)
			e.Counter(metricdef.KDestUnreach, float64(f.inDestUnreachs), f.family, "in")
			e.Counter(metricdef.KDestUnreach, float64(f.outDestUnreachs), f.family, "out")
		}
		if c.IPv6Present {
			e.Counter(metricdef.KPktTooBig, float64(v6.InPktTooBigs), "in")
			e.Counter(metricdef.KPktTooBig, float64(v6.OutPktTooBigs), "out")
		}
		return nil
	}}
}
