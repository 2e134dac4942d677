package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// families indexes metric families by name. The per-layer summary is
// rendered from them, so `replay`, `demo` and a scrape of a live agent all
// print exactly what the agent exports.
type families map[string]*dto.MetricFamily

func indexFamilies(mfs []*dto.MetricFamily) families {
	f := make(families, len(mfs))
	for _, mf := range mfs {
		f[mf.GetName()] = mf
	}
	return f
}

// parseExposition parses the Prometheus text format.
func parseExposition(r io.Reader) (families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	return families(m), nil
}

func labelsMatch(m *dto.Metric, match []string) bool {
	for i := 0; i+1 < len(match); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == match[i] && lp.GetValue() == match[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// sum returns the sum of the series of name whose labels match the given
// name/value pairs.
func (f families) sum(name string, match ...string) float64 {
	mf := f[name]
	if mf == nil {
		return 0
	}
	var s float64
	for _, m := range mf.GetMetric() {
		if labelsMatch(m, match) {
			s += value(m)
		}
	}
	return s
}

// n formats the sum of name's matching series, or "n/a" when the agent
// does not export name at all (never an invented zero).
func (f families) n(name string, match ...string) string {
	if f[name] == nil {
		return "n/a"
	}
	return num(f.sum(name, match...))
}

// by returns the values of name summed by one label, largest first.
func (f families) by(name, label string) []kv {
	mf := f[name]
	if mf == nil {
		return nil
	}
	acc := map[string]float64{}
	out := []kv{}
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				acc[lp.GetValue()] += value(m)
			}
		}
	}
	for k, v := range acc {
		if v != 0 {
			out = append(out, kv{k, v})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].v != out[j].v {
			return out[i].v > out[j].v
		}
		return out[i].k < out[j].k
	})
	return out
}

type kv struct {
	k string
	v float64
}

func joinKV(kvs []kv) string {
	if kvs == nil {
		return "n/a"
	}
	if len(kvs) == 0 {
		return "0"
	}
	parts := make([]string, len(kvs))
	for i, e := range kvs {
		parts[i] = fmt.Sprintf("%s %s", e.k, num(e.v))
	}
	return strings.Join(parts, ", ")
}

