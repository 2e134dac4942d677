package dashboards

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestShippedDashboardsLint lints every dashboard file of this directory.
func TestShippedDashboardsLint(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("%d dashboards, want the 6 of the package documentation", len(files))
	}
	uids := map[string]string{}
	for name, b := range files {
		if err := Lint(b, nil); err != nil {
			t.Errorf("%s:\n%v", name, err)
		}
		d, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share uid %s", name, other, d.UID)
		}
		uids[d.UID] = name
		if len(d.Queries()) == 0 {
			t.Errorf("%s: no queries", name)
		}
	}
}

// valid is a small dashboard that passes the lint; the cases below break it
// one way each.
const valid = `{
  "uid": "t", "title": "T", "schemaVersion": 41,
  "templating": {"list": [
    {"name": "datasource", "type": "datasource", "query": "prometheus"},
    {"name": "node", "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "query": {"query": "label_values(layerscope_build_info, node)"}, "includeAll": true, "allValue": ".*"},
    {"name": "namespace", "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "query": "label_values(layerscope_service_endpoints{node=~\"$node\"}, namespace)", "includeAll": true, "allValue": ".*"}
  ]},
  "panels": [
    {"id": 1, "type": "row", "title": "Row", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}, "panels": []},
    {"id": 2, "type": "timeseries", "title": "Drops", "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8},
     "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "fieldConfig": {"defaults": {"unit": "pps"}},
     "targets": [{"refId": "A", "datasource": {"type": "prometheus", "uid": "${datasource}"},
                  "expr": "sum by (node) (rate(layerscope_conntrack_stat_drop_total{node=~\"$node\"}[$__rate_interval]))"}]},
    {"id": 3, "type": "stat", "title": "Endpoints", "gridPos": {"x": 12, "y": 1, "w": 12, "h": 8},
     "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "fieldConfig": {"defaults": {"unit": "short"}},
     "targets": [{"refId": "A", "expr": "min(layerscope_service_endpoints{node=~\"${node}\",namespace=~\"$namespace\"})"},
                 {"refId": "B", "expr": "histogram_quantile(0.9, sum by (le) (rate(layerscope_l7_dns_latency_seconds_bucket{node=~\"$node\"}[$__range])))"}]}
  ]
}`

// edit decodes valid, applies f to the generic document and encodes it.
func edit(t *testing.T, f func(d map[string]any)) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(valid), &d); err != nil {
		t.Fatal(err)
	}
	f(d)
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func panelAt(d map[string]any, i int) map[string]any { return d["panels"].([]any)[i].(map[string]any) }

func targetAt(d map[string]any, p, i int) map[string]any {
	return panelAt(d, p)["targets"].([]any)[i].(map[string]any)
}

func variableAt(d map[string]any, i int) map[string]any {
	return d["templating"].(map[string]any)["list"].([]any)[i].(map[string]any)
}

func setExpr(expr string) func(map[string]any) {
	return func(d map[string]any) { targetAt(d, 1, 0)["expr"] = expr }
}

