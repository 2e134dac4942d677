package prom

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/layerscope/layerscope/exporters/metricdef"
)

// Source is one named producer of metrics, read at scrape time. Collect must
// not block for long: it reads aggregates that the agent keeps up to date.
// A Source that fails returns an error; the others are still collected.
type Source interface {
	Name() string
	Collect(e *Emitter) error
}

// SourceFunc adapts a function to a Source.
type SourceFunc struct {
	SourceName string
	Fn         func(e *Emitter) error
}

// Name returns the source's name.
func (s SourceFunc) Name() string { return s.SourceName }

// Collect calls the function.
func (s SourceFunc) Collect(e *Emitter) error { return s.Fn(e) }

type descKey struct {
	name string
	opt  bool // with the opt-in labels
}

var (
	descOnce sync.Once
	descs    map[descKey]*prometheus.Desc
)

// desc returns the descriptor of d for labels label values: the defined
// labels, or those followed by the opt-in labels.
func desc(d metricdef.Def, labels int) *prometheus.Desc {
	descOnce.Do(func() {
		descs = make(map[descKey]*prometheus.Desc)
		for _, m := range metricdef.All() {
			descs[descKey{m.Name, false}] = prometheus.NewDesc(m.Name, m.Help, m.Labels, nil)
			if len(m.OptLabels) > 0 {
				all := append(append([]string(nil), m.Labels...), m.OptLabels...)
				descs[descKey{m.Name, true}] = prometheus.NewDesc(m.Name, m.Help, all, nil)
			}
		}
	})
	opt := labels > len(d.Labels) && len(d.OptLabels) > 0
	if dd, ok := descs[descKey{d.Name, opt}]; ok {
		return dd
	}
	return prometheus.NewInvalidDesc(fmt.Errorf("metric %s is not in metricdef.All", d.Name))
}

// Emitter turns values into Prometheus metrics for one scrape. It checks
// the label count against the metric's definition.
type Emitter struct {
	ch  chan<- prometheus.Metric
	err error
}

func (e *Emitter) emit(d metricdef.Def, vt prometheus.ValueType, v float64, lv []string) {
	m, err := prometheus.NewConstMetric(desc(d, len(lv)), vt, v, lv...)
	if err != nil {
		e.err = errors.Join(e.err, fmt.Errorf("%s: %w", d.Name, err))
		return
	}
	e.ch <- m
}

// Counter emits a counter value.
func (e *Emitter) Counter(d metricdef.Def, v float64, labelValues ...string) {
	e.emit(d, prometheus.CounterValue, v, labelValues)
}

// Gauge emits a gauge value (also used for Info metrics, with v = 1).
func (e *Emitter) Gauge(d metricdef.Def, v float64, labelValues ...string) {
	e.emit(d, prometheus.GaugeValue, v, labelValues)
}

// Histogram emits a histogram from cumulative-free per-bucket counts: counts[i]
// is the number of observations in (bounds[i-1], bounds[i]], and
// counts[len(bounds)] the number above the last bound.
func (e *Emitter) Histogram(d metricdef.Def, bounds []float64, counts []uint64, sum float64, labelValues ...string) {
	if len(counts) != len(bounds)+1 {
		e.err = errors.Join(e.err, fmt.Errorf("%s: %d counts for %d bounds", d.Name, len(counts), len(bounds)))
		return
	}
	cum := make(map[float64]uint64, len(bounds))
	var total uint64
	for i, b := range bounds {
		total += counts[i]
		cum[b] = total
	}
	total += counts[len(bounds)]
	m, err := prometheus.NewConstHistogram(desc(d, len(labelValues)), total, sum, cum, labelValues...)
	if err != nil {
		e.err = errors.Join(e.err, fmt.Errorf("%s: %w", d.Name, err))
		return
	}
	e.ch <- m
}

// Collector is a prometheus.Collector over a set of Sources. For each source
// it reports the time the source took and whether it succeeded.
type Collector struct {
	sources []Source
	logger  *slog.Logger
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector over sources. Source names must be unique.
func NewCollector(logger *slog.Logger, sources ...Source) (*Collector, error) {
	seen := map[string]bool{}
	for _, s := range sources {
		if seen[s.Name()] {
			return nil, fmt.Errorf("duplicate metrics source %q", s.Name())
		}
		seen[s.Name()] = true
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Collector{sources: sources, logger: logger.With("component", "prom")}, nil
}

// Describe sends no descriptor: the collector is unchecked, because
// opt-in labels change a metric's label set with the configuration. The
// metric table (metricdef) and its tests keep names and labels consistent.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect reads every source concurrently.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for _, s := range c.sources {
		wg.Go(func() {
			start := time.Now()
			e := &Emitter{ch: ch}
			err := errors.Join(s.Collect(e), e.err)
			ok := 1.0
			if err != nil {
				ok = 0
				c.logger.Error("metrics source failed", "source", s.Name(), "err", err)
			}
			(&Emitter{ch: ch}).Gauge(metricdef.ScrapeDuration, time.Since(start).Seconds(), s.Name())
			(&Emitter{ch: ch}).Gauge(metricdef.ScrapeSuccess, ok, s.Name())
		})
	}
	wg.Wait()
}

// BuildInfo returns a source of layerscope_build_info.
func BuildInfo(version, revision string) Source {
	return SourceFunc{SourceName: "build", Fn: func(e *Emitter) error {
		e.Gauge(metricdef.BuildInfo, 1, version, revision, runtime.Version())
		return nil
	}}
}

// NewRegistry returns a registry with the Go and process collectors and c.
func NewRegistry(c *Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	if err := reg.Register(collectorsGo()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectorsProcess()); err != nil {
		return nil, err
	}
	return reg, nil
}
