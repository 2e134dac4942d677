package metrics

import (
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/otlp"
	"github.com/layerscope/layerscope/exporters/prom"
)

// OTLP exports the trace exporter's own accounting; exporter returns nil
// while traces are off (or not open yet).
func OTLP(exporter func() *otlp.Exporter) prom.Source {
	return prom.SourceFunc{SourceName: "otlp", Fn: func(e *prom.Emitter) error {
		x := exporter()
		if x == nil {
			return nil
		}
		s := x.Stats()
		e.Counter(metricdef.OTLPSpansExported, float64(s.SpansExported))
		e.Counter(metricdef.OTLPSpansDropped, float64(s.SpansDropped))
		e.Counter(metricdef.OTLPExportErrors, float64(s.ExportErrors))
		e.Counter(metricdef.OTLPConnections, float64(s.Conns-s.SampledOut-s.Dropped), "exported")
		e.Counter(metricdef.OTLPConnections, float64(s.SampledOut), "sampled_out")
		e.Counter(metricdef.OTLPConnections, float64(s.Dropped), "dropped")
		e.Counter(metricdef.OTLPForced, float64(s.Forced))
		e.Gauge(metricdef.OTLPQueue, float64(s.Queued))
		return nil
	}}
}
