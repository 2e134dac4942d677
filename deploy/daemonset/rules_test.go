package daemonset

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/internal/promtest"
)

var update = flag.Bool("update", false, "rewrite prometheusrule.yaml from layerscope-rules.yml")

const (
	rulesFile     = "layerscope-rules.yml"
	unitTestsFile = "rules_test.yml"
	promRuleFile  = "prometheusrule.yaml"
	runbookFile   = "RUNBOOK.md"
	runbookURL    = "https://github.com/layerscope/layerscope/blob/main/deploy/daemonset/RUNBOOK.md#"
)

// promRuleHeader precedes the plain file's groups in prometheusrule.yaml.
const promRuleHeader = `# Generated from layerscope-rules.yml by
#   go test ./deploy/daemonset -run TestPrometheusRuleInSync -update
# Do not edit: edit layerscope-rules.yml and regenerate. The alerts are
# explained in RUNBOOK.md.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: layerscope
  namespace: layerscope
  labels:
    app.kubernetes.io/name: layerscope
    app.kubernetes.io/component: alerting
spec:
`

// ruleFile is a Prometheus rule file, decoded strictly: a field these types
// do not know fails the decoding, so a round trip loses nothing.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []rule `yaml:"rules"`
}

type rule struct {
	Alert       string            `yaml:"alert,omitempty"`
	Record      string            `yaml:"record,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// unitTests is the part of a promtool unit test file the checks read.
type unitTests struct {
	RuleFiles          []string   `yaml:"rule_files"`
	EvaluationInterval string     `yaml:"evaluation_interval"`
	Tests              []testCase `yaml:"tests"`
}

type testCase struct {
	Name        string `yaml:"name"`
	Interval    string `yaml:"interval"`
	InputSeries []struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	} `yaml:"input_series"`
	AlertRuleTest []struct {
		EvalTime  string `yaml:"eval_time"`
		Alertname string `yaml:"alertname"`
		ExpAlerts []struct {
			ExpLabels      map[string]string `yaml:"exp_labels"`
			ExpAnnotations map[string]string `yaml:"exp_annotations"`
		} `yaml:"exp_alerts"`
	} `yaml:"alert_rule_test"`
}

func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %T: %v", v, err)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	decodeStrict(t, readFile(t, rulesFile), &rf)
	if len(rf.Groups) == 0 {
		t.Fatalf("%s has no groups", rulesFile)
	}
	return rf
}

func loadUnitTests(t *testing.T) unitTests {
	t.Helper()
	var ut unitTests
	decodeStrict(t, readFile(t, unitTestsFile), &ut)
	return ut
}

// alerts returns the alerting rules of rf in file order.
func alerts(rf ruleFile) []rule {
	var out []rule
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// runPromtool runs promtool with args and returns its combined output and
// whether it succeeded.
func runPromtool(t *testing.T, bin string, args ...string) (string, bool) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("promtool %v: %v", args, err)
		}
		return string(out), false
	}
	return string(out), true
}

// wrapRules renders prometheusrule.yaml from the plain rule file: the header,
// then the plain file from its groups key on, indented under spec. The
// plain file's comments and layout are kept.
func wrapRules(plain []byte) ([]byte, error) {
	s := string(plain)
	i := strings.Index(s, "\ngroups:\n")
	if i < 0 {
		return nil, fmt.Errorf("%s: no top-level groups key", rulesFile)
	}
	var b strings.Builder
	b.WriteString(promRuleHeader)
	for line := range strings.Lines(s[i+1:]) {
		if strings.TrimSpace(line) == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("  " + line)
	}
	return []byte(b.String()), nil
}

func TestPrometheusRuleInSync(t *testing.T) {
	plain := readFile(t, rulesFile)
	want, err := wrapRules(plain)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(promRuleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readFile(t, promRuleFile)
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not generated from %s: run go test ./deploy/daemonset -run TestPrometheusRuleInSync -update", promRuleFile, rulesFile)
	}

	// Whatever the text, the object must hold exactly the plain groups.
	var obj struct {
		APIVersion string         `yaml:"apiVersion"`
		Kind       string         `yaml:"kind"`
		Metadata   map[string]any `yaml:"metadata"`
		Spec       map[string]any `yaml:"spec"`
		Rest       map[string]any `yaml:",inline"`
	}
	if err := yaml.Unmarshal(got, &obj); err != nil {
		t.Fatalf("%s: %v", promRuleFile, err)
	}
	if obj.APIVersion != "monitoring.coreos.com/v1" || obj.Kind != "PrometheusRule" {
		t.Errorf("%s is %s %s, want monitoring.coreos.com/v1 PrometheusRule", promRuleFile, obj.APIVersion, obj.Kind)
	}
	if obj.Metadata["name"] != "layerscope" || obj.Metadata["namespace"] != "layerscope" {
		t.Errorf("%s metadata %v: want name and namespace layerscope", promRuleFile, obj.Metadata)
	}
	if len(obj.Rest) != 0 {
		t.Errorf("%s has unexpected top-level fields %v", promRuleFile, obj.Rest)
	}
	var plainDoc map[string]any
	if err := yaml.Unmarshal(plain, &plainDoc); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	if len(obj.Spec) != 1 || len(plainDoc) != 1 {
		t.Fatalf("want only groups in the spec (%d keys) and the plain file (%d keys)", len(obj.Spec), len(plainDoc))
	}
	if !reflect.DeepEqual(obj.Spec["groups"], plainDoc["groups"]) {
		t.Errorf("the groups of %s differ from those of %s", promRuleFile, rulesFile)
	}
}

func TestPromtoolCheckRules(t *testing.T) {
	bin := promtest.Promtool(t)
	if out, ok := runPromtool(t, bin, "check", "rules", rulesFile); !ok {
		t.Fatalf("promtool check rules %s:\n%s", rulesFile, out)
	}
	// The operator loads the PrometheusRule's spec: check it as a rule file too.
	var obj struct {
		Spec yaml.Node `yaml:"spec"`
	}
	if err := yaml.Unmarshal(readFile(t, promRuleFile), &obj); err != nil {
		t.Fatal(err)
	}
	spec, err := yaml.Marshal(&obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "spec.yml")
	if err := os.WriteFile(path, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	out, ok := runPromtool(t, bin, "check", "rules", path)
	if !ok {
		t.Fatalf("promtool check rules on the spec of %s:\n%s", promRuleFile, out)
	}
	if n := len(alerts(loadRules(t))); !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rules found", n)) {
		t.Errorf("promtool found a different number of rules than the %d alerts of %s:\n%s", n, rulesFile, out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	bin := promtest.Promtool(t)
	if out, ok := runPromtool(t, bin, "test", "rules", unitTestsFile); !ok {
		t.Fatalf("promtool test rules %s:\n%s", unitTestsFile, out)
	}
}

// TestEveryAlertTested checks that the unit tests expect every alert both
// firing and not firing, and test no alert that does not exist.
func TestEveryAlertTested(t *testing.T) {
	ut := loadUnitTests(t)
	if !slices.Equal(ut.RuleFiles, []string{rulesFile}) {
		t.Errorf("%s loads %v, want [%s]", unitTestsFile, ut.RuleFiles, rulesFile)
	}
	firing, quiet := map[string]int{}, map[string]int{}
	for _, tc := range ut.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) == 0 {
				quiet[at.Alertname]++
			} else {
				firing[at.Alertname]++
			}
		}
	}
	known := map[string]bool{}
	for _, a := range alerts(loadRules(t)) {
		known[a.Alert] = true
		if firing[a.Alert] == 0 {
			t.Errorf("%s: no unit test expects it firing", a.Alert)
		}
		if quiet[a.Alert] == 0 {
			t.Errorf("%s: no unit test expects it silent", a.Alert)
		}
	}
	for name := range firing {
		if !known[name] {
			t.Errorf("%s tests unknown alert %s", unitTestsFile, name)
		}
	}
	for name := range quiet {
		if !known[name] {
			t.Errorf("%s tests unknown alert %s", unitTestsFile, name)
		}
	}
}

// metricNames returns the series names the agent exports, histogram series
// included.
func metricNames() map[string]bool {
	names := map[string]bool{}
	for _, d := range metricdef.All() {
		names[d.Name] = true
		if d.Type == metricdef.Histogram {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[d.Name+s] = true
			}
		}
	}
	return names
}

var metricRef = regexp.MustCompile(`\blayerscope_[a-z0-9_]+`)

// TestRulesUseExportedMetrics checks every layerscope metric named by the
// rules (expressions and the queries of their templates) and by the unit
// tests' input series against the agent's metric table, so a misspelt name
// cannot hide behind tests that misspell it the same way.
func TestRulesUseExportedMetrics(t *testing.T) {
	names := metricNames()
	for _, a := range alerts(loadRules(t)) {
		texts := []string{a.Expr}
		for _, v := range a.Annotations {
			texts = append(texts, v)
		}
		for _, s := range texts {
			for _, m := range metricRef.FindAllString(s, -1) {
				if !names[m] {
					t.Errorf("%s uses %s, which the agent does not export", a.Alert, m)
				}
			}
		}
	}
	for _, tc := range loadUnitTests(t).Tests {
		for _, in := range tc.InputSeries {
			name, _, _ := strings.Cut(in.Series, "{")
			if name != "up" && !names[name] {
				t.Errorf("%s test %q feeds %s, which the agent does not export", unitTestsFile, tc.Name, name)
			}
			if !strings.Contains(in.Series, `instance="`) {
				t.Errorf("%s test %q: series %s has no instance label, as every scraped series does", unitTestsFile, tc.Name, in.Series)
			}
		}
	}
}

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestAlertsAnnotatedWithRunbook(t *testing.T) {
	anchors := map[string]string{} // anchor → heading
	for line := range strings.Lines(string(readFile(t, runbookFile))) {
		if h, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "## "); ok {
			anchors[githubAnchor(h)] = h
		}
	}
	seen := map[string]bool{}
	for _, a := range alerts(loadRules(t)) {
		if seen[a.Alert] {
			t.Errorf("%s: defined twice", a.Alert)
		}
		seen[a.Alert] = true
		if s := a.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", a.Alert, s)
		}
		if len(a.Labels) != 1 {
			t.Errorf("%s: labels %v, want severity only", a.Alert, a.Labels)
		}
		if a.Annotations["summary"] == "" {
			t.Errorf("%s: no summary", a.Alert)
		}
		d := a.Annotations["description"]
		if !strings.Contains(d, "$labels.instance") || !strings.Contains(d, "$value") {
			t.Errorf("%s: the description must name the instance and the value: %q", a.Alert, d)
		}
		anchor := githubAnchor(a.Alert)
		if got, want := a.Annotations["runbook_url"], runbookURL+anchor; got != want {
			t.Errorf("%s: runbook_url %q, want %q", a.Alert, got, want)
		}
		if anchors[anchor] != a.Alert {
			t.Errorf("%s: %s has no section %q", a.Alert, runbookFile, "## "+a.Alert)
		}
	}
	for anchor, h := range anchors {
		if strings.HasPrefix(h, "Layerscope") && !seen[h] {
			t.Errorf("%s: section %q (#%s) is for no alert", runbookFile, h, anchor)
		}
	}
}

