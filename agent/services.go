package agent

import (
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/layerscope/layerscope/agent/conntrack"
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/otlp"
	"github.com/layerscope/layerscope/exporters/prom"
)

// KubeConfig says where the agent's Kubernetes metadata comes from. The
// zero value is kube.ModeAuto: a metadata file when File is set, the API
// when the agent runs in a pod, else none.
type KubeConfig struct {
	// Mode is auto, api, file or off; "" means auto.
	Mode kube.Mode
	// File is the static metadata file (Pods, Services, EndpointSlices as
	// `kubectl get -o yaml` prints them).
	File string
	// Kubeconfig is a kubeconfig file for the API; empty means the
	// in-cluster service account.
	Kubeconfig string
	// PodNames adds the pod label to the workload metrics (opt-in: one
	// series per pod).
	PodNames bool
	// ReloadInterval is how often a metadata file is checked for changes;
	// zero means kube.DefaultReloadInterval.
	ReloadInterval time.Duration
}

// node is this node's name: Config.Node, else the traces' node name.
func (c *Config) node() string {
	if c.Node != "" {
		return c.Node
	}
	return c.Traces.Node
}

func (a *Agent) openKube() error {
	src, err := kube.Open(kube.Config{
		Mode: a.cfg.Kube.Mode, File: a.cfg.Kube.File, Kubeconfig: a.cfg.Kube.Kubeconfig,
		Node: a.cfg.node(), ReloadInterval: a.cfg.Kube.ReloadInterval, Logger: a.cfg.Logger,
	})
	if err != nil {
		return err
	}
	a.kube = src
	a.workloads = newWorkloadTally(maxWorkloadSeries)
	return nil
}

// onRecords joins the flows the flow table reports ended with the
// conntrack translations of their connections, tallies the DNATed ones by
// service and backend and the pods' ones by workload, and hands every one
// to the tracer. It runs on the flow table's sweeping goroutine.
func (a *Agent) onRecords(recs []flow.Record) {
	a.recordHistory(recs)
	w, t := a.conntrack.Load(), a.tracer.Load()
	store := a.kube.Store()
	if w == nil && t == nil && !store.Synced() {
		return
	}
	now := time.Now()
	for i := range recs {
		r := &recs[i]
		if !r.End.Final() {
			continue
		}
		var (
			tr     correlate.Translation
			joined *correlate.Conn
		)
		if w != nil {
			if nat, ok := w.Lookup(r.Key); ok {
				tr = translation(&nat)
				if c, ok := correlate.Join(r, &tr); ok {
					a.services.Add(&c, now.UnixNano())
					joined = &c
				}
			}
		}
		a.countWorkloads(store, r, &tr, joined)
		if t != nil {
			t.record(r, &tr, joined, now)
		}
	}
}

func translation(n *conntrack.NAT) correlate.Translation {
	return correlate.Translation{ID: n.ID, Original: n.Original.Key(), Reply: n.Reply.Key()}
}

// countWorkloads tallies an ended flow for the pods of this node at its
// ends. A DNATed connection is seen in two views with different keys: its
// client is counted from the view before DNAT, its backend from the view
// after, so each end counts once.
func (a *Agent) countWorkloads(store *kube.Store, r *flow.Record, tr *correlate.Translation, joined *correlate.Conn) {
	if !store.Synced() {
		return
	}
	client, server := r.Key.Src, r.Key.Dst
	if joined != nil {
		client, server = netip.Addr{}, netip.Addr{}
		switch joined.View {
		case correlate.ViewPre:
			client = tr.Original.Src
		case correlate.ViewPost:
			server = joined.Backend.Addr()
		}
	}
	proto := r.Key.Proto
	for side, addr := range [2]netip.Addr{client, server} {
		if !addr.IsValid() {
			continue
		}
		if p, ok := store.LocalPod(addr); ok {
			k := workloadKey{ns: p.Namespace, workload: p.Workload, side: uint8(side), proto: proto}
			if a.cfg.Kube.PodNames {
				k.pod = p.Name
			}
			a.workloads.add(k, r.Outcome)
		}
	}
}

// serviceLabels are the label values of one service/backend series.
type serviceLabels struct {
	namespace, service, port, backend, workload, proto string
}

type serviceSeries struct {
	outcomes         [flow.NumOutcomes]uint64
	attempts, failed uint64
	dead             bool
}

