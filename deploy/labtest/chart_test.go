package labtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/layerscope/layerscope/internal/promtest"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

const (
	chartDir       = "../helm/layerscope"
	kustomizeLite  = "../daemonset-without-operator"
	chartNamespace = "layerscope"
	chartRelease   = "layerscope"
	agentAccount   = "system:serviceaccount:" + chartNamespace + ":" + chartRelease
)

// newKubeletLab builds a Kubernetes lab whose nodes run containerd and a
// kubelet, with the agent's image imported.
func newKubeletLab(t *testing.T, mode lab.KubeProxyMode) *lab.Lab {
	t.Helper()
	k8sBin := testns.K8sBin(t)
	if _, err := exec.LookPath("containerd"); err != nil {
		if os.Getenv("LAYERSCOPE_NO_KUBERNETES") == "1" {
			t.Skip("containerd not installed and LAYERSCOPE_NO_KUBERNETES=1")
		}
		t.Fatal("containerd not installed: run .ci/packages.sh (or set LAYERSCOPE_NO_KUBERNETES=1 to skip)")
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := lab.New(ctx, &lab.Config{Prefix: "h" + hex.EncodeToString(b[:]) + "-", StateDir: t.TempDir(),
		Kubernetes: true, KubeProxyMode: mode, K8sBin: k8sBin, Kubelets: true, LayerscopeBinary: testns.LayerscopeBinary(t)})
	if err != nil {
		t.Fatalf("kubernetes lab with kubelets: %v", err)
	}
	t.Logf("kubernetes lab with kubelets (%s) up in %v", mode, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	return l
}

// helmInstall installs the chart into the lab's cluster as a user would,
// with the lab's image.
func helmInstall(t *testing.T, kubeconfig string, set ...string) {
	t.Helper()
	helm := testns.Tool{Name: "helm", Version: "v3.22.0", Env: "LAYERSCOPE_HELM", Script: ".ci/k8stools.sh", Skip: "LAYERSCOPE_NO_K8STOOLS"}.Path(t)
	home := t.TempDir()
	args := []string{"install", chartRelease, chartDir, "--namespace", chartNamespace, "--create-namespace", "--kubeconfig", kubeconfig,
		"--set", "image.registry=layerscope.local", "--set", "image.repository=layerscope", "--set", "image.tag=lab", "--set", "image.pullPolicy=Never"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// waitDaemonSet waits until the DaemonSet runs a Ready agent on both
// nodes.
func waitDaemonSet(t *testing.T, c kubernetes.Interface, timeout time.Duration) *appsv1.DaemonSet {
	t.Helper()
	var ds *appsv1.DaemonSet
	var err error
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		ds, err = c.AppsV1().DaemonSets(chartNamespace).Get(context.Background(), chartRelease, metav1.GetOptions{})
		if err == nil && ds.Status.DesiredNumberScheduled == 2 && ds.Status.NumberReady == 2 && ds.Status.UpdatedNumberScheduled == 2 {
			return ds
		}
		if time.Now().After(deadline) {
			break
		}
	}
	pods, _ := c.CoreV1().Pods(chartNamespace).List(context.Background(), metav1.ListOptions{})
	var st []string
	if pods != nil {
		for _, p := range pods.Items {
			st = append(st, fmt.Sprintf("%s on %s: %s %+v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.ContainerStatuses))
		}
	}
	t.Fatalf("the DaemonSet is not Ready on both nodes within %v (%v; status %+v)\npods: %s", timeout, err, ds.Status, strings.Join(st, "\n"))
	return nil
}

// scrapeProxy serves an HTTP proxy on the host's loopback through which
// Prometheus scrapes the agents at their nodes' addresses: it dials from
// the control plane's namespace (which has no route out of the lab) and
// refuses any host but the lab's nodes.
func scrapeProxy(t *testing.T, l *lab.Lab) string {
	t.Helper()
	rc, err := l.KubeRESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, n := range l.Nodes() {
		nodes[n.IP.String()] = true
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || !nodes[host] {
			return nil, fmt.Errorf("%s is not a lab node", addr)
		}
		return rc.Dial(ctx, network, addr)
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Host == "" {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		out := r.Clone(r.Context())
		out.RequestURI = ""
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		maps.Copy(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return srv.URL
}

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
	l := newKubeletLab(t, mode)
	kubeconfig, err := l.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	start := time.Now()
	helmInstall(t, kubeconfig, "extraArgs={--conntrack-top-n=5}")
	ds := waitDaemonSet(t, c, 60*time.Second)
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

	proxy := scrapeProxy(t, l)
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

	if _, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Traffic(ctx, lab.ScenarioDeadBackend, lab.TrafficOptions{Count: 30}); err != nil {
		t.Fatal(err)
	}
	waitAlerts(t, prom, 30*time.Second, "dead backend alert firing", includes("LayerscopeDeadBackend"))
	dead, err := prom.Query(`max by (service, namespace, backend) (layerscope_service_dead_backend{job="layerscope"}) == 1`)
	if err != nil {
		t.Fatal(err)
	}
	podC, _ := l.Pod(lab.PodC)
	want := []string{"backend=" + netip.AddrPortFrom(podC.IP, lab.ServicePort).String() + ",namespace=default,service=my-service"}
	if got := promtest.Series(dead, "backend", "namespace", "service"); !slices.Equal(got, want) {
		t.Errorf("dead backends %v, want %v", got, want)
	}
	if err := l.DeletePod(ctx, lab.PodC); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitKubeProxy(ctx, lab.PodA, lab.PodB); err != nil {
		t.Fatal(err)
	}
	waitAlerts(t, prom, 20*time.Second, "stale DNAT alert firing after pod-c was deleted", includes("LayerscopeStaleDNATEntries"))

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
