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

// ServiceOptions sets the series budget of the service metrics. The zero
// value is the default: no backend label, DefaultServiceSeries label sets.
type ServiceOptions struct {
	// Backends adds the backend and workload labels to the connection
	// counts and failure ratios (opt-in: one series per backend, churning
	// with every pod restart). Without it they are per service, and
	// layerscope_service_dead_backend lists only the dead backends.
	Backends bool
	// MaxSeries is the label sets exported before further ones are folded
	// into the service="other" series; <= 0 means DefaultServiceSeries.
	MaxSeries int
}

// svcLabels names one service (namespace, name, port, protocol).
type svcLabels struct {
	namespace, service, port, proto string
}

// backendLabels is one label set: a service and, with the backend label, a
// backend and its workload.
type backendLabels struct {
	svc               svcLabels
	backend, workload string
}

type serviceSeries struct {
	outcomes         [flow.NumOutcomes]uint64
	attempts, failed uint64
	dead             bool
}

func (s *serviceSeries) add(o *serviceSeries) {
	for i, v := range o.outcomes {
		s.outcomes[i] += v
	}
	s.attempts += o.attempts
	s.failed += o.failed
	s.dead = s.dead || o.dead
}

// Services exports connections per service (and backend, with
// opt.Backends) and outcome, and the backends that fail, named from the
// Kubernetes metadata when known.
func Services(svcs *correlate.Services, store *kube.Store, opt ServiceOptions) prom.Source {
	if opt.MaxSeries <= 0 {
		opt.MaxSeries = DefaultServiceSeries
	}
	budget := newFold[backendLabels](opt.MaxSeries)
	return prom.SourceFunc{SourceName: "services", Fn: func(e *prom.Emitter) error {
		backends, overflow := svcs.Snapshot(time.Now().UnixNano())
		series := map[backendLabels]*serviceSeries{}
		var order []backendLabels
		dead := map[backendLabels]bool{} // every backend, or only the dead ones
		var deadOrder []backendLabels
		for i := range backends {
			b := &backends[i]
			full := backendLabels{svc: svcLabels{
				service: b.Service.Addr().String(), port: strconv.Itoa(int(b.Service.Port())), proto: flow.ProtoName(b.Proto),
			}, backend: b.Backend.String()}
			if sv, ok := store.Service(b.Service, b.Proto); ok {
				full.svc.namespace, full.svc.service, full.svc.port = sv.Namespace, sv.Name, strconv.Itoa(int(sv.Port))
			}
			if p, ok := store.Pod(b.Backend.Addr()); ok {
				full.workload = p.Workload
			}
			if opt.Backends || b.Dead {
				if _, ok := dead[full]; !ok {
					deadOrder = append(deadOrder, full)
				}
				dead[full] = dead[full] || b.Dead
			}
			l := full
			if !opt.Backends {
				l.backend, l.workload = "", ""
			}
			// Two addresses of one service (a NodePort on two node IPs)
			// are one series.
			s := series[l]
			if s == nil {
				s = &serviceSeries{}
				series[l] = s
				order = append(order, l)
			}
			s.add(&serviceSeries{outcomes: b.Outcomes, attempts: b.Attempts, failed: b.Failed})
		}
		folded := budget.split(order)
		// The folded label sets are summed into one series per protocol.
		var out []backendLabels
		for _, l := range order {
			if _, ok := folded[l]; !ok {
				out = append(out, l)
				continue
			}
			o := backendLabels{svc: svcLabels{service: OtherLabel, proto: l.svc.proto}}
			s := series[o]
			if s == nil {
				s = &serviceSeries{}
				series[o] = s
				out = append(out, o)
			}
			s.add(series[l])
		}
		for _, l := range out {
			s := series[l]
			lv := []string{l.svc.namespace, l.svc.service, l.svc.port, l.svc.proto}
			if opt.Backends {
				lv = append(lv, l.backend, l.workload)
			}
			for o, v := range s.outcomes {
				if v > 0 {
					e.Counter(metricdef.SvcConnections, float64(v), withOutcome(lv, 4, flow.Outcome(o).String())...)
				}
			}
			ratio := 0.0
			if s.attempts > 0 {
				ratio = float64(s.failed) / float64(s.attempts)
			}
			e.Gauge(metricdef.SvcFailureRatio, ratio, lv...)
		}
		// Dead backends of folded label sets keep their backend under
		// service="other"; their live backends are left out.
		deadOut := map[backendLabels]bool{}
		var deadOut0 []backendLabels
		for _, l := range deadOrder {
			svcKey := l
			if !opt.Backends {
				svcKey.backend, svcKey.workload = "", ""
			}
			d := l
			if _, ok := folded[svcKey]; ok {
				if !dead[l] {
					continue
				}
				d.svc = svcLabels{service: OtherLabel, proto: l.svc.proto}
			}
			if _, ok := deadOut[d]; !ok {
				deadOut0 = append(deadOut0, d)
			}
			deadOut[d] = deadOut[d] || dead[l]
		}
		for _, l := range deadOut0 {
			v := 0.0
			if deadOut[l] {
				v = 1
			}
			e.Gauge(metricdef.SvcDeadBackend, v, l.svc.namespace, l.svc.service, l.svc.port, l.backend, l.workload, l.svc.proto)
		}
		e.Gauge(metricdef.SvcFoldedSeries, float64(len(folded)))
		e.Counter(metricdef.SvcOverflow, float64(overflow))
		return nil
	}}
}

// withOutcome returns lv with the outcome inserted at i (after the defined
// labels, before the opt-in ones).
func withOutcome(lv []string, i int, outcome string) []string {
	out := make([]string, 0, len(lv)+1)
	out = append(out, lv[:i]...)
	out = append(out, outcome)
	return append(out, lv[i:]...)
}
