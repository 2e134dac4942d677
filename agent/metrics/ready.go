package metrics

import (
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// Ready exports the agent's readiness (what /readyz answers) as 1 or 0.
func Ready(ready func() bool) prom.Source {
	return prom.SourceFunc{SourceName: "agent", Fn: func(e *prom.Emitter) error {
		v := 0.0
		if ready() {
			v = 1
		}
		e.Gauge(metricdef.AgentReady, v)
		return nil
	}}
}
