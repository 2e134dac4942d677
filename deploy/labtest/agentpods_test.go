package labtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/layerscope/layerscope/internal/labk8s"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// agentScraper reads the in-pod agents' metrics through scrapeProxy.
type agentScraper struct {
	client *http.Client
	lab    *lab.Lab
}

func newAgentScraper(t *testing.T, l *lab.Lab) *agentScraper {
	t.Helper()
	u, err := url.Parse(labk8s.Proxy(t, l))
	if err != nil {
		t.Fatal(err)
	}
	return &agentScraper{lab: l, client: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u)}}}
}

// metric returns the sum of the samples of name whose labels include
// labels in the metrics of node's agent, and whether there is any.
func (s *agentScraper) metric(node, name string, labels map[string]string) (float64, bool, error) {
	n, ok := s.lab.Node(node)
	if !ok {
		return 0, false, fmt.Errorf("no node %s", node)
	}
	resp, err := s.client.Get(fmt.Sprintf("http://%s:9431/metrics", n.IP))
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, false, fmt.Errorf("%s: %s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, false, err
	}
	f := fams[name]
	if f == nil {
		return 0, false, nil
	}
	var sum float64
	found := false
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		}
	}
	return sum, found, nil
}

// waitMetric polls node's agent every 50 ms until cond holds for the
// metric, and returns how long that took.
func (s *agentScraper) waitMetric(t *testing.T, timeout time.Duration, node, name string, labels map[string]string, what string, cond func(v float64, ok bool) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var v float64
	var ok bool
	var err error
	for time.Since(start) < timeout {
		if v, ok, err = s.metric(node, name, labels); err == nil && cond(v, ok) {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s%v on %s is %v (present %v, err %v) after %v", what, name, labels, node, v, ok, err, timeout)
	return 0
}

// kubectl runs the lab's kubectl against its API server.
func kubectl(t *testing.T, l *lab.Lab, args ...string) string {
	t.Helper()
	kc, err := l.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(testns.K8sBin(t), "kubectl"), append([]string{"--kubeconfig", kc}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// applyKustomization applies deploy/daemonset-without-operator as a user
// with a mirror would: an overlay naming the lab's image, and without the
// ClusterRoleBinding when rbac is false.
func applyKustomization(t *testing.T, l *lab.Lab, rbac bool) {
	t.Helper()
	patches := ""
	if !rbac {
		patches = `patches:
  - patch: |-
      $patch: delete
      apiVersion: rbac.authorization.k8s.io/v1
      kind: ClusterRoleBinding
      metadata:
        name: layerscope
`
	}
	kubectl(t, l, "apply", "--server-side", "-k", labOverlay(t, kustomizeLite, patches))
}

// labOverlay writes a kustomization over the kustomization in base that
// names the lab's image, with patches (YAML of the patches field, or
// empty), and returns its directory.
func labOverlay(t *testing.T, base, patches string) string {
	t.Helper()
	abs, err := filepath.Abs(base)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, abs) // kustomize takes no absolute resource
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
images:
  - name: ghcr.io/layerscope/layerscope
    newName: layerscope.local/layerscope
    newTag: lab
`, rel) + patches
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// agentLogs returns the logs of every agent pod, by node.
func agentLogs(t *testing.T, l *lab.Lab) map[string]string {
	t.Helper()
	c, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	pods, err := c.CoreV1().Pods(chartNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=layerscope"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		out[p.Spec.NodeName] = kubectl(t, l, "logs", "-n", chartNamespace, p.Name)
	}
	return out
}

const (
	logRefused     = "Kubernetes API refused the agent"
	logUnreachable = "Kubernetes API not reachable"
	logBack        = "Kubernetes metadata available again"
)

// TestAgentPodsAndTheAPI runs the kustomize DaemonSet in the lab's real
// cluster (kube-proxy nftables) and checks the agents in the pods against
// the real API server: without their ClusterRoleBinding they log the
// refusal once, stay Ready and export packet and conntrack metrics, and
// recover when it is applied; pods, Services and EndpointSlices added,
// changed and deleted through the API reach their metrics within 2 s; an
// API server gone for 30 s gives one clear log line per agent while the
// packet and conntrack metrics go on, and its return another.
func TestAgentPodsAndTheAPI(t *testing.T) {
	l := labk8s.KubeletLab(t, lab.KubeProxyNFTables, "a")
	c, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := newAgentScraper(t, l)
	nodes := []string{lab.Node1, lab.Node2}
	synced := map[string]string{"source": "api"}

	// Without RBAC.
	start := time.Now()
	applyKustomization(t, l, false)
	labk8s.WaitDaemonSet(t, c, 60*time.Second)
	t.Logf("kubectl apply -k to the DaemonSet Ready on both nodes: %v", time.Since(start).Round(time.Millisecond))
	if _, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		s.waitMetric(t, 20*time.Second, n, "layerscope_capture_packets_total", nil, "packets counted without RBAC", func(v float64, ok bool) bool { return ok && v > 0 })
		s.waitMetric(t, 20*time.Second, n, "layerscope_conntrack_entries", nil, "conntrack exported without RBAC", func(v float64, ok bool) bool { return ok && v > 0 })
		s.waitMetric(t, 5*time.Second, n, "layerscope_kube_metadata_synced", synced, "metadata not synced without RBAC", func(v float64, ok bool) bool { return ok && v == 0 })
	}
	time.Sleep(5 * time.Second) // the informers retry meanwhile
	for n, log := range agentLogs(t, l) {
		if got := strings.Count(log, logRefused); got != 1 {
			t.Errorf("agent on %s logged %q %d times, want once:\n%s", n, logRefused, got, log)
		}
	}

	// The binding applied: the agents recover by themselves.
	applyKustomization(t, l, true)
	for _, n := range nodes {
		d := s.waitMetric(t, 60*time.Second, n, "layerscope_kube_metadata_synced", synced, "metadata synced once the binding exists", func(v float64, ok bool) bool { return ok && v == 1 })
		t.Logf("%s: metadata synced %v after the ClusterRoleBinding was applied", n, d.Round(time.Millisecond))
	}

	// Changes through the API reach the agents' metrics within 2 s.
	endpoints := func(svc string) map[string]string { return map[string]string{"namespace": "default", "service": svc} }
	within := func(what string, d time.Duration) {
		t.Logf("%s reached the agent in %v", what, d.Round(time.Millisecond))
		if d > 2*time.Second {
			t.Errorf("%s reached the agent in %v, want within 2s", what, d)
		}
	}
	probe := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(lab.ServicePort)}}},
	}
	if _, err := c.CoreV1().Services("default").Create(ctx, probe, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	within("a new Service and its EndpointSlice", s.waitMetric(t, 10*time.Second, lab.Node1, "layerscope_service_endpoints", endpoints("probe"), "new Service",
		func(v float64, ok bool) bool { return ok && v == 3 }))
	patch := []byte(`{"spec":{"selector":{"app":"nothing"}}}`)
	if _, err := c.CoreV1().Services("default").Patch(ctx, "probe", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	within("a Service's selector changed", s.waitMetric(t, 10*time.Second, lab.Node2, "layerscope_service_endpoints", endpoints("probe"), "Service updated",
		func(v float64, ok bool) bool { return ok && v == 0 }))
	if err := c.CoreV1().Services("default").Delete(ctx, "probe", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	within("a Service deleted", s.waitMetric(t, 10*time.Second, lab.Node1, "layerscope_service_endpoints", endpoints("probe"), "Service deleted",
		func(_ float64, ok bool) bool { return !ok }))
	if err := l.DeletePod(ctx, lab.PodB); err != nil {
		t.Fatal(err)
	}
	within("a pod deleted", s.waitMetric(t, 10*time.Second, lab.Node2, "layerscope_service_endpoints", endpoints(lab.ServiceObject), "pod deleted",
		func(v float64, ok bool) bool { return ok && v == 2 }))
	if err := l.RestorePod(ctx, lab.PodB); err != nil {
		t.Fatal(err)
	}
	// The kubelet starts the pod first: time from its EndpointSlice.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		eps, err := l.Endpoints(ctx)
		if err == nil && len(eps) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod-b not back in the EndpointSlice: %v %v", eps, err)
		}
	}
	within("a pod ready again in the EndpointSlice", s.waitMetric(t, 10*time.Second, lab.Node1, "layerscope_service_endpoints", endpoints(lab.ServiceObject), "pod added",
		func(v float64, ok bool) bool { return ok && v == 3 }))

	// The API server away for 30 s.
	before := map[string]float64{}
	for _, n := range nodes {
		before[n], _, _ = s.metric(n, "layerscope_capture_packets_total", nil)
	}
	if err := l.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	away := time.Now()
	for time.Since(away) < 30*time.Second {
		if _, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	for _, n := range nodes {
		s.waitMetric(t, 5*time.Second, n, "layerscope_capture_packets_total", nil, "packets counted with the API server away",
			func(v float64, ok bool) bool { return ok && v > before[n] })
		s.waitMetric(t, 5*time.Second, n, "layerscope_conntrack_entries", nil, "conntrack exported with the API server away",
			func(v float64, ok bool) bool { return ok && v > 0 })
	}
	if err := l.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		d := s.waitMetric(t, 60*time.Second, n, "layerscope_kube_metadata_synced", synced, "metadata synced after the API server came back",
			func(v float64, ok bool) bool { return ok && v == 1 })
		t.Logf("%s: metadata synced %v after the API server came back", n, d.Round(time.Millisecond))
	}
	for n, log := range agentLogs(t, l) {
		if got := strings.Count(log, logUnreachable); got != 1 {
			t.Errorf("agent on %s logged %q %d times during the outage, want once:\n%s", n, logUnreachable, got, log)
		}
		if !strings.Contains(log, logBack) {
			t.Errorf("agent on %s did not log %q:\n%s", n, logBack, log)
		}
	}

	checkOperatorInstall(t, l, c)
	checkBasicAuthInstall(ctx, t, l, s)
}

// checkOperatorInstall installs the Prometheus Operator's ServiceMonitor
// and PrometheusRule CRDs (as released) and applies the whole of
// deploy/daemonset over the running objects: the real API server accepts
// the ServiceMonitor and the PrometheusRule, validated strictly against
// the CRDs' schemas, and the DaemonSet stays Ready. The chart's install
// that follows (checkBasicAuthInstall) then finds the CRDs and must render
// both kinds too.
func checkOperatorInstall(t *testing.T, l *lab.Lab, c kubernetes.Interface) {
	t.Helper()
	crds := testns.Tool{Name: "prometheus-operator-crds", Version: "v0.89.0", Env: "LAYERSCOPE_PROMETHEUS_OPERATOR_CRDS",
		Script: ".ci/k8stools.sh", Skip: "LAYERSCOPE_NO_K8STOOLS"}.Path(t)
	kubectl(t, l, "apply", "--server-side", "-f", crds)
	kubectl(t, l, "wait", "--for=condition=Established", "--timeout=30s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	dir := labOverlay(t, filepath.Join(kustomizeLite, "..", "daemonset"), "")
	kubectl(t, l, "apply", "--server-side", "--validate=strict", "-k", dir)
	for _, obj := range []string{"servicemonitor/layerscope", "prometheusrule/layerscope"} {
		kubectl(t, l, "-n", chartNamespace, "get", obj)
	}
	labk8s.WaitDaemonSet(t, c, 60*time.Second)
}

// checkBasicAuthInstall replaces the kustomize DaemonSet by the chart's
// (named layerscope-secure beside the kustomize objects) with a web
// config that puts basic auth on the metrics port: the kubelets' probes,
// on the agents' own health listener, keep the pods Ready, and the
// metrics answer only with the credentials.
func checkBasicAuthInstall(ctx context.Context, t *testing.T, l *lab.Lab, s *agentScraper) {
	t.Helper()
	c, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	// The agents use the nodes' ports: one DaemonSet at a time.
	kubectl(t, l, "-n", chartNamespace, "delete", "daemonset", chartRelease, "--cascade=orphan")
	// Right after the API server's return a kubelet may still be backing
	// off its watch of pods (client-go's reflector, up to 30 s) before it
	// sees the deletion, then gives the agent its grace period.
	deleted := time.Now()
	kubectl(t, l, "-n", chartNamespace, "delete", "pods", "-l", "app.kubernetes.io/name=layerscope", "--wait=true", "--timeout=150s")
	t.Logf("the kustomize agent pods deleted in %v", time.Since(deleted).Round(time.Millisecond))
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "layerscope-web", Namespace: chartNamespace},
		StringData: map[string]string{"web-config.yml": "basic_auth_users:\n  prometheus: " + string(hash) + "\n"},
	}
	if _, err := c.CoreV1().Secrets(chartNamespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	labk8s.HelmInstall(t, l, "webConfig.secretName=layerscope-web", "fullnameOverride=layerscope-secure")
	labk8s.WaitDaemonSetNamed(t, c, "layerscope-secure", 60*time.Second)
	// The CRDs exist now (checkOperatorInstall): the chart rendered both.
	for _, obj := range []string{"servicemonitor/layerscope-secure", "prometheusrule/layerscope-secure"} {
		kubectl(t, l, "-n", chartNamespace, "get", obj)
	}
	t.Logf("helm install with basic auth on the metrics port to the DaemonSet Ready: %v", time.Since(start).Round(time.Millisecond))
	for _, n := range l.Nodes() {
		u := fmt.Sprintf("http://%s:%d/metrics", n.IP, labk8s.MetricsPort)
		for _, tc := range []struct {
			user string
			want int
		}{{"", http.StatusUnauthorized}, {"prometheus", http.StatusOK}} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, "scrape-secret")
			}
			// Ready is the health listener's answer; the first scrape of
			// an agent just started may wait on a loaded host: retry a
			// transport error for a while (the statuses are the test).
			var resp *http.Response
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
				if resp, err = s.client.Do(req.Clone(ctx)); err == nil || time.Now().After(deadline) {
					break
				}
				t.Logf("%s: %v; retrying", u, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s as %q: %s, want %d", u, tc.user, resp.Status, tc.want)
			}
		}
	}
}
