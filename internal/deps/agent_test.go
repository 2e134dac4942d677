package deps

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentBinaryLinksNoFakes fails when a test double (a package named
// fake, such as client-go's fake clientset with every typed fake) enters the
// agent binary: it costs megabytes and has no business in production.
func TestAgentBinaryLinksNoFakes(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/layerscope")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 100 {
		t.Fatalf("go list -deps ./cmd/layerscope listed only %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		if strings.HasSuffix(p, "/fake") || strings.Contains(p, "/fake/") {
			t.Errorf("the agent binary links %s", p)
		}
	}
}

// TestAgentRootIsWiring fails when a file other than the wiring (agent.go)
// and the configuration it takes (config.go) enters the agent's root
// package: behaviour belongs in the part that owns it.
func TestAgentRootIsWiring(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{join .GoFiles \" \"}}", "./agent")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	files := strings.Fields(string(out))
	if len(files) == 0 {
		t.Fatal("go list found no file in ./agent")
	}
	for _, f := range files {
		if f != "agent.go" && f != "config.go" {
			t.Errorf("agent/%s: the root package holds only the wiring (agent.go) and its configuration (config.go)", f)
		}
	}
}
