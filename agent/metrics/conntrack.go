package metrics

import (
	"math"
	"sort"
	"strconv"

	"github.com/layerscope/layerscope/agent/conntrack"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// Conntrack exports the watcher's snapshot: table health against
// nf_conntrack_max, what fills the table, and the watcher's own health.
// watcher returns nil while conntrack is not watched (disabled, not open
// yet); perCPU adds the cpu label to the statistics.
func Conntrack(watcher func() *conntrack.Watcher, perCPU bool) prom.Source {
	return prom.SourceFunc{SourceName: "conntrack", Fn: func(e *prom.Emitter) error {
		w := watcher()
		if w == nil {
			return nil // disabled, or not open yet
		}
		emitConntrack(e, w.Snapshot(), perCPU)
		return nil
	}}
}

func emitConntrack(e *prom.Emitter, s conntrack.Snapshot, perCPU bool) {
	e.Gauge(metricdef.CTEntries, float64(s.Entries))
	e.Gauge(metricdef.CTLimit, float64(s.Limit))
	e.Gauge(metricdef.CTFill, s.FillRatio)
	e.Gauge(metricdef.CTGrowth, s.GrowthRate)
	eta := s.ExhaustionETA
	if math.IsNaN(eta) {
		eta = math.Inf(1)
	}
	e.Gauge(metricdef.CTETA, eta)

	stats := []struct {
		d metricdef.Def
		v func(*conntrack.CPUStats) uint64
	}{
		{metricdef.CTInsertFailed, func(c *conntrack.CPUStats) uint64 { return c.InsertFailed }},
		{metricdef.CTDrop, func(c *conntrack.CPUStats) uint64 { return c.Drop }},
		{metricdef.CTEarlyDrop, func(c *conntrack.CPUStats) uint64 { return c.EarlyDrop }},
		{metricdef.CTSearchRestart, func(c *conntrack.CPUStats) uint64 { return c.SearchRestart }},
		{metricdef.CTInvalid, func(c *conntrack.CPUStats) uint64 { return c.Invalid }},
		{metricdef.CTClashResolve, func(c *conntrack.CPUStats) uint64 { return c.ClashResolve }},
		{metricdef.CTChainTooLong, func(c *conntrack.CPUStats) uint64 { return c.ChainTooLong }},
	}
	for _, st := range stats {
		if !perCPU {
			e.Counter(st.d, float64(st.v(&s.Stats)))
			continue
		}
		for i := range s.PerCPU {
			e.Counter(st.d, float64(st.v(&s.PerCPU[i])), strconv.Itoa(s.PerCPU[i].CPU))
		}
	}

	for _, p := range sortedKeys(s.ByProtocol) {
		e.Gauge(metricdef.CTByProtocol, float64(s.ByProtocol[p]), p)
	}
	for _, st := range sortedKeys(s.ByTCPState) {
		e.Gauge(metricdef.CTByTCPState, float64(s.ByTCPState[st]), st)
	}
	e.Gauge(metricdef.CTByFlag, float64(s.Assured), "assured")
	e.Gauge(metricdef.CTByFlag, float64(s.Unreplied), "unreplied")
	e.Gauge(metricdef.CTByFlag, float64(s.NATed), "nat")
	for _, h := range s.TopSources {
		e.Gauge(metricdef.CTTopSource, float64(h.Entries), h.Addr.Addr().String())
	}
	for _, h := range s.TopServices {
		e.Gauge(metricdef.CTTopService, float64(h.Entries), h.Addr.String(), flow.ProtoName(h.Proto))
	}

	hl := &s.Health
	e.Counter(metricdef.CTEvents, float64(hl.EventsNew), "new")
	e.Counter(metricdef.CTEvents, float64(hl.EventsUpdate), "update")
	e.Counter(metricdef.CTEvents, float64(hl.EventsDestroy), "destroy")
	e.Counter(metricdef.CTEventsLost, float64(hl.EventsLost))
	e.Counter(metricdef.CTResyncs, float64(hl.Resyncs))
	e.Counter(metricdef.CTErrors, float64(hl.ResyncErrors), "dump")
	e.Counter(metricdef.CTErrors, float64(hl.Reconnects), "reconnect")
	e.Counter(metricdef.CTErrors, float64(hl.StatsErrors), "stats")
	e.Counter(metricdef.CTErrors, float64(hl.ParseErrors), "parse")
	e.Gauge(metricdef.CTDumpDuration, hl.LastDump.Seconds())
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
