package labtest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/layerscope/layerscope/internal/labk8s"
	"github.com/layerscope/layerscope/internal/promtest"
	"github.com/layerscope/layerscope/lab"
)

const (
	kustomizeLite  = "../daemonset-without-operator"
	chartNamespace = labk8s.Namespace
	chartRelease   = labk8s.Release
	agentAccount   = "system:serviceaccount:" + chartNamespace + ":" + chartRelease
)

// chartPrometheusConfig discovers the agents as the chart's ServiceMonitor
// would have Prometheus do it: the endpoints of the headless Service's
// metrics port, found through the API server, the pod's node name as the
// node label.
func chartPrometheusConfig(kubeconfig, proxy string) string {
	return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: layerscope
    proxy_url: %s
    kubernetes_sd_configs:
      - role: endpoints
        kubeconfig_file: %s
        namespaces: {names: [%s]}
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_name, __meta_kubernetes_endpoint_port_name]
        regex: %s;metrics
        action: keep
      - source_labels: [__meta_kubernetes_pod_node_name]
        target_label: node
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
`, proxy, kubeconfig, chartNamespace, chartRelease)
}

// TestChartInLabCluster installs the chart with helm into the lab's real
// cluster (no Prometheus Operator CRDs) under kube-proxy in each mode: the
// DaemonSet is Ready on both nodes within 60 s; the agents in the pods run
// with the chart's ServiceAccount, which may read what they need and
// nothing more (the API server refuses the rest); Prometheus discovers and
// scrapes them through the API; and the service join of the in-pod agents
// finds the dead backend, then the stale DNAT of a pod deleted through
// the API.
func TestChartInLabCluster(t *testing.T) {
	for _, mode := range lab.KubeProxyModes {
		t.Run(string(mode), func(t *testing.T) { testChartInLabCluster(t, mode) })
	}
}

func testChartInLabCluster(t *testing.T, mode lab.KubeProxyMode) {
	promBin := promtest.Prometheus(t)
	l := labk8s.KubeletLab(t, mode, "h")
	kubeconfig, c := labk8s.Admin(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	start := time.Now()
	labk8s.HelmInstall(t, l, "extraArgs={--conntrack-top-n=5}")
	ds := labk8s.WaitDaemonSet(t, c, 60*time.Second)
	t.Logf("helm install to the DaemonSet Ready on both nodes: %v", time.Since(start).Round(time.Millisecond))
	pods, err := c.CoreV1().Pods(chartNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + chartRelease})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, p := range pods.Items {
		nodes = append(nodes, p.Spec.NodeName)
		if p.Spec.ServiceAccountName != chartRelease {
			t.Errorf("pod %s runs as service account %q, want the chart's %q", p.Name, p.Spec.ServiceAccountName, chartRelease)
		}
	}
	slices.Sort(nodes)
	if !slices.Equal(nodes, []string{lab.Node1, lab.Node2}) {
		t.Fatalf("agent pods on %v, want one on each node", nodes)
	}
	if ds.Spec.Template.Spec.Containers[0].Image != lab.AgentImage {
		t.Errorf("image %q, want %s", ds.Spec.Template.Spec.Containers[0].Image, lab.AgentImage)
	}
	for _, kind := range []string{"servicemonitors", "prometheusrules"} {
		if _, err := c.Discovery().ServerResourcesForGroupVersion("monitoring.coreos.com/v1"); err == nil {
			t.Fatalf("the lab's cluster serves monitoring.coreos.com/v1 (%s): the install does not prove the chart works without the CRDs", kind)
		}
	}

	checkLeastPrivilege(t, l)

	proxy := labk8s.Proxy(t, l)
	rules, _ := testRules(t)
	prom := promtest.Start(t, promBin, chartPrometheusConfig(kubeconfig, proxy), map[string]string{"rules.yml": rules})
	scraped := func() bool {
		s, err := prom.Query(`up{job="layerscope"} == 1 and on (instance) layerscope_kube_metadata_synced{source="api"} == 1`)
		return err == nil && slices.Equal(promtest.Series(s, "node"), []string{"node=" + lab.Node1, "node=" + lab.Node2})
	}
	for deadline := time.Now().Add(30 * time.Second); !scraped(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			s, err := prom.Query(`up`)
			t.Fatalf("the in-pod agents are not scraped, with metadata synced from the API server, within 30s: up %+v %v", s, err)
		}
	}
	t.Logf("prometheus scrapes both in-pod agents %v after helm install", time.Since(start).Round(time.Millisecond))

	deadBackendThenStale(ctx, t, l, prom)

	// What an agent pod costs, as its own process metrics say.
	for _, q := range []string{`process_resident_memory_bytes{job="layerscope"} / 2^20`, `rate(process_cpu_seconds_total{job="layerscope"}[10s]) * 1000`} {
		s, err := prom.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range s {
			t.Logf("%s %s: %.1f", x.Metric["node"], q, x.Value)
		}
	}
}

// checkLeastPrivilege acts as the agent's ServiceAccount against the real
// API server: the reads the agent needs pass, anything else is refused.
func checkLeastPrivilege(t *testing.T, l *lab.Lab) {
	t.Helper()
	rc, err := l.KubeRESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	rc = rest.CopyConfig(rc)
	rc.Impersonate = rest.ImpersonationConfig{UserName: agentAccount}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	allowed := map[string]func() error{
		"list pods":     func() error { _, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1}); return err },
		"list services": func() error { _, err := c.CoreV1().Services("").List(ctx, metav1.ListOptions{Limit: 1}); return err },
		"list endpointslices": func() error {
			_, err := c.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{Limit: 1})
			return err
		},
		"get node": func() error { _, err := c.CoreV1().Nodes().Get(ctx, lab.Node1, metav1.GetOptions{}); return err },
	}
	refused := map[string]func() error{
		"delete a pod": func() error { return c.CoreV1().Pods("default").Delete(ctx, lab.PodA, metav1.DeleteOptions{}) },
		"list secrets": func() error { _, err := c.CoreV1().Secrets(chartNamespace).List(ctx, metav1.ListOptions{}); return err },
		"patch a node": func() error {
			_, err := c.CoreV1().Nodes().Patch(ctx, lab.Node1, "application/merge-patch+json", []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		},
		"list configmaps": func() error { _, err := c.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); return err },
	}
	for what, f := range allowed {
		if err := f(); err != nil {
			t.Errorf("as %s, %s: %v (the chart's RBAC must allow it)", agentAccount, what, err)
		}
	}
	for what, f := range refused {
		if err := f(); !apierrors.IsForbidden(err) {
			t.Errorf("as %s, %s: %v, want Forbidden by the API server", agentAccount, what, err)
		}
	}
}
