package metrics

import (
	"maps"
	"slices"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/workers"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// Rings gives the ring counters by role and the state of the eBPF fast
// path (workers.Set).
type Rings interface {
	RingStats() [flow.NumRoles]workers.RingStats
	Offload() workers.OffloadStatus
}

// Capture is the source of the rings: kernel drops and freezes by role, and
// the number of interfaces captured and waiting for a ring.
func Capture(rs Rings) prom.Source {
	return prom.SourceFunc{SourceName: "capture", Fn: func(e *prom.Emitter) error {
		st := rs.RingStats()
		for r := range flow.NumRoles {
			if r == flow.RoleReplay {
				continue
			}
			e.Counter(metricdef.CaptureDrops, float64(st[r].Drops), r.String())
			e.Counter(metricdef.CaptureFreezes, float64(st[r].QueueFreezes), r.String())
			e.Gauge(metricdef.AgentCaptureAttached, float64(st[r].Attached), r.String())
			e.Gauge(metricdef.AgentCapturePending, float64(st[r].Pending), r.String())
		}
		if off := rs.Offload(); off.Requested {
			for _, reason := range slices.Sorted(maps.Keys(off.Fallbacks)) {
				e.Counter(metricdef.CaptureOffloadFallbacks, float64(off.Fallbacks[reason]), reason)
			}
			e.Counter(metricdef.CaptureOffloadCounted, float64(off.Counted))
			e.Counter(metricdef.CaptureOffloadMapFull, float64(off.MapFull))
			e.Gauge(metricdef.CaptureOffloadFlows, float64(off.Flows))
		}
		return nil
	}}
}
