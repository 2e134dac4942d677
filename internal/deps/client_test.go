package deps

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// clientAllowed are the module's packages the operator's client may link:
// the API client, the verdict engine, the rendering and the merging of
// several agents' answers. Never the agent.
var clientAllowed = []string{"agent/api", "agent/diagnose", "internal/render", "internal/fleet", "cmd/kubectl-layerscope"}

// linuxOnly are the agent's dependencies that exist for Linux alone.
var linuxOnly = []string{
	"github.com/vishvananda/netlink", "github.com/vishvananda/netns", "github.com/mdlayher/netlink",
	"github.com/jsimonetti/rtnetlink", "github.com/ti-mo/conntrack", "github.com/ti-mo/netfilter",
	"github.com/gopacket/gopacket/afpacket",
}

// TestClientLinksNoAgent fails when cmd/kubectl-layerscope depends on a
// package of the agent or on a Linux-only package, or does not resolve,
// for every OS and architecture an operator runs kubectl on. (make cross
// compiles it for each of them.)
func TestClientLinksNoAgent(t *testing.T) {
	for _, goos := range []string{"linux", "darwin", "windows"} {
		for _, arch := range []string{"amd64", "arm64"} {
			t.Run(goos+"/"+arch, func(t *testing.T) {
				cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Standard,Error,DepsErrors", "./cmd/kubectl-layerscope")
				cmd.Dir = "../.."
				cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+arch, "CGO_ENABLED=0")
				var out, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("go list: %v\n%s", err, stderr.String())
				}
				n := 0
				dec := json.NewDecoder(&out)
				for dec.More() {
					var p struct {
						ImportPath string
						Standard   bool
						Error      *struct{ Err string }
						DepsErrors []struct{ Err string }
					}
					if err := dec.Decode(&p); err != nil {
						t.Fatal(err)
					}
					n++
					if p.Error != nil {
						t.Errorf("%s does not build for %s/%s: %s", p.ImportPath, goos, arch, p.Error.Err)
					}
					if hasPrefix(p.ImportPath, module) && !allowed(p.ImportPath, clientAllowed) {
						t.Errorf("cmd/kubectl-layerscope links %s for %s/%s: the client links only %v", p.ImportPath, goos, arch, clientAllowed)
					}
					for _, l := range linuxOnly {
						if hasPrefix(p.ImportPath, l) {
							t.Errorf("cmd/kubectl-layerscope links the Linux-only %s for %s/%s", p.ImportPath, goos, arch)
						}
					}
					if strings.HasSuffix(p.ImportPath, "/fake") {
						t.Errorf("cmd/kubectl-layerscope links the test double %s", p.ImportPath)
					}
				}
				if n < 100 {
					t.Fatalf("go list listed only %d packages", n)
				}
			})
		}
	}
}
