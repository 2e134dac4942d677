package metrics

import (
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/agent/workloads"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// Workloads exports the workload tally. Series of pods (with
// --k8s-pod-names) or workloads that no longer exist are dropped. Beyond
// maxSeries label sets (<= 0: DefaultWorkloadSeries), further ones are
// summed into workload="other" by side and protocol.
func Workloads(t *workloads.Tally, store *kube.Store, maxSeries int) prom.Source {
	if maxSeries <= 0 {
		maxSeries = DefaultWorkloadSeries
	}
	budget := newFold[workloads.Key](maxSeries)
	return prom.SourceFunc{SourceName: "workloads", Fn: func(e *prom.Emitter) error {
		if store.Mode() == kube.ModeOff {
			return nil
		}
		var keys []workloads.Key
		counts := map[workloads.Key]*[flow.NumOutcomes]uint64{}
		overflow := t.Range(func(k workloads.Key, outcomes *[flow.NumOutcomes]uint64) {
			keys = append(keys, k)
			c := *outcomes
			counts[k] = &c
		})
		folded := budget.split(keys)
		var out []workloads.Key
		for _, k := range keys {
			if _, ok := folded[k]; !ok {
				out = append(out, k)
				continue
			}
			o := workloads.Key{Workload: OtherLabel, Side: k.Side, Proto: k.Proto}
			c := counts[o]
			if c == nil {
				c = new([flow.NumOutcomes]uint64)
				counts[o] = c
				out = append(out, o)
			}
			for i, v := range counts[k] {
				c[i] += v
			}
		}
		for _, k := range out {
			for o, v := range counts[k] {
				if v == 0 {
					continue
				}
				if t.PodNames() {
					e.Counter(metricdef.WorkloadConnections, float64(v), k.Namespace, k.Workload, k.Side.String(), flow.ProtoName(k.Proto), flow.Outcome(o).String(), k.Pod)
				} else {
					e.Counter(metricdef.WorkloadConnections, float64(v), k.Namespace, k.Workload, k.Side.String(), flow.ProtoName(k.Proto), flow.Outcome(o).String())
				}
			}
		}
		e.Gauge(metricdef.WorkloadFoldedSeries, float64(len(folded)))
		e.Counter(metricdef.WorkloadOverflow, float64(overflow))
		return nil
	}}
}
