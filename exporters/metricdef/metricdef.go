package metricdef

import (
	"strings"
)

// Namespace prefixes every Prometheus metric name.
const Namespace = "layerscope"

// Type is the kind of a metric.
type Type uint8

// Metric types.
const (
	Counter Type = iota
	Gauge
	Histogram
	Info // a gauge of constant 1 whose labels carry the information
)

// String returns the Prometheus type name.
func (t Type) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge, Info:
		return "gauge"
	case Histogram:
		return "histogram"
	}
	return "untyped"
}

// Def describes one metric. Name is the full Prometheus name; the
// OpenTelemetry name is derived from it (see OTelName).
type Def struct {
	Name      string   // full Prometheus name, e.g. layerscope_capture_packets_total
	Subsystem string   // component or OSI layer: capture, l2 … l7, conntrack, flowtable, agent
	Help      string   // one sentence, no trailing period
	Type      Type     // counter, gauge, histogram or info
	Unit      string   // "seconds", "bytes", "ratio" or "" (a count)
	Labels    []string // label names, in order; values come from closed sets
	// OptLabels are appended to Labels when the configuration asks for
	// them (a per-CPU split, addresses): opt-in, never on by default.
	OptLabels []string
	Buckets   []float64
}

// OTelName returns the OpenTelemetry instrument name of the metric: dotted,
// without the _total suffix or the unit, e.g. layerscope.capture.packets.
func (d Def) OTelName() string {
	n := strings.TrimSuffix(d.Name, "_total")
	if d.Unit != "" && d.Unit != "ratio" {
		n = strings.TrimSuffix(n, "_"+d.Unit)
	}
	rest := strings.TrimPrefix(n, Namespace+"_")
	sub := d.Subsystem
	if after, ok := strings.CutPrefix(rest, sub+"_"); ok {
		return Namespace + "." + sub + "." + after
	}
	return Namespace + "." + rest
}

// OTelUnit returns the UCUM unit of the metric for OpenTelemetry.
func (d Def) OTelUnit() string {
	switch d.Unit {
	case "seconds":
		return "s"
	case "bytes":
		return "By"
	case "ratio":
		return "1"
	}
	return "{" + strings.TrimSuffix(d.Subsystem, "s") + "}"
}

// Latency buckets in seconds, from 25 µs to 10 s: wide enough for an RTT
// between two pods of one node and for a DNS timeout. The flow table keeps
// its histograms with the same bounds (a test checks they agree).
var latencyBuckets = []float64{
	0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// LatencyBuckets returns the shared latency bucket upper bounds, in seconds.
// The slice is a copy.
func LatencyBuckets() []float64 { return append([]float64(nil), latencyBuckets...) }
