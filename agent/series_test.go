package agent

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/layerscope/layerscope/lab"
)

// TestSeriesPerNodeFixedPart counts the series a default agent exports
// once the lab's service, DNS, HTTP and TLS scenarios ran through it: the
// part of a node's series that does not grow with the cluster (the
// service, workload and kube families, which do, are measured at scale by
// agent/metrics.TestSeriesPerNodeAtScale).
func TestSeriesPerNodeFixedPart(t *testing.T) {
	l := newLab(t)
	a, err := New(Config{NetNS: l.NetNS(lab.Node1), MetricsAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, sc := range []string{lab.ScenarioService, lab.ScenarioDNS, lab.ScenarioHTTP, lab.ScenarioTLS} {
		if _, err := l.Traffic(ctx, sc, lab.TrafficOptions{}); err != nil {
			t.Fatalf("%s scenario: %v", sc, err)
		}
	}
	time.Sleep(3 * time.Second) // closed flows end and are tallied
	body := scrapeAgent(t, a)
	byFamily := map[string]int{}
	fixed, scaled := 0, 0
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && strings.Contains(body, "# TYPE "+base+" histogram") {
				name = base
			}
		}
		byFamily[name]++
		if strings.HasPrefix(name, "layerscope_service_") || strings.HasPrefix(name, "layerscope_workload_") || strings.HasPrefix(name, "layerscope_kube_") {
			scaled++
		} else {
			fixed++
		}
	}
	names := make([]string, 0, len(byFamily))
	for n := range byFamily {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return byFamily[names[i]] > byFamily[names[j]] })
	for _, n := range names[:min(15, len(names))] {
		t.Logf("  %5d %s", byFamily[n], n)
	}
	t.Logf("series of a default agent: %d that do not grow with the cluster, %d service/workload/kube, %d families", fixed, scaled, len(byFamily))
	if fixed == 0 {
		t.Fatal("no series scraped")
	}
	// With the 522 of the scale-dependent families at 10,000 Services the
	// default stays under 2,000 per node.
	if fixed > 1400 {
		t.Errorf("%d fixed series per node, want at most 1,400", fixed)
	}
}
