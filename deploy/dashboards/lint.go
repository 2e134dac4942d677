package dashboards

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// LintConfig says what Lint checks against. The zero value (or nil) lints
// against the agent's metric table.
type LintConfig struct {
	// Metrics maps each series name a dashboard may read to its label
	// names. Nil means KnownMetrics().
	Metrics map[string][]string
}

// lintVars are the values Lint substitutes before parsing: Grafana's
// interval variables become durations, the node and namespace variables
// stay as written ($node, $namespace) so that the filters can be checked.
var lintVars = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "30s",
	"__range":         "1h",
	"__range_s":       "3600",
	VarNode:           "$" + VarNode,
	VarNamespace:      "$" + VarNamespace,
}

// panelTypes are the panel types the dashboards use; anything else (text
// panels carry no query and no unit) is an error.
var panelTypes = []string{"row", "timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "state-timeline"}

// labelValues matches a label_values(selector, label) variable query.
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// Lint checks one dashboard (see the package documentation) and returns
// every problem found, joined; each wraps one of the sentinel errors and
// names the panel and target it is about.
func Lint(data []byte, cfg *LintConfig) error {
	var c LintConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Metrics == nil {
		c.Metrics = KnownMetrics()
	}
	d, err := Parse(data)
	if err != nil {
		return err
	}
	l := &linter{cfg: c, p: parser.NewParser(parser.Options{})}
	l.dashboard(d)
	return errors.Join(l.errs...)
}

type linter struct {
	cfg  LintConfig
	p    parser.Parser
	errs []error
}

func (l *linter) errorf(sentinel error, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...))
}

func (l *linter) dashboard(d *Dashboard) {
	if d.UID == "" || len(d.UID) > 40 {
		l.errorf(ErrDashboard, "uid %q: want 1 to 40 characters", d.UID)
	}
	if strings.TrimSpace(d.Title) == "" {
		l.errorf(ErrDashboard, "no title")
	}
	if d.SchemaVersion < MinSchemaVersion {
		l.errorf(ErrDashboard, "schemaVersion %d: want at least %d", d.SchemaVersion, MinSchemaVersion)
	}
	if len(d.Panels) == 0 {
		l.errorf(ErrDashboard, "no panels")
	}
	l.templating(d.Templating)

	ids := map[int]string{}
	var placed []Panel
	for _, p := range d.AllPanels() {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			l.errorf(ErrPanelID, "%s: id must be positive", name)
		} else if other, dup := ids[p.ID]; dup {
			l.errorf(ErrPanelID, "%s: id also used by %q", name, other)
		} else {
			ids[p.ID] = p.Title
		}
		if strings.TrimSpace(p.Title) == "" {
			l.errorf(ErrDashboard, "%s: no title", name)
		}
		l.gridPos(name, p, placed)
		if p.GridPos != nil {
			placed = append(placed, p)
		}
		if !slices.Contains(panelTypes, p.Type) {
			l.errorf(ErrPanelType, "%s: type %q, want one of %v", name, p.Type, panelTypes)
			continue
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				l.errorf(ErrTarget, "%s: a row has no queries", name)
			}
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != DatasourceRef || p.Datasource.Type != "prometheus" {
			l.errorf(ErrDatasource, "%s: datasource %+v, want {type: prometheus, uid: %s}", name, p.Datasource, DatasourceRef)
		}
		if p.FieldConfig == nil || strings.TrimSpace(p.FieldConfig.Defaults.Unit) == "" {
			l.errorf(ErrUnit, "%s: fieldConfig.defaults.unit is empty", name)
		}
		if len(p.Targets) == 0 {
			l.errorf(ErrTarget, "%s: no targets", name)
		}
		refs := map[string]bool{}
		for _, t := range p.Targets {
			tname := fmt.Sprintf("%s target %q", name, t.RefID)
			if t.RefID == "" || refs[t.RefID] {
				l.errorf(ErrTarget, "%s: refId empty or duplicate", tname)
			}
			refs[t.RefID] = true
			if t.Datasource != nil && t.Datasource.UID != DatasourceRef {
				l.errorf(ErrDatasource, "%s: datasource uid %q, want %s", tname, t.Datasource.UID, DatasourceRef)
			}
			if strings.TrimSpace(t.Expr) == "" {
				l.errorf(ErrTarget, "%s: no expr", tname)
				continue
			}
			l.expr(tname, t.Expr, true)
		}
	}
}

