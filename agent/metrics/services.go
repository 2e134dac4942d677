package metrics

import (
	"strconv"
	"time"

	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// serviceLabels are the label values of one service/backend series.
type serviceLabels struct {
	namespace, service, port, backend, workload, proto string
}

type serviceSeries struct {
	outcomes         [flow.NumOutcomes]uint64
	attempts, failed uint64
	dead             bool
}

// Services exports connections per service, backend and outcome, and
// the backends that fail, named from the Kubernetes metadata when known.
func Services(svcs *correlate.Services, store *kube.Store) prom.Source {
	return prom.SourceFunc{SourceName: "services", Fn: func(e *prom.Emitter) error {
		backends, overflow := svcs.Snapshot(time.Now().UnixNano())
		series := map[serviceLabels]*serviceSeries{}
		var order []serviceLabels
		for i := range backends {
			b := &backends[i]
			l := serviceLabels{
				service: b.Service.Addr().String(), port: strconv.Itoa(int(b.Service.Port())),
				backend: b.Backend.String(), proto: flow.ProtoName(b.Proto),
			}
			if sv, ok := store.Service(b.Service, b.Proto); ok {
				l.namespace, l.service, l.port = sv.Namespace, sv.Name, strconv.Itoa(int(sv.Port))
			}
			if p, ok := store.Pod(b.Backend.Addr()); ok {
				l.workload = p.Workload
			}
			// Two addresses of one service (a NodePort on two node IPs)
			// are one series.
			s := series[l]
			if s == nil {
				s = &serviceSeries{}
				series[l] = s
				order = append(order, l)
			}
			for o, v := range b.Outcomes {
				s.outcomes[o] += v
			}
			s.attempts += b.Attempts
			s.failed += b.Failed
			s.dead = s.dead || b.Dead
		}
		for _, l := range order {
			s := series[l]
			for o, v := range s.outcomes {
				if v > 0 {
					e.Counter(metricdef.SvcConnections, float64(v), l.namespace, l.service, l.port, l.backend, l.workload, l.proto, flow.Outcome(o).String())
				}
			}
			ratio := 0.0
			if s.attempts > 0 {
				ratio = float64(s.failed) / float64(s.attempts)
			}
			e.Gauge(metricdef.SvcFailureRatio, ratio, l.namespace, l.service, l.port, l.backend, l.workload, l.proto)
			dead := 0.0
			if s.dead {
				dead = 1
			}
			e.Gauge(metricdef.SvcDeadBackend, dead, l.namespace, l.service, l.port, l.backend, l.workload, l.proto)
		}
		e.Counter(metricdef.SvcOverflow, float64(overflow))
		return nil
	}}
}