func num(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.1fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// quantile estimates quantile q of a histogram the way PromQL's
// histogram_quantile does (linear within a bucket). ok is false without
// observations.
func (f families) quantile(name string, q float64) (float64, bool) {
	mf := f[name]
	if mf == nil || len(mf.GetMetric()) == 0 {
		return 0, false
	}
	bounds := map[float64]float64{}
	var count float64
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		count += float64(h.GetSampleCount())
		for _, b := range h.GetBucket() {
			bounds[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
	}
	if count == 0 {
		return 0, false
	}
	ub := make([]float64, 0, len(bounds))
	for b := range bounds {
		ub = append(ub, b)
	}
	sort.Float64s(ub)
	rank := q * count
	prevB, prevC := 0.0, 0.0
	for _, b := range ub {
		c := bounds[b]
		if c >= rank {
			if c == prevC {
				return b, true
			}
			return prevB + (b-prevB)*(rank-prevC)/(c-prevC), true
		}
		prevB, prevC = b, c
	}
	return math.Inf(1), true
}

func dur(f families, name string) string {
	p50, ok := f.quantile(name, 0.5)
	if !ok {
		return "-"
	}
	p99, _ := f.quantile(name, 0.99)
	return fmt.Sprintf("p50 %s p99 %s", secs(p50), secs(p99))
}

func secs(s float64) string {
	switch {
	case math.IsInf(s, 1):
		return ">10s"
	case s < 1e-3:
		return fmt.Sprintf("%.0fµs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.1fms", s*1e3)
	case s < 60:
		return fmt.Sprintf("%.2fs", s)
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

// renderSummary writes the per-layer summary of one agent's metrics.
func renderSummary(w io.Writer, f families) {
	p := func(layer, format string, args ...any) {
		fmt.Fprintf(w, "  %-6s %s\n", layer, fmt.Sprintf(format, args...))
	}
	if _, ok := f["layerscope_l1_links_up"]; ok {
		p("L1", "links up: %s   rx/tx errors %s  drops %s  carrier changes %s",
			joinKV(f.by("layerscope_l1_links_up", "role")),
			f.n("layerscope_l1_errors_total"), f.n("layerscope_l1_drops_total"),
			f.n("layerscope_l1_carrier_changes_total"))
	}
	p("L2", "frames by role: %s   ARP: %s   VLAN-tagged %s   tunnels: %s",
		joinKV(f.by("layerscope_capture_packets_total", "role")),
		joinKV(f.by("layerscope_l2_arp_total", "op")),
		f.n("layerscope_l2_vlan_tagged_total"),
		joinKV(f.by("layerscope_l2_tunnel_packets_total", "tunnel")))
	p("L3", "packets: %s   fragments: %s   ICMP %s (frag-needed %s)",
		joinKV(f.by("layerscope_l3_packets_total", "family")),
		joinKV(f.by("layerscope_l3_fragments_total", "position")),
		f.n("layerscope_l3_icmp_total"), f.n("layerscope_l3_frag_needed_total"))
	p("L4", "%s   flags: %s   retransmits %s   handshake %s",
		joinKV(f.by("layerscope_l4_packets_total", "protocol")),
		joinKV(f.by("layerscope_l4_tcp_flags_total", "flag")),
		f.n("layerscope_l4_tcp_retransmits_total"),
		dur(f, "layerscope_l4_tcp_handshake_seconds"))
	p("", "connections ended: %s", joinKV(f.by("layerscope_l4_connections_total", "outcome")))
	p("L6", "TLS ClientHello %s   ServerHello by version: %s",
		f.n("layerscope_l6_tls_client_hellos_total"),
		joinKV(f.by("layerscope_l6_tls_handshakes_total", "version")))
	p("L7", "DNS queries %s, responses: %s, latency %s",
		f.n("layerscope_l7_dns_queries_total"),
		joinKV(f.by("layerscope_l7_dns_responses_total", "rcode")),
		dur(f, "layerscope_l7_dns_latency_seconds"))
	p("", "HTTP requests %s, responses: %s, latency %s",
		f.n("layerscope_l7_http_requests_total"),
		joinKV(f.by("layerscope_l7_http_responses_total", "status_class")),
		dur(f, "layerscope_l7_http_latency_seconds"))
	if _, ok := f["layerscope_conntrack_entries"]; ok {
		eta := "never (not growing)"
		if v := f.sum("layerscope_conntrack_exhaustion_eta_seconds"); !math.IsInf(v, 1) {
			eta = secs(v)
		}
		p("ct", "entries %s/%s (fill %.1f%%)   full in %s   drops %s   insert_failed %s   early_drop %s   events lost %s",
			f.n("layerscope_conntrack_entries"), f.n("layerscope_conntrack_entries_limit"),
			100*f.sum("layerscope_conntrack_fill_ratio"), eta,
			f.n("layerscope_conntrack_stat_drop_total"), f.n("layerscope_conntrack_stat_insert_failed_total"),
			f.n("layerscope_conntrack_stat_early_drop_total"), f.n("layerscope_conntrack_events_lost_total"))
	}
	if mf := f["layerscope_service_connections_total"]; mf != nil {
		// One line per Service port and protocol ("default/my-service:8080/tcp"),
		// its outcomes (per backend, with --service-backend-label) summed
		// over the other labels.
		lines := map[string]map[string]float64{}
		for _, m := range mf.GetMetric() {
			svc := label(m, "service") + ":" + label(m, "port") + "/" + label(m, "protocol")
			if ns := label(m, "namespace"); ns != "" {
				svc = ns + "/" + svc
			}
			if lines[svc] == nil {
				lines[svc] = map[string]float64{}
			}
			lines[svc][strings.TrimSpace(label(m, "backend")+" "+label(m, "outcome"))] += value(m)
		}
		for _, svc := range slices.Sorted(maps.Keys(lines)) {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(lines[svc])) {
				parts = append(parts, k+" "+num(lines[svc][k]))
			}
			p("svc", "%s → %s", svc, strings.Join(parts, ", "))
		}
		for _, m := range f["layerscope_service_dead_backend"].GetMetric() {
			if value(m) == 1 {
				p("svc", "DEAD BACKEND %s of %s: its last connections all failed", label(m, "backend"), label(m, "service"))
			}
		}
	}
	p("agent", "flows %s/%s (evicted %s)   ring drops %s   decode errors: %s",
		f.n("layerscope_flowtable_entries"), f.n("layerscope_flowtable_entries_limit"),
		f.n("layerscope_flowtable_evictions_total"), f.n("layerscope_capture_drops_total"),
		joinKV(f.by("layerscope_decode_errors_total", "reason")))
}