// gridPos checks that p lies inside the grid and overlaps no panel placed
// before it.
func (l *linter) gridPos(name string, p Panel, placed []Panel) {
	g := p.GridPos
	if g == nil {
		l.errorf(ErrGridPos, "%s: no gridPos", name)
		return
	}
	if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
		l.errorf(ErrGridPos, "%s: %+v outside the 24-column grid or empty", name, *g)
		return
	}
	for _, o := range placed {
		h := o.GridPos
		if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
			l.errorf(ErrGridPos, "%s: %+v overlaps panel %d %q at %+v", name, *g, o.ID, o.Title, *h)
		}
	}
}

// expr parses one PromQL expression after substituting the variables and
// checks the metrics it reads and their filters. filtered says every
// selector must filter by the node (and namespace) variables.
func (l *linter) expr(name, expr string, filtered bool) {
	s, err := Substitute(expr, lintVars)
	if err != nil {
		l.errorf(ErrVariable, "%s: %v", name, err)
		return
	}
	e, err := l.p.ParseExpr(s)
	if err != nil {
		l.errorf(ErrPromQL, "%s: %q: %v", name, s, err)
		return
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		metric := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				metric = m.Value
			}
		}
		if metric == "" {
			l.errorf(ErrMetric, "%s: selector %s names no metric", name, vs)
			return nil
		}
		labelNames, known := l.cfg.Metrics[metric]
		if !known {
			l.errorf(ErrMetric, "%s: %s", name, metric)
			return nil
		}
		if !filtered {
			return nil
		}
		if !hasVarMatcher(vs, VarNode) {
			l.errorf(ErrFilter, "%s: %s has no %s=~\"$%s\" matcher", name, vs, VarNode, VarNode)
		}
		if slices.Contains(labelNames, VarNamespace) && !hasVarMatcher(vs, VarNamespace) {
			l.errorf(ErrFilter, "%s: %s has a namespace label but no %s=~\"$%s\" matcher", name, vs, VarNamespace, VarNamespace)
		}
		return nil
	})
}

// hasVarMatcher reports whether vs has the matcher label=~"$label".
func hasVarMatcher(vs *parser.VectorSelector, label string) bool {
	for _, m := range vs.LabelMatchers {
		if m.Name == label && m.Type == labels.MatchRegexp && m.Value == "$"+label {
			return true
		}
	}
	return false
}

// templating checks the datasource, node and namespace variables.
func (l *linter) templating(t Templating) {
	vars := map[string]Variable{}
	for _, v := range t.List {
		if _, dup := vars[v.Name]; dup {
			l.errorf(ErrTemplating, "variable %q defined twice", v.Name)
		}
		vars[v.Name] = v
	}
	if ds, ok := vars[VarDatasource]; !ok {
		l.errorf(ErrTemplating, "no %s variable", VarDatasource)
	} else if ds.Type != "datasource" || ds.QueryText() != "prometheus" {
		l.errorf(ErrTemplating, "variable %s: type %q query %q, want type datasource query prometheus", VarDatasource, ds.Type, ds.QueryText())
	}
	for _, name := range []string{VarNode, VarNamespace} {
		v, ok := vars[name]
		if !ok {
			l.errorf(ErrTemplating, "no %s variable", name)
			continue
		}
		if v.Type != "query" || v.Datasource == nil || v.Datasource.UID != DatasourceRef {
			l.errorf(ErrTemplating, "variable %s: type %q datasource %+v, want a query variable on %s", name, v.Type, v.Datasource, DatasourceRef)
		}
		if !v.IncludeAll || v.AllValue != ".*" {
			l.errorf(ErrTemplating, "variable %s: want includeAll with allValue .* (the queries match it as a regular expression)", name)
		}
		m := labelValues.FindStringSubmatch(v.QueryText())
		if m == nil || m[2] != name {
			l.errorf(ErrTemplating, "variable %s: query %q, want label_values(SELECTOR, %s)", name, v.QueryText(), name)
			continue
		}
		// The selector filters by node for the namespace variable, not
		// by itself.
		l.expr("variable "+name, m[1], false)
		if name == VarNamespace {
			e, err := l.p.ParseExpr(m[1])
			if vs, ok := e.(*parser.VectorSelector); err == nil && ok {
				if labels, known := l.cfg.Metrics[vs.Name]; known && !slices.Contains(labels, VarNamespace) {
					l.errorf(ErrTemplating, "variable %s: %s has no namespace label", name, vs.Name)
				}
			}
		}
	}
}
