package metrics

import (
	"net/netip"
	"sort"

	"github.com/layerscope/layerscope/agent/conntrack"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// Kube exports the metadata store's health, the Services' ready endpoints
// and the stale DNAT entries of the conntrack table (watcher returns nil
// while conntrack is not watched). Every agent knows every Service, so the
// ready endpoints are listed for at most maxEndpoints Services per node
// (<= 0: DefaultEndpointSeries), those without ready endpoints first, and
// the Services left out are counted.
func Kube(store *kube.Store, watcher func() *conntrack.Watcher, maxEndpoints int) prom.Source {
	if maxEndpoints <= 0 {
		maxEndpoints = DefaultEndpointSeries
	}
	return prom.SourceFunc{SourceName: "kube", Fn: func(e *prom.Emitter) error {
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
		eps := store.Endpoints()
		sort.SliceStable(eps, func(i, j int) bool { return eps[i].Ready == 0 && eps[j].Ready > 0 })
		unlisted := max(0, len(eps)-maxEndpoints)
		for _, s := range eps[:len(eps)-unlisted] {
			e.Gauge(metricdef.SvcEndpoints, float64(s.Ready), s.Namespace, s.Name)
		}
		e.Gauge(metricdef.SvcEndpointsUnlisted, float64(unlisted))
		if w := watcher(); w != nil {
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
