package metrics

import (
	"github.com/layerscope/layerscope/agent/history"
	"github.com/layerscope/layerscope/agent/server"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// HTTP is what the API source reads of the HTTP handlers (web.Handlers)
// and of the server (server.Server).
type HTTP interface {
	FollowersDropped() uint64
	Rejected() []server.Rejection
	Listeners() []server.Stats
}

// API exports the history's and the followers' accounting, the requests
// refused for a limit and the connections of each listener.
func API(ring *history.Ring, h HTTP) prom.Source {
	return prom.SourceFunc{SourceName: "api", Fn: func(e *prom.Emitter) error {
		s := ring.Stats()
		e.Gauge(metricdef.APIHistoryEntries, float64(s.Len))
		e.Gauge(metricdef.APIHistoryCapacity, float64(s.Size))
		for k := range history.NumKinds {
			e.Counter(metricdef.APIHistoryEvents, float64(s.Added[k]), k.String())
		}
		e.Counter(metricdef.APIHistoryOverwritten, float64(s.Overwritten))
		e.Gauge(metricdef.APIFollowers, float64(s.Subscribers))
		e.Counter(metricdef.APIFollowLost, float64(s.FollowerLost))
		e.Counter(metricdef.APIFollowersDropped, float64(h.FollowersDropped()))
		for _, r := range h.Rejected() {
			e.Counter(metricdef.APIRequestsRejected, float64(r.N), r.Kind)
		}
		for _, st := range h.Listeners() {
			e.Gauge(metricdef.HTTPConnections, float64(st.Open), st.Listener)
			e.Counter(metricdef.HTTPConnectionsClosed, float64(st.Evicted), st.Listener, "evicted")
			e.Counter(metricdef.HTTPConnectionsClosed, float64(st.Refused), st.Listener, "refused")
			if st.Listener == "socket" {
				e.Counter(metricdef.HTTPConnectionsClosed, float64(st.PeerRefused), st.Listener, "peer")
			}
		}
		return nil
	}}
}
