package metrics

import (
	"strconv"

	"github.com/layerscope/layerscope/agent/mtu"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// MTU exports the last result of the MTU check, which the agent's path
// ticker runs (at once when a link changes, else every second).
func MTU(m *mtu.Monitor) prom.Source {
	return prom.SourceFunc{SourceName: "mtu", Fn: func(e *prom.Emitter) error {
		r := m.Last()
		for _, x := range r.Mismatches {
			e.Gauge(metricdef.MTUMismatch, 1, x.Interface, strconv.Itoa(x.Expected), strconv.Itoa(x.Actual), x.Reason.String())
		}
		e.Gauge(metricdef.MTUMismatches, float64(len(r.Mismatches)))
		for _, o := range r.Overlays {
			e.Gauge(metricdef.MTUOverlayExpected, float64(o.Expected), o.Interface)
		}
		return nil
	}}
}
