package dashboards

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"github.com/layerscope/layerscope/exporters/metricdef"
)

// SchemaVersion is the Grafana dashboard schema the files are written in
// (Grafana 12), and MinSchemaVersion the oldest Lint accepts (Grafana 11.0).
const (
	SchemaVersion    = 41
	MinSchemaVersion = 39
)

// DatasourceRef is the data source reference every panel, target and query
// variable carries: the Prometheus data source picked in the datasource
// variable.
const DatasourceRef = "${datasource}"

// Variables every dashboard defines.
const (
	VarDatasource = "datasource"
	VarNode       = "node"
	VarNamespace  = "namespace"
)

//go:embed *.json
var files embed.FS

// Files returns the dashboards of this directory by file name.
func Files() (map[string][]byte, error) {
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out[n] = b
	}
	return out, nil
}

// Dashboard is the part of a Grafana dashboard the lint and the queries
// read. Fields Grafana has and these types lack are ignored.
type Dashboard struct {
	UID           string     `json:"uid"`
	Title         string     `json:"title"`
	SchemaVersion int        `json:"schemaVersion"`
	Panels        []Panel    `json:"panels"`
	Templating    Templating `json:"templating"`
}

// Panel is one panel; a row holds its panels when collapsed.
type Panel struct {
	ID          int          `json:"id"`
	Type        string       `json:"type"`
	Title       string       `json:"title"`
	GridPos     *GridPos     `json:"gridPos"`
	Datasource  *Ref         `json:"datasource"`
	FieldConfig *FieldConfig `json:"fieldConfig"`
	Targets     []Target     `json:"targets"`
	Panels      []Panel      `json:"panels"` // a collapsed row's panels
}

// GridPos places a panel in the 24-column grid.
type GridPos struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// Ref references a data source.
type Ref struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// FieldConfig holds a panel's field defaults.
type FieldConfig struct {
	Defaults struct {
		Unit string `json:"unit"`
	} `json:"defaults"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string `json:"refId"`
	Expr       string `json:"expr"`
	Instant    bool   `json:"instant"`
	Datasource *Ref   `json:"datasource"`
}

// Templating holds the dashboard's variables.
type Templating struct {
	List []Variable `json:"list"`
}

// Variable is one templating variable. Query is a string for a datasource
// variable and an object (whose query field is the PromQL or label_values
// call) for a query variable of current Grafana; both are accepted.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *Ref            `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

// QueryText returns the variable's query as text.
func (v Variable) QueryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &o) == nil {
		return o.Query
	}
	return ""
}

// Parse decodes a dashboard.
func Parse(data []byte) (*Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJSON, err)
	}
	return &d, nil
}

// AllPanels returns the dashboard's panels, those inside collapsed rows
// included, rows first.
func (d *Dashboard) AllPanels() []Panel {
	var out []Panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// Query is the PromQL of one panel target.
type Query struct {
	Dashboard string // the dashboard's uid
	PanelID   int
	Panel     string // the panel's title
	RefID     string
	Expr      string // as written, with the variables
	Instant   bool
}

func (q Query) String() string {
	return fmt.Sprintf("%s panel %d %q target %s", q.Dashboard, q.PanelID, q.Panel, q.RefID)
}

// Queries returns the PromQL targets of every panel of the dashboard, in
// panel order.
func (d *Dashboard) Queries() []Query {
	var out []Query
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			if strings.TrimSpace(t.Expr) == "" {
				continue
			}
			out = append(out, Query{Dashboard: d.UID, PanelID: p.ID, Panel: p.Title, RefID: t.RefID, Expr: t.Expr, Instant: t.Instant})
		}
	}
	return out
}

// varRef matches a Grafana variable reference: $name, ${name} or
// ${name:format}. $1 and the like (label_replace templates) are not
// variables.
var varRef = regexp.MustCompile(`\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+)?\}|([A-Za-z_][A-Za-z0-9_]*))`)

// Substitute replaces the variables of expr with their values in vars
// (name without the $). A variable without a value is an error wrapping
// ErrVariable.
func Substitute(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(expr, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, "$"+name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		slices.Sort(missing)
		return "", fmt.Errorf("%w %s in %q", ErrVariable, strings.Join(slices.Compact(missing), ", "), expr)
	}
	return out, nil
}

// Prometheus's own series of a scrape target, which dashboards may read
// besides the agent's metrics.
var scrapeSeries = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}

// Process metrics of client_golang's standard collectors that the agent
// registers and the agent-health dashboard reads.
var processSeries = []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "go_gc_gomemlimit_bytes", "go_goroutines"}

// KnownMetrics returns every series name a dashboard may read: the agent's
// metrics of exporters/metricdef (histograms with their _bucket, _sum and
// _count series), a few process metrics, and the series Prometheus adds to
// every scrape. The value is the metric's labels (nil for those not in the
// table).
func KnownMetrics() map[string][]string {
	out := map[string][]string{}
	for _, d := range metricdef.All() {
		labels := slices.Concat(d.Labels, d.OptLabels)
		out[d.Name] = labels
		if d.Type == metricdef.Histogram {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[d.Name+s] = labels
			}
		}
	}
	for _, n := range slices.Concat(scrapeSeries, processSeries) {
		out[n] = nil
	}
	return out
}