func TestLintCatches(t *testing.T) {
	if err := Lint([]byte(valid), nil); err != nil {
		t.Fatalf("the valid dashboard: %v", err)
	}
	tests := []struct {
		name string
		edit func(d map[string]any)
		want error
		msg  string // a part of the message
	}{
		{"no uid", func(d map[string]any) { delete(d, "uid") }, ErrDashboard, "uid"},
		{"long uid", func(d map[string]any) { d["uid"] = strings.Repeat("u", 41) }, ErrDashboard, "uid"},
		{"no title", func(d map[string]any) { d["title"] = " " }, ErrDashboard, "title"},
		{"old schema", func(d map[string]any) { d["schemaVersion"] = 27 }, ErrDashboard, "schemaVersion 27"},
		{"duplicate panel id", func(d map[string]any) { panelAt(d, 2)["id"] = 2 }, ErrPanelID, "also used"},
		{"no panel id", func(d map[string]any) { delete(panelAt(d, 2), "id") }, ErrPanelID, "positive"},
		{"duplicate id inside a collapsed row", func(d map[string]any) {
			panelAt(d, 0)["panels"] = []any{map[string]any{"id": 3, "type": "stat", "title": "x"}}
		}, ErrPanelID, "also used"},
		{"no gridPos", func(d map[string]any) { delete(panelAt(d, 1), "gridPos") }, ErrGridPos, "no gridPos"},
		{"beyond 24 columns", func(d map[string]any) { panelAt(d, 2)["gridPos"].(map[string]any)["w"] = 13 }, ErrGridPos, "outside"},
		{"zero height", func(d map[string]any) { panelAt(d, 2)["gridPos"].(map[string]any)["h"] = 0 }, ErrGridPos, "empty"},
		{"overlap", func(d map[string]any) { panelAt(d, 2)["gridPos"].(map[string]any)["x"] = 11 }, ErrGridPos, "overlaps"},
		{"text panel", func(d map[string]any) { panelAt(d, 2)["type"] = "text" }, ErrPanelType, "text"},
		{"fixed datasource", func(d map[string]any) {
			panelAt(d, 1)["datasource"] = map[string]any{"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
		}, ErrDatasource, "P1809F7CD0C75ACF3"},
		{"no datasource", func(d map[string]any) { delete(panelAt(d, 2), "datasource") }, ErrDatasource, "want"},
		{"target on another datasource", func(d map[string]any) { targetAt(d, 1, 0)["datasource"] = map[string]any{"uid": "loki"} }, ErrDatasource, "loki"},
		{"no unit", func(d map[string]any) { panelAt(d, 1)["fieldConfig"] = map[string]any{"defaults": map[string]any{}} }, ErrUnit, "Drops"},
		{"no fieldConfig", func(d map[string]any) { delete(panelAt(d, 2), "fieldConfig") }, ErrUnit, "Endpoints"},
		{"no targets", func(d map[string]any) { panelAt(d, 1)["targets"] = []any{} }, ErrTarget, "no targets"},
		{"duplicate refId", func(d map[string]any) { targetAt(d, 2, 1)["refId"] = "A" }, ErrTarget, "duplicate"},
		{"empty expr", setExpr(" "), ErrTarget, "no expr"},
		{"PromQL syntax", setExpr(`sum(rate(layerscope_conntrack_stat_drop_total{node=~"$node"}[$__rate_interval])`), ErrPromQL, "Drops"},
		{"rate of a gauge range missing", setExpr(`rate(layerscope_conntrack_stat_drop_total{node=~"$node"})`), ErrPromQL, "range vector"},
		{"unknown variable", setExpr(`layerscope_conntrack_entries{node=~"$node",pod=~"$pod"}`), ErrVariable, "$pod"},
		{"renamed metric", setExpr(`layerscope_conntrack_drops_total{node=~"$node"}`), ErrMetric, "layerscope_conntrack_drops_total"},
		{"metric of another exporter", setExpr(`node_nf_conntrack_entries{node=~"$node"}`), ErrMetric, "node_nf_conntrack_entries"},
		{"selector without a name", setExpr(`{node=~"$node"}`), ErrMetric, "names no metric"},
		{"no node filter", setExpr(`layerscope_conntrack_entries`), ErrFilter, "node"},
		{"node filter by equality", setExpr(`layerscope_conntrack_entries{node="$node"}`), ErrFilter, "node"},
		{"one selector of two unfiltered", setExpr(`layerscope_conntrack_entries{node=~"$node"} / layerscope_conntrack_entries_limit`), ErrFilter, "entries_limit"},
		{"no namespace filter", setExpr(`layerscope_service_dead_backend{node=~"$node"}`), ErrFilter, "namespace"},
		{"no datasource variable", func(d map[string]any) {
			l := d["templating"].(map[string]any)
			l["list"] = l["list"].([]any)[1:]
		}, ErrTemplating, "no datasource"},
		{"datasource variable of loki", func(d map[string]any) { variableAt(d, 0)["query"] = "loki" }, ErrTemplating, "loki"},
		{"no node variable", func(d map[string]any) { variableAt(d, 1)["name"] = "host" }, ErrTemplating, "no node"},
		{"node variable without All", func(d map[string]any) { variableAt(d, 1)["includeAll"] = false }, ErrTemplating, "includeAll"},
		{"node variable on a fixed datasource", func(d map[string]any) { delete(variableAt(d, 1), "datasource") }, ErrTemplating, "query variable"},
		{"namespace variable of another label", func(d map[string]any) {
			variableAt(d, 2)["query"] = `label_values(layerscope_service_endpoints, service)`
		}, ErrTemplating, "label_values"},
		{"namespace variable over a metric without namespace", func(d map[string]any) {
			variableAt(d, 2)["query"] = `label_values(layerscope_conntrack_entries, namespace)`
		}, ErrTemplating, "no namespace label"},
		{"variable over a renamed metric", func(d map[string]any) {
			variableAt(d, 1)["query"] = map[string]any{"query": "label_values(layerscope_build, node)"}
		}, ErrMetric, "layerscope_build"},
		{"duplicate variable", func(d map[string]any) {
			l := d["templating"].(map[string]any)
			l["list"] = append(l["list"].([]any), variableAt(d, 1))
		}, ErrTemplating, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Lint(edit(t, tt.edit), nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Lint = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Lint = %v, want a message naming %q", err, tt.msg)
			}
		})
	}
}

func TestLintNotJSON(t *testing.T) {
	for _, in := range []string{"", "{", `{"panels": {}}`, "[]"} {
		if err := Lint([]byte(in), nil); !errors.Is(err, ErrJSON) {
			t.Errorf("Lint(%q) = %v, want %v", in, err, ErrJSON)
		}
	}
}

// TestLintMetricTable lints the shipped dashboards against a metric table
// without one of the metrics they read: the lint must name it.
func TestLintMetricTable(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, drop := range []string{"layerscope_conntrack_fill_ratio", "layerscope_l7_dns_latency_seconds_bucket", "layerscope_service_endpoints"} {
		m := KnownMetrics()
		delete(m, drop)
		found := false
		for _, b := range files {
			if err := Lint(b, &LintConfig{Metrics: m}); err != nil {
				if !errors.Is(err, ErrMetric) || !strings.Contains(err.Error(), drop) {
					t.Errorf("without %s: %v", drop, err)
				}
				found = true
			}
		}
		if !found {
			t.Errorf("no dashboard fails the lint without %s", drop)
		}
	}
}

func TestSubstitute(t *testing.T) {
	vars := map[string]string{"node": "node-1|node-2", "__rate_interval": "4s"}
	for _, tt := range []struct{ in, want string }{
		{`rate(x{node=~"$node"}[$__rate_interval])`, `rate(x{node=~"node-1|node-2"}[4s])`},
		{`x{node=~"${node}"}`, `x{node=~"node-1|node-2"}`},
		{`x{node=~"${node:regex}"}`, `x{node=~"node-1|node-2"}`},
		{`label_replace(x, "a", "$1", "b", "(.*)")`, `label_replace(x, "a", "$1", "b", "(.*)")`},
	} {
		got, err := Substitute(tt.in, vars)
		if err != nil || got != tt.want {
			t.Errorf("Substitute(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := Substitute(`x{a=~"$a",b=~"$b",c=~"$a"}`, vars); !errors.Is(err, ErrVariable) || !strings.Contains(err.Error(), "$a, $b") {
		t.Errorf("missing variables: %v", err)
	}
}
