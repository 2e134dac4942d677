package manifests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/layerscope/layerscope/internal/testns"
)

const (
	root      = "../.."
	namespace = "layerscope"
	release   = "layerscope"

	kustomizeDir = root + "/deploy/daemonset"
	// The kustomization for clusters without the Prometheus Operator.
	kustomizeLiteDir = root + "/deploy/daemonset-without-operator"
	chartDir         = root + "/deploy/helm/layerscope"
	dashboardDir     = root + "/deploy/dashboards"
	rulesFile        = root + "/deploy/daemonset/layerscope-rules.yml"

	imageRepo = "ghcr.io/layerscope/layerscope"

	// The tools the tests render with: the binaries named by the
	// environment, else the ones .ci/k8stools.sh installs.
	envHelm          = "LAYERSCOPE_HELM"
	envKustomize     = "LAYERSCOPE_KUSTOMIZE"
	envNoK8sTools    = "LAYERSCOPE_NO_K8STOOLS" // "1" skips the tests that need them where they are not installed
	helmVersion      = "v3.22.0"
	kustomizeVersion = "v5.8.2"
)

// tool returns the path of helm or kustomize, failing the test when it is
// missing unless LAYERSCOPE_NO_K8STOOLS=1.
func tool(t *testing.T, name, env, version string) string {
	t.Helper()
	return testns.Tool{Name: name, Version: version, Env: env, Script: ".ci/k8stools.sh", Skip: envNoK8sTools}.Path(t)
}

func run(t *testing.T, env []string, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, stderr.Bytes())
	}
	return out
}

// kustomizeBuild renders deploy/daemonset.
func kustomizeBuild(t *testing.T) []byte {
	t.Helper()
	return run(t, nil, tool(t, "kustomize", envKustomize, kustomizeVersion), "build", kustomizeDir)
}

// operatorAPIs are the Prometheus Operator's kinds, as a cluster that has
// its CRDs serves them: the chart renders its ServiceMonitor and
// PrometheusRule only for such a cluster.
var operatorAPIs = []string{
	"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
	"--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
}

// helmTemplate renders the chart as release "layerscope" in namespace
// "layerscope" for a cluster with the Prometheus Operator's CRDs, with
// extra arguments (--set …).
func helmTemplate(t *testing.T, args ...string) []byte {
	t.Helper()
	return helmTemplateFor(t, append(slices.Clone(operatorAPIs), args...)...)
}

// helmTemplateFor renders the chart as helmTemplate does, for a cluster
// that serves only the built-in kinds unless args say otherwise.
func helmTemplateFor(t *testing.T, args ...string) []byte {
	t.Helper()
	a := append([]string{"template", release, chartDir, "--namespace", namespace}, args...)
	return run(t, helmEnv(t), tool(t, "helm", envHelm, helmVersion), a...)
}

// helmEnv gives helm cache, config and data directories of the test's own.
func helmEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	return []string{
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}
}

func mustDecode(t *testing.T, what string, data []byte) []object {
	t.Helper()
	objs, err := decodeAll(data)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s: no objects", what)
	}
	return objs
}

func keys(objs []object) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.key())
	}
	sort.Strings(ks)
	return ks
}
