package metrics

import (
	"github.com/layerscope/layerscope/agent/policy"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// Policy exports the connections NetworkPolicies denied (nil d: none
// counted, nothing exported).
func Policy(d *policy.Denied) prom.Source {
	return prom.SourceFunc{SourceName: "policy", Fn: func(e *prom.Emitter) error {
		if d == nil {
			return nil
		}
		for _, c := range d.Snapshot() {
			if d.ByPod {
				e.Counter(metricdef.PolicyDenied, float64(c.Connections), c.Namespace, c.Policy, string(c.Direction), c.Pod)
			} else {
				e.Counter(metricdef.PolicyDenied, float64(c.Connections), c.Namespace, c.Policy, string(c.Direction))
			}
		}
		return nil
	}}
}
