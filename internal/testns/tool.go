package testns

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Tool is a real peer a test runs: a Debian package's binary found in PATH
// (Version empty; .ci/run installs it), or one a .ci script builds into the
// tool cache ~/.cache/layerscope/tools/<Name>-<Version>/<Name>.
type Tool struct {
	Name    string
	Version string // cached tools: the version the .ci script builds
	Env     string // cached tools: a variable naming the binary instead
	Script  string // cached tools: the .ci script that builds it
	// Skip is the variable that, set to "1", skips the test where the tool
	// is missing; empty means LAYERSCOPE_NO_<NAME>. Without it a missing
	// tool fails the test: CI must never skip silently.
	Skip string
}

// Path returns the tool's binary, failing the test (or skipping it, when
// the Skip variable is "1") when it is missing.
func (tl Tool) Path(t testing.TB) string {
	t.Helper()
	skip := tl.Skip
	if skip == "" {
		skip = "LAYERSCOPE_NO_" + strings.ToUpper(tl.Name)
	}
	var (
		path, hint string
		err        error
	)
	if tl.Version == "" {
		path, err = exec.LookPath(tl.Name)
		hint = "apt-get install " + tl.Name
	} else {
		hint = "run " + tl.Script + " or set " + tl.Env
		if path = os.Getenv(tl.Env); path == "" {
			home, herr := os.UserHomeDir()
			if herr != nil {
				t.Fatal(herr)
			}
			path = filepath.Join(home, ".cache", "layerscope", "tools", tl.Name+"-"+tl.Version, tl.Name)
		}
		_, err = os.Stat(path)
	}
	if err != nil {
		if os.Getenv(skip) == "1" {
			t.Skipf("%s not installed (%v) and %s=1", tl.Name, err, skip)
		}
		t.Fatalf("%s not installed (%v): %s, or set %s=1 to skip", tl.Name, err, hint, skip)
	}
	return path
}

// TsharkCount counts the packets of a capture file that tshark's display
// filter selects (every packet for an empty filter).
func TsharkCount(t testing.TB, file, filter string) int {
	t.Helper()
	args := []string{"-r", file, "-T", "fields", "-e", "frame.number"}
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	out, err := exec.Command(Tool{Name: "tshark"}.Path(t), args...).Output()
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	return len(strings.Fields(string(out)))
}

// Kubernetes versions .ci/kubernetes.sh builds by default; its tool cache
// directory is kubernetes-<K8sVersion>-etcd-<EtcdVersion>.
const (
	K8sVersion  = "v1.37.2"
	EtcdVersion = "v3.7.4"
)

// K8sBin returns the directory of the Kubernetes binaries that
// .ci/kubernetes.sh builds: $LAYERSCOPE_K8S_BIN, else the default version's
// directory in the tool cache. The test is skipped when the process is not
// root (the lab needs it); as root, missing binaries fail the test unless
// LAYERSCOPE_NO_KUBERNETES=1.
func K8sBin(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("LAYERSCOPE_K8S_BIN")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(home, ".cache", "layerscope", "tools", "kubernetes-"+K8sVersion+"-etcd-"+EtcdVersion)
	}
	_, err := os.Stat(filepath.Join(dir, "kube-apiserver"))
	if os.Geteuid() != 0 {
		t.Skipf("skipped: the Kubernetes lab needs root (binaries: %s)", dir)
	}
	if err != nil {
		if os.Getenv("LAYERSCOPE_NO_KUBERNETES") == "1" {
			t.Skipf("Kubernetes binaries not installed (%v) and LAYERSCOPE_NO_KUBERNETES=1", err)
		}
		t.Fatalf("Kubernetes binaries not installed (%v): run .ci/kubernetes.sh or set LAYERSCOPE_K8S_BIN, or set LAYERSCOPE_NO_KUBERNETES=1 to skip", err)
	}
	return dir
}
