// Package deps holds the test that keeps the package dependency direction of
// layerscope true: leaf packages stay leaves, decoders know nothing of the
// agent, exporters know nothing of capture, the agent's parts know nothing
// of the root package that wires them (nor of the parts after them in the
// data flow), and nothing imports the binary.
package deps

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/layerscope/layerscope"

// rule constrains the transitive dependencies of every package under pkg
// (pkg itself and its subpackages, unless exact is set).
type rule struct {
	pkg    string
	exact  bool
	stdlib bool     // only the standard library (and allow) may be imported
	allow  []string // with stdlib: module-relative or external prefixes still allowed
	deny   []string // prefixes (module-relative when they do not contain a dot) that must not appear
	// denyExact are packages (not their subpackages) that must not appear.
	denyExact []string
}

// theWiring is the agent's root package: it imports its parts, none of
// them imports it.
var theWiring = []string{"agent"}

var rules = []rule{
	{pkg: "agent/flow", stdlib: true},
	{pkg: "exporters/metricdef", stdlib: true},
	{pkg: "agent/flowtable", stdlib: true, allow: []string{"agent/flow"}},
	{pkg: "agent/correlate", stdlib: true, allow: []string{"agent/flow"}},
	{pkg: "agent/capture", deny: []string{"agent/links", "decoders", "agent/flowtable", "agent/pipeline", "agent/conntrack", "exporters", "lab", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "agent/links", deny: []string{"decoders", "agent/capture", "agent/flowtable", "agent/pipeline", "agent/conntrack", "exporters", "lab", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "agent/attach", deny: []string{"decoders", "agent/flowtable", "agent/pipeline", "agent/conntrack", "exporters", "lab", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "agent/pipeline", deny: []string{"exporters", "agent/conntrack", "lab", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "agent/conntrack", deny: []string{"agent/capture", "agent/pipeline", "decoders", "exporters", "lab", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "agent/mtu", deny: []string{"agent/capture", "agent/pipeline", "agent/flowtable", "agent/conntrack", "exporters", "lab", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "agent/netstat", deny: []string{"agent/capture", "agent/pipeline", "agent/flowtable", "agent/conntrack", "exporters", "lab", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "agent/history", stdlib: true, allow: []string{"agent/flow", "agent/correlate"}},
	{pkg: "agent/api", stdlib: true},
	{pkg: "agent/diagnose", stdlib: true, allow: []string{"agent/api"}},
	{pkg: "internal/render", stdlib: true, allow: []string{"agent/api", "agent/diagnose", "golang.org/x/term", "golang.org/x/sys"}},
	{pkg: "internal/fleet", stdlib: true, allow: []string{"agent/api", "agent/diagnose"}},
	{pkg: "agent/kube", deny: []string{"agent/capture", "agent/pipeline", "agent/flowtable", "agent/conntrack", "decoders", "exporters", "lab", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "agent/ondemand", deny: []string{"agent/pipeline", "agent/flowtable", "agent/conntrack", "decoders", "exporters", "lab", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "agent/server", deny: []string{"agent", "decoders", "exporters", "lab", "cmd", "go.opentelemetry.io", "k8s.io"}},
	{pkg: "lab", deny: []string{"agent", "decoders", "exporters", "cmd"}},
	{pkg: "decoders", deny: []string{"agent", "exporters", "lab", "cmd", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "decoders/l2", deny: []string{"decoders/l3", "decoders/l4", "decoders/l6", "decoders/l7", "decoders/parser"}},
	{pkg: "decoders/l3", deny: []string{"decoders/l2", "decoders/l4", "decoders/l6", "decoders/l7", "decoders/parser"}},
	{pkg: "decoders/l4", deny: []string{"decoders/l2", "decoders/l3", "decoders/l6", "decoders/l7", "decoders/parser"}},
	{pkg: "decoders/l6", deny: []string{"decoders/l2", "decoders/l3", "decoders/l4", "decoders/l7", "decoders/parser"}},
	{pkg: "decoders/l7", deny: []string{"decoders/l2", "decoders/l3", "decoders/l4", "decoders/l6", "decoders/parser"}},
	{pkg: "exporters/prom", deny: []string{"exporters/otlp", "agent/capture", "agent/conntrack", "agent/pipeline", "decoders", "lab", "go.opentelemetry.io"}},
	{pkg: "exporters/otlp", deny: []string{"exporters/prom", "agent/capture", "agent/conntrack", "agent/pipeline", "decoders", "lab", "github.com/prometheus"}},
	// The parts of the agent, in data-flow order: each knows nothing of
	// the wiring nor of the parts that read it.
	{pkg: "agent/workers", denyExact: theWiring, deny: []string{"agent/history", "agent/workloads", "agent/tracing", "agent/metrics", "agent/web", "agent/ondemand", "agent/kube", "exporters", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "agent/workloads", denyExact: theWiring, deny: []string{"agent/capture", "agent/pipeline", "agent/workers", "agent/tracing", "agent/metrics", "agent/web", "exporters", "github.com/prometheus", "go.opentelemetry.io"}},
	{pkg: "agent/tracing", denyExact: theWiring, deny: []string{"agent/capture", "agent/pipeline", "agent/workers", "agent/metrics", "agent/web", "agent/history", "exporters/prom", "github.com/prometheus"}},
	{pkg: "agent/metrics", denyExact: theWiring, deny: []string{"agent/web", "agent/tracing", "lab", "cmd"}},
	{pkg: "agent/web", denyExact: theWiring, deny: []string{"agent/tracing", "exporters/otlp", "exporters/prom", "go.opentelemetry.io", "lab", "cmd"}},
	{pkg: "agent", denyExact: theWiring, deny: []string{"cmd"}},
	{pkg: "exporters", deny: []string{"cmd"}},
	{pkg: "bench", deny: []string{"cmd"}},
}

type listed struct {
	ImportPath string
	Standard   bool
	Deps       []string
}

func abs(p string) string {
	if strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
		return p
	}
	return module + "/" + p
}

func hasPrefix(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// listPackages returns every package of the module with its transitive deps,
// test files included, and the set of standard-library package paths.
func listPackages(t *testing.T) ([]listed, map[string]bool) {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard,Deps", "./...")
	cmd.Dir = "../.."
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	std := map[string]bool{}
	var pkgs []listed
	dec := json.NewDecoder(&out)
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Standard {
			std[p.ImportPath] = true
			continue
		}
		if hasPrefix(p.ImportPath, module) {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, std
}

func TestDependencyDirection(t *testing.T) {
	pkgs, std := listPackages(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages of %s; is the test run from the module?", len(pkgs), module)
	}
	checked := 0
	for _, p := range pkgs {
		for _, d := range p.Deps {
			if hasPrefix(d, module+"/cmd") {
				t.Errorf("%s imports %s: nothing may import the binary", p.ImportPath, d)
			}
		}
		for _, r := range rules {
			base := abs(r.pkg)
			if !(p.ImportPath == base || (!r.exact && strings.HasPrefix(p.ImportPath, base+"/"))) {
				continue
			}
			checked++
			for _, d := range p.Deps {
				if r.stdlib && !std[d] && !allowed(d, r.allow) && !hasPrefix(d, base) {
					t.Errorf("%s may import only the standard library%v, but depends on %s", p.ImportPath, r.allow, d)
				}
				for _, deny := range r.deny {
					if hasPrefix(d, abs(deny)) && !hasPrefix(d, base) {
						t.Errorf("%s must not depend on %s (via %s)", p.ImportPath, abs(deny), d)
					}
				}
				for _, deny := range r.denyExact {
					if d == abs(deny) {
						t.Errorf("%s must not depend on %s: the agent's parts do not import the package that wires them", p.ImportPath, d)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package matched any rule; the rules are stale")
	}
}

func allowed(dep string, allow []string) bool {
	for _, a := range allow {
		if hasPrefix(dep, abs(a)) {
			return true
		}
	}
	return false
}

// TestRulesDetectViolations makes sure the checker is not vacuous: a package
// list with a forbidden edge must be reported.
func TestRulesDetectViolations(t *testing.T) {
	if !hasPrefix(abs("decoders/l2"), abs("decoders")) || hasPrefix(abs("decoders2"), abs("decoders")) {
		t.Fatal("prefix matching is wrong")
	}
	if abs("github.com/prometheus") != "github.com/prometheus" || abs("agent") != module+"/agent" {
		t.Fatal("abs is wrong")
	}
}
