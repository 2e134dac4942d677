package labtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	corev1 "k8s.io/api/core/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/layerscope/layerscope/internal/labk8s"
	"github.com/layerscope/layerscope/internal/otlptest"
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
// the API; their traces reach a real Collector, stitched across the nodes
// and named with the agent pods. Under nftables the agents run the eBPF
// fast path (captureOffload) and must find the same.
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

	// The agents export every connection's trace to a real Collector,
	// reached from the nodes through a relay in the control plane's
	// namespace.
	recv := otlptest.NewReceiver(t)
	col := otlptest.StartCollector(t, recv)
	otlpAddr := relayFromControlPlane(t, l, col.HTTPAddr)

	// Under nftables the agents run with the eBPF fast path: the same
	// findings must come from them.
	offload := mode == lab.KubeProxyNFTables
	start := time.Now()
	labk8s.HelmInstall(t, l, "extraArgs={--conntrack-top-n=5,--otlp-sample-ratio=1}",
		"extraEnv[0].name=OTEL_EXPORTER_OTLP_ENDPOINT", "extraEnv[0].value=http://"+otlpAddr.String(),
		fmt.Sprintf("captureOffload.enabled=%v", offload))
	ds := labk8s.WaitDaemonSet(t, c, 60*time.Second)
	t.Logf("helm install to the DaemonSet Ready on both nodes: %v", time.Since(start).Round(time.Millisecond))
	pods, err := c.CoreV1().Pods(chartNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + chartRelease})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	agentPods := map[string]corev1.Pod{} // by node
	for _, p := range pods.Items {
		nodes = append(nodes, p.Spec.NodeName)
		agentPods[p.Spec.NodeName] = p
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
	checkPodTraces(t, recv, agentPods)
	if offload {
		checkOffload(t, prom)
	}

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

// checkOffload checks that the in-pod agents, with the chart's BPF
// capability, run the eBPF fast path rather than falling back, and that it
// counted frames in the kernel.
func checkOffload(t *testing.T, prom *promtest.Server) {
	t.Helper()
	fallbacks, err := prom.Query(`sum by (node, reason) (layerscope_capture_offload_fallbacks_total{job="layerscope"}) > 0`)
	if err != nil {
		t.Fatal(err)
	}
	if len(fallbacks) > 0 {
		t.Errorf("the in-pod agents fell back from the eBPF fast path: %v", promtest.Series(fallbacks, "node", "reason"))
	}
	counted, err := prom.Query(`sum by (node) (layerscope_capture_offload_counted_packets_total{job="layerscope"})`)
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, s := range counted {
		t.Logf("%s: %.0f frames counted in the kernel", s.Metric["node"], s.Value)
		total += s.Value
	}
	if len(counted) != 2 || total == 0 {
		t.Errorf("frames counted in the kernel by the in-pod agents: %v, want both nodes' series and some counted", counted)
	}
}

// relayFromControlPlane listens on the control plane's address, in its
// namespace (which the nodes route to), and relays each connection to
// addr on the host's loopback: the in-pod agents reach the test's
// Collector without any route out of the lab.
func relayFromControlPlane(t *testing.T, l *lab.Lab, addr string) netip.AddrPort {
	t.Helper()
	ns, err := l.Namespace(lab.ControlPlane)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(lab.ControlPlaneIP, 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			c.Close()
			return false
		}
		conns[c] = true
		return true
	}
	// The agents keep their connections to the Collector open: close
	// them, then wait for the copies to end.
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			if !track(in) {
				return
			}
			wg.Go(func() {
				out, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil || !track(out) {
					in.Close()
					return
				}
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(out, in)
					_ = out.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				_, _ = io.Copy(in, out)
				_ = in.(*net.TCPConn).CloseWrite()
				<-done
				in.Close()
				out.Close()
			})
		}
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// checkPodTraces checks the spans the in-pod agents exported through the
// Collector: each node's spans carry its agent pod's name, namespace and
// uid from the downward API and the agent's version, and a connection
// from one node's pod to the other's through the Service is one trace
// whose server span (the backend's node) hangs under the client's.
func checkPodTraces(t *testing.T, recv *otlptest.Receiver, agentPods map[string]corev1.Pod) {
	t.Helper()
	type connSpans struct{ client, server *otlptest.Span }
	var (
		byTrace  map[string]*connSpans
		stitched *connSpans
		res      map[string]map[string]string // node's resource
	)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		byTrace, stitched, res = map[string]*connSpans{}, nil, map[string]map[string]string{}
		for _, sp := range recv.All() {
			node := sp.Res["k8s.node.name"]
			res[node] = sp.Res
			if sp.Attr("layerscope.hop.index") != nil || !strings.HasPrefix(sp.Span.Name, "tcp ") {
				continue
			}
			c := byTrace[string(sp.Span.TraceId)]
			if c == nil {
				c = &connSpans{}
				byTrace[string(sp.Span.TraceId)] = c
			}
			switch sp.Span.Kind {
			case tracepb.Span_SPAN_KIND_CLIENT:
				c.client = &sp
			case tracepb.Span_SPAN_KIND_SERVER:
				c.server = &sp
			}
			if c.client != nil && c.server != nil && c.client.Res["k8s.node.name"] != c.server.Res["k8s.node.name"] {
				stitched = c
			}
		}
		if (stitched != nil && len(res) == 2) || time.Now().After(deadline) {
			break
		}
	}
	for node, p := range agentPods {
		r := res[node]
		if r == nil {
			t.Errorf("no span from the agent on %s (%d spans in all)", node, len(recv.All()))
			continue
		}
		want := map[string]string{"k8s.pod.name": p.Name, "k8s.namespace.name": p.Namespace, "k8s.pod.uid": string(p.UID)}
		for k, v := range want {
			if r[k] != v {
				t.Errorf("%s's spans: resource %s=%q, want %q", node, k, r[k], v)
			}
		}
		if r["service.version"] == "" {
			t.Errorf("%s's spans carry no service.version: %v", node, r)
		}
	}
	if stitched == nil {
		t.Fatalf("no connection traced by both nodes' agents in one trace (%d traces)", len(byTrace))
	}
	if !bytes.Equal(stitched.server.Span.ParentSpanId, stitched.client.Span.SpanId) {
		t.Errorf("the server span's parent %x is not the client span %x", stitched.server.Span.ParentSpanId, stitched.client.Span.SpanId)
	}
	if b := stitched.client.Attr("layerscope.backend").GetStringValue(); b == "" {
		t.Errorf("the client span names no backend")
	}
	t.Logf("%d connection traces from the in-pod agents; %s on %s to %s on %s stitched",
		len(byTrace), stitched.client.Span.Name, stitched.client.Res["k8s.node.name"], stitched.client.Attr("layerscope.backend").GetStringValue(), stitched.server.Res["k8s.node.name"])
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