// Comparisons of an alert expression and the looser ones a mutation puts
// in their place.
var (
	strictGT = regexp.MustCompile(` > `)
	strictLT = regexp.MustCompile(` < `)
	equalTo  = regexp.MustCompile(` == `)
)

// mutations returns the ways to break r that its unit tests must catch:
// never firing, every comparison loosened, and no for: duration.
func mutations(r rule) map[string]rule {
	m := map[string]rule{}
	never := r
	never.Expr = "vector(1) < 0"
	m["never"] = never

	loose := r
	loose.Expr = strictGT.ReplaceAllString(loose.Expr, " >= ")
	loose.Expr = strictLT.ReplaceAllString(loose.Expr, " <= ")
	loose.Expr = equalTo.ReplaceAllString(loose.Expr, " != ")
	m["comparisons"] = loose

	if r.For != "" {
		now := r
		now.For = ""
		m["no-for"] = now
	}
	return m
}

// TestRuleMutationsCaught breaks each alert in turn and checks that the unit
// tests fail on that alert: a test suite that passes whatever the threshold
// or the duration would not test them.
func TestRuleMutationsCaught(t *testing.T) {
	bin := promtest.Promtool(t)
	rf := loadRules(t)
	ut := loadUnitTests(t)
	var tests map[string]any
	if err := yaml.Unmarshal(readFile(t, unitTestsFile), &tests); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	for gi, g := range rf.Groups {
		for ri, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			// The test groups that evaluate this alert.
			var groups []string
			for _, tc := range ut.Tests {
				for _, at := range tc.AlertRuleTest {
					if at.Alertname == r.Alert {
						groups = append(groups, regexp.QuoteMeta(tc.Name))
						break
					}
				}
			}
			if len(groups) == 0 {
				t.Errorf("%s: no unit test group evaluates it", r.Alert)
				continue
			}
			run := "^(" + strings.Join(groups, "|") + ")$"

			for name, mutant := range mutations(r) {
				if mutant.Expr == r.Expr && mutant.For == r.For {
					t.Errorf("%s: mutation %s changes nothing (no comparison in %q)", r.Alert, name, r.Expr)
					continue
				}
				rules := filepath.Join(dir, fmt.Sprintf("%s-%s.yml", r.Alert, name))
				testFile := filepath.Join(dir, fmt.Sprintf("%s-%s_test.yml", r.Alert, name))
				mutated := ruleFile{Groups: slices.Clone(rf.Groups)}
				mutated.Groups[gi].Rules = slices.Clone(g.Rules)
				mutated.Groups[gi].Rules[ri] = mutant
				writeYAML(t, rules, mutated)
				tests["rule_files"] = []string{rules}
				writeYAML(t, testFile, tests)

				t.Run(r.Alert+"/"+name, func(t *testing.T) {
					t.Parallel()
					out, ok := runPromtool(t, bin, "test", "rules", "--run", run, testFile)
					if ok {
						t.Fatalf("the unit tests pass with %s mutated (%s): expr %q, for %q", r.Alert, name, mutant.Expr, mutant.For)
					}
					if !strings.Contains(out, "alertname: "+r.Alert+",") {
						t.Fatalf("the unit tests fail, but not on %s:\n%s", r.Alert, out)
					}
				})
			}
		}
	}
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
