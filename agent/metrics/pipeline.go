package metrics

import (
	"strconv"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/pipeline"
	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

var dirNames = [pipeline.NumDirs]string{"unknown", "in", "out"}

// Pipeline returns the metrics source of the per-layer packet counters
// summed over the workers of set.
func Pipeline(set *pipeline.Set) prom.Source {
	return prom.SourceFunc{SourceName: "pipeline", Fn: func(e *prom.Emitter) error {
		emitCounters(e, set.Sum())
		return nil
	}}
}

func emitCounters(e *prom.Emitter, c *pipeline.Counters) {
	for r := range flow.NumRoles {
		for d := range pipeline.NumDirs {
			if c.Packets[r][d] == 0 && (d == 0 || r == flow.RoleReplay) {
				continue // replayed frames have no direction; live ones always do
			}
			e.Counter(metricdef.CapturePackets, float64(c.Packets[r][d]), r.String(), dirNames[d])
			e.Counter(metricdef.CaptureBytes, float64(c.Bytes[r][d]), r.String(), dirNames[d])
		}
	}
	for l := range c.DecodeErrors {
		for r, v := range c.DecodeErrors[l] {
			// Truncation can happen at every layer: those series exist
			// from the start, so rates read 0 rather than nothing.
			if v > 0 || (r == int(decoders.ReasonTruncated) && l >= int(decoders.OSIL2) && l <= int(decoders.OSIL7)) {
				e.Counter(metricdef.DecodeErrors, float64(v), pipeline.ErrLayerLabel(l), pipeline.ErrReasonLabel(r))
			}
		}
	}
	for i, v := range c.ARP {
		e.Counter(metricdef.L2ARP, float64(v), pipeline.ARPOps[i])
	}
	e.Counter(metricdef.L2VLAN, float64(c.VLANTagged))
	for i := 1; i < pipeline.NumTunnels; i++ {
		e.Counter(metricdef.L2Tunnel, float64(c.Tunnel[i]), pipeline.TunnelKinds[i])
		e.Counter(metricdef.L2TunnelBytes, float64(c.TunnelBytes[i]), pipeline.TunnelKinds[i])
	}
	for f, fam := range pipeline.Families {
		e.Counter(metricdef.L3Packets, float64(c.IP[f]), fam)
		e.Counter(metricdef.L3FragNeeded, float64(c.FragNeeded[f]), fam)
		for r := range flow.NumRoles {
			for p, pos := range pipeline.FragPositions {
				if v := c.FragRole[r][f][p]; v > 0 || r == flow.RolePod {
					e.Counter(metricdef.L3Fragments, float64(v), r.String(), fam, pos)
				}
			}
			if c.Oversize[r][f] > 0 || r == flow.RolePod {
				e.Counter(metricdef.L3Oversize, float64(c.Oversize[r][f]), r.String(), fam)
				e.Counter(metricdef.L3OversizeOffload, float64(c.OversizeOffload[r][f]), r.String(), fam)
				e.Counter(metricdef.L4MSSOverPath, float64(c.MSSOverPath[r][f]), r.String(), fam)
			}
		}
		e.Counter(metricdef.L3Reassembly, float64(c.FragCompleted[f]), fam, "completed")
		e.Counter(metricdef.L3Reassembly, float64(c.FragIncomplete[f]), fam, "incomplete")
		e.Counter(metricdef.L3Reassembly, float64(c.FragEvicted[f]), fam, "evicted")
		e.Gauge(metricdef.L3ReassemblyPending, float64(c.FragPending[f]), fam)
		e.Counter(metricdef.L3FragDuplicates, float64(c.FragDuplicates[f]), fam)
		m := &c.PMTUByMTU[f]
		for i, n := range m.Count {
			if n > 0 {
				e.Counter(metricdef.L3PMTUReports, float64(n), fam, strconv.Itoa(int(m.MTU[i])))
			}
		}
		if m.Other > 0 {
			e.Counter(metricdef.L3PMTUReports, float64(m.Other), fam, "other")
		}
		for t := range c.ICMP[f] {
			for code, v := range c.ICMP[f][t] {
				if v > 0 {
					e.Counter(metricdef.L3ICMP, float64(v), fam, strconv.Itoa(t), pipeline.ICMPCodeLabel(code))
				}
			}
		}
	}
	e.Counter(metricdef.L4Packets, float64(c.TCP), "tcp")
	e.Counter(metricdef.L4Packets, float64(c.UDP), "udp")
	for i, v := range c.TCPFlags {
		e.Counter(metricdef.L4TCPFlags, float64(v), pipeline.TCPFlagNames[i])
	}
	for i, v := range c.TLSServerHello {
		e.Counter(metricdef.L6TLSHandshakes, float64(v), pipeline.TLSVersions[i])
	}
	e.Counter(metricdef.L6TLSClientHellos, float64(c.TLSClientHello))
}