// servicesSource exports connections per service, backend and outcome, and
// the backends that fail, named from the Kubernetes metadata when known.
func (a *Agent) servicesSource() prom.Source {
	return prom.SourceFunc{SourceName: "services", Fn: func(e *prom.Emitter) error {
		backends, overflow := a.services.Snapshot(time.Now().UnixNano())
		store := a.kube.Store()
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

// kubeSource exports the metadata store's health, the Services' ready
// endpoints and the stale DNAT entries of the conntrack table.
func (a *Agent) kubeSource() prom.Source {
	return prom.SourceFunc{SourceName: "kube", Fn: func(e *prom.Emitter) error {
		store := a.kube.Store()
		synced := 0.0
		if store.Synced() {
			synced = 1
		}
		e.Gauge(metricdef.KubeSynced, synced, string(store.Mode()))
		if store.Mode() == kube.ModeOff {
			return nil
		}
		pods, svcs, slices := store.Counts()
		e.Gauge(metricdef.KubeObjects, float64(pods), "pod")
		e.Gauge(metricdef.KubeObjects, float64(svcs), "service")
		e.Gauge(metricdef.KubeObjects, float64(slices), "endpointslice")
		if !store.Synced() {
			return nil
		}
		for _, s := range store.Endpoints() {
			e.Gauge(metricdef.SvcEndpoints, float64(s.Ready), s.Namespace, s.Name)
		}
		if w := a.conntrack.Load(); w != nil {
			for _, s := range staleEntries(w, store, maxStaleSeries) {
				e.Gauge(metricdef.SvcStaleConntrack, float64(s.entries), s.namespace, s.service, s.backend)
			}
		}
		return nil
	}}
}

// maxStaleSeries bounds the stale-entry series of one scrape.
const maxStaleSeries = 1024

type staleSeries struct {
	namespace, service, backend string
	entries                     int
}

// staleEntries counts the conntrack entries DNATed from the address of a
// known Service to a backend that is not (any longer) listed in the
// Service's EndpointSlices: one pass over the NATed entries of the table.
func staleEntries(w *conntrack.Watcher, store *kube.Store, limit int) []staleSeries {
	type key struct {
		ns, svc string
		backend netip.AddrPort
	}
	counts := map[key]int{}
	w.RangeDNAT(func(n *conntrack.NAT) bool {
		sv, ok := store.Service(netip.AddrPortFrom(n.Original.Dst, n.Original.DstPort), n.Original.Proto)
		if !ok {
			return true
		}
		be := netip.AddrPortFrom(n.Reply.Src, n.Reply.SrcPort)
		if store.IsEndpoint(sv.Namespace, sv.Name, be.Addr()) {
			return true
		}
		k := key{sv.Namespace, sv.Name, be}
		if _, ok := counts[k]; ok || len(counts) < limit {
			counts[k]++
		}
		return true
	})
	out := make([]staleSeries, 0, len(counts))
	for k, n := range counts {
		out = append(out, staleSeries{k.ns, k.svc, k.backend.String(), n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].namespace != out[j].namespace {
			return out[i].namespace < out[j].namespace
		}
		if out[i].service != out[j].service {
			return out[i].service < out[j].service
		}
		return out[i].backend < out[j].backend
	})
	return out
}

// maxWorkloadSeries bounds the workload tally.
const maxWorkloadSeries = 4096

type workloadKey struct {
	ns, workload, pod string
	side, proto       uint8
}

// workloadTally counts ended connections of this node's pods by workload,
// side, protocol and outcome.
type workloadTally struct {
	max      int
	mu       sync.Mutex
	m        map[workloadKey]*[flow.NumOutcomes]uint64
	overflow uint64
}

func newWorkloadTally(max int) *workloadTally {
	return &workloadTally{max: max, m: map[workloadKey]*[flow.NumOutcomes]uint64{}}
}

func (t *workloadTally) add(k workloadKey, o flow.Outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.m[k]
	if c == nil {
		if len(t.m) >= t.max {
			t.overflow++
			return
		}
		c = new([flow.NumOutcomes]uint64)
		t.m[k] = c
	}
	c[min(o, flow.NumOutcomes-1)]++
}

var sideNames = [2]string{"client", "server"}

// workloadSource exports the workload tally. Series of pods (with
// --k8s-pod-names) or workloads that no longer exist are dropped.
func (a *Agent) workloadSource() prom.Source {
	return prom.SourceFunc{SourceName: "workloads", Fn: func(e *prom.Emitter) error {
		store, t := a.kube.Store(), a.workloads
		if store.Mode() == kube.ModeOff {
			return nil
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		keys := make([]workloadKey, 0, len(t.m))
		for k := range t.m {
			gone := !store.HasWorkload(k.ns, k.workload)
			if k.pod != "" {
				gone = !store.HasPod(k.ns, k.pod)
			}
			if gone && store.Synced() {
				delete(t.m, k)
				continue
			}
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			a, b := keys[i], keys[j]
			if a.ns != b.ns {
				return a.ns < b.ns
			}
			if a.workload != b.workload {
				return a.workload < b.workload
			}
			if a.pod != b.pod {
				return a.pod < b.pod
			}
			if a.side != b.side {
				return a.side < b.side
			}
			return a.proto < b.proto
		})
		for _, k := range keys {
			for o, v := range t.m[k] {
				if v == 0 {
					continue
				}
				if a.cfg.Kube.PodNames {
					e.Counter(metricdef.WorkloadConnections, float64(v), k.ns, k.workload, sideNames[k.side], flow.ProtoName(k.proto), flow.Outcome(o).String(), k.pod)
				} else {
					e.Counter(metricdef.WorkloadConnections, float64(v), k.ns, k.workload, sideNames[k.side], flow.ProtoName(k.proto), flow.Outcome(o).String())
				}
			}
		}
		e.Counter(metricdef.WorkloadOverflow, float64(t.overflow))
		return nil
	}}
}

// podMeta returns the span metadata of the pod holding addr: from the
// pods the store knows, else (a backend on another node) from its
// EndpointSlice entry, without a workload.
func podMeta(store *kube.Store, addr netip.Addr) otlp.Pod {
	if p, ok := store.Pod(addr); ok {
		return otlp.Pod{Namespace: p.Namespace, Name: p.Name, WorkloadKind: p.WorkloadKind, Workload: p.Workload}
	}
	if e, ok := store.Endpoint(addr); ok && e.Pod != "" {
		return otlp.Pod{Namespace: e.Namespace, Name: e.Pod}
	}
	return otlp.Pod{}
}
