package metricdef

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var (
	nameRE  = regexp.MustCompile(`^layerscope_[a-z0-9]+(_[a-z0-9]+)+$`)
	labelRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

func TestNamingConventions(t *testing.T) {
	seen := map[string]bool{}
	otel := map[string]bool{}
	for _, d := range All() {
		t.Run(d.Name, func(t *testing.T) {
			if !nameRE.MatchString(d.Name) {
				t.Errorf("name %q does not match %s", d.Name, nameRE)
			}
			if seen[d.Name] {
				t.Errorf("duplicate name")
			}
			seen[d.Name] = true
			if d.Subsystem == "" && d.Name != Namespace+"_build_info" {
				t.Errorf("only %s_build_info may have no subsystem", Namespace)
			}
			if d.Subsystem != "" && !strings.HasPrefix(d.Name, Namespace+"_"+d.Subsystem+"_") {
				t.Errorf("name does not start with %s_%s_", Namespace, d.Subsystem)
			}
			if isCounter := d.Type == Counter; isCounter != strings.HasSuffix(d.Name, "_total") {
				t.Errorf("type %v: counters, and only counters, end in _total", d.Type)
			}
			switch d.Unit {
			case "", "ratio":
			case "seconds", "bytes":
				if !strings.Contains(d.Name, "_"+d.Unit) {
					t.Errorf("unit %q missing from the name", d.Unit)
				}
			default:
				t.Errorf("unit %q: only seconds and bytes are base units", d.Unit)
			}
			for _, bad := range []string{"_ms", "_milliseconds", "_kb", "_count"} {
				if strings.Contains(d.Name+"_", bad+"_") {
					t.Errorf("name contains the word %q", bad)
				}
			}
			if d.Help == "" || strings.HasSuffix(d.Help, ".") {
				t.Errorf("help %q must be a sentence without a trailing period", d.Help)
			}
			for _, l := range append(append([]string(nil), d.Labels...), d.OptLabels...) {
				if !labelRE.MatchString(l) || l == "le" || l == "quantile" {
					t.Errorf("bad label %q", l)
				}
			}
			if (d.Type == Histogram) != (len(d.Buckets) > 0) {
				t.Errorf("histograms, and only histograms, have buckets")
			}
			o := d.OTelName()
			if otel[o] || strings.Contains(o, "_total") {
				t.Errorf("OTel name %q duplicate or malformed", o)
			}
			otel[o] = true
		})
	}
}

func TestOTelName(t *testing.T) {
	for _, tt := range []struct {
		d    Def
		want string
	}{
		{Def{Name: "layerscope_capture_packets_total", Subsystem: "capture"}, "layerscope.capture.packets"},
		{Def{Name: "layerscope_l7_dns_latency_seconds", Subsystem: "l7", Unit: "seconds"}, "layerscope.l7.dns_latency"},
		{Def{Name: "layerscope_conntrack_fill_ratio", Subsystem: "conntrack", Unit: "ratio"}, "layerscope.conntrack.fill_ratio"},
	} {
		if got := tt.d.OTelName(); got != tt.want {
			t.Errorf("%s: OTelName() = %q, want %q", tt.d.Name, got, tt.want)
		}
	}
}

var update = flag.Bool("update", false, "rewrite the README's metric reference")

// TestREADMEMetricReference keeps the README's metric reference equal to the
// table; `make docs` regenerates it.
func TestREADMEMetricReference(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	want, err := ReplaceSection(string(b))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if *update {
		if err := os.WriteFile("../../README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		b = []byte(want)
	}
	if want != string(b) {
		t.Errorf("README.md metric reference is stale: run make docs")
	}
	for _, d := range All() {
		if !strings.Contains(string(b), "`"+d.Name+"`") {
			t.Errorf("README.md does not list `%s`", d.Name)
		}
	}
}
