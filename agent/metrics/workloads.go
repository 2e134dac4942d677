package metrics

import (
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/agent/workloads"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// Workloads exports the workload tally. Series of pods (with
// --k8s-pod-names) or workloads that no longer exist are dropped.
func Workloads(t *workloads.Tally, store *kube.Store) prom.Source {
	return prom.SourceFunc{SourceName: "workloads", Fn: func(e *prom.Emitter) error {
		if store.Mode() == kube.ModeOff {
			return nil
		}
		overflow := t.Range(func(k workloads.Key, outcomes *[flow.NumOutcomes]uint64) {
			for o, v := range outcomes {
				if v == 0 {
					continue
				}
				if t.PodNames() {
					e.Counter(metricdef.WorkloadConnections, float64(v), k.Namespace, k.Workload, k.Side.String(), flow.ProtoName(k.Proto), flow.Outcome(o).String(), k.Pod)
				} else {
					e.Counter(metricdef.WorkloadConnections, float64(v), k.Namespace, k.Workload, k.Side.String(), flow.ProtoName(k.Proto), flow.Outcome(o).String())
				}
			}
		})
		e.Counter(metricdef.WorkloadOverflow, float64(overflow))
		return nil
	}}
}
