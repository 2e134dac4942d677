package metrics

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerscope/layerscope/agent/conntrack"
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/agent/workloads"
	"github.com/layerscope/layerscope/exporters/prom"
)

func metaPod(name, node, ip, rs, hash string) *corev1.Pod {
	t := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"pod-template-hash": hash},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: rs, Controller: &t}}},
		Spec:   corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
}

// gather collects sources through a registry, which refuses duplicate
// series, and returns the exposition.
func gather(t *testing.T, sources ...prom.Source) string {
	t.Helper()
	col, err := prom.NewCollector(nil, sources...)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := prom.NewRegistry(col)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if n := mf.GetName(); strings.HasPrefix(n, "layerscope_service") || strings.HasPrefix(n, "layerscope_workload") || strings.HasPrefix(n, "layerscope_kube") ||
			strings.HasPrefix(n, "layerscope_policy") {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.String()
}

func TestServiceLabels(t *testing.T) {
	store := kube.NewStore(kube.ModeFile, "node-1")
	store.SetPod(metaPod("pod-a", "node-1", "10.244.0.5", "web-6d5f7b8c9d", "6d5f7b8c9d"))
	store.SetService(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "my-service"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.42", Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 8080, NodePort: 30080}}},
	})
	store = kube.SourceOf(store).Store() // synced
	services := correlate.NewServices(correlate.ServicesConfig{})
	now := time.Now().UnixNano()
	podA := netip.MustParseAddrPort("10.244.0.5:8080")
	for i, svc := range []string{
		"10.96.0.42:8080", "10.96.0.42:8080", // by ClusterIP
		"10.0.0.10:30080", "10.0.0.11:30080", // the NodePort on two node addresses: one series
		"10.96.0.99:8080", // no such Service: named by its address
	} {
		services.Add(&correlate.Conn{ID: uint32(i), Service: netip.MustParseAddrPort(svc), Backend: podA, Proto: flow.ProtoTCP, Outcome: flow.OutcomeClosed}, now)
	}
	got := gather(t, Services(services, store, ServiceOptions{Backends: true}))
	wantLines(t, got,
		`layerscope_service_connections_total{backend="10.244.0.5:8080",namespace="default",outcome="closed",port="8080",protocol="tcp",service="my-service",workload="web"} 2`,
		`layerscope_service_connections_total{backend="10.244.0.5:8080",namespace="default",outcome="closed",port="30080",protocol="tcp",service="my-service",workload="web"} 2`,
		`layerscope_service_connections_total{backend="10.244.0.5:8080",namespace="",outcome="closed",port="8080",protocol="tcp",service="10.96.0.99",workload="web"} 1`,
		`layerscope_service_dead_backend{backend="10.244.0.5:8080",namespace="default",port="30080",protocol="tcp",service="my-service",workload="web"} 0`,
	)
	// By default: per service, no backend label, only dead backends listed.
	got = gather(t, Services(services, store, ServiceOptions{}))
	wantLines(t, got,
		`layerscope_service_connections_total{namespace="default",outcome="closed",port="8080",protocol="tcp",service="my-service"} 2`,
		`layerscope_service_backend_failure_ratio{namespace="",port="8080",protocol="tcp",service="10.96.0.99"} 0`,
		`layerscope_service_folded_series 0`,
	)
	if strings.Contains(got, "backend=") {
		t.Errorf("backend label without the option:\n%s", got)
	}
}

// TestServiceSeriesBudget: beyond the budget, label sets are summed into
// service="other", counted by the folded gauge; a label set keeps its own
// series across scrapes; dead backends of folded services stay named.
func TestServiceSeriesBudget(t *testing.T) {
	store := kube.SourceOf(kube.NewStore(kube.ModeFile, "node-1")).Store()
	services := correlate.NewServices(correlate.ServicesConfig{})
	now := time.Now().UnixNano()
	id := uint32(0)
	add := func(svc, backend string, o flow.Outcome) {
		id++
		services.Add(&correlate.Conn{ID: id, Service: netip.MustParseAddrPort(svc), Backend: netip.MustParseAddrPort(backend), Proto: flow.ProtoTCP, Outcome: o}, now)
	}
	for i := range 5 {
		for b := range 3 {
			add(fmt.Sprintf("10.96.0.%d:80", 10+i), fmt.Sprintf("10.244.0.%d:8080", 10*i+b), flow.OutcomeClosed)
		}
	}
	for range 3 { // a dead backend of a service that will be folded
		add("10.96.0.14:80", "10.244.0.99:8080", flow.OutcomeRefused)
	}
	src := Services(services, store, ServiceOptions{MaxSeries: 3})
	got := gather(t, src)
	wantLines(t, got,
		`layerscope_service_connections_total{namespace="",outcome="closed",port="80",protocol="tcp",service="10.96.0.10"} 3`,
		`layerscope_service_connections_total{namespace="",outcome="closed",port="80",protocol="tcp",service="10.96.0.12"} 3`,
		`layerscope_service_connections_total{namespace="",outcome="closed",port="",protocol="tcp",service="other"} 6`,
		`layerscope_service_connections_total{namespace="",outcome="refused",port="",protocol="tcp",service="other"} 3`,
		`layerscope_service_dead_backend{backend="10.244.0.99:8080",namespace="",port="",protocol="tcp",service="other",workload=""} 1`,
		`layerscope_service_folded_series 2`,
	)
	if n := strings.Count(got, "layerscope_service_backend_failure_ratio{"); n != 4 {
		t.Errorf("%d failure-ratio series, want 3 own and 1 other:\n%s", n, got)
	}
	// A new service with lower address does not take the place of one
	// that has its series.
	add("10.96.0.1:80", "10.244.1.1:8080", flow.OutcomeClosed)
	got = gather(t, src)
	wantLines(t, got,
		`service="10.96.0.10"} 3`,
		`layerscope_service_connections_total{namespace="",outcome="closed",port="",protocol="tcp",service="other"} 7`,
		`layerscope_service_folded_series 3`,
	)
}

// TestWorkloadSeriesBudget: workload label sets beyond the budget are
// summed into workload="other".
func TestWorkloadSeriesBudget(t *testing.T) {
	store := kube.NewStore(kube.ModeFile, "node-1")
	for i := range 4 {
		store.SetPod(metaPod(fmt.Sprintf("pod-%d", i), "node-1", fmt.Sprintf("10.244.0.%d", 10+i), fmt.Sprintf("w%d-6d5f7b8c9d", i), "6d5f7b8c9d"))
	}
	store = kube.SourceOf(store).Store()
	tally := workloads.New(store, false, workloads.DefaultMax)
	for i := range 4 {
		r := &flow.Record{Key: flow.Key{Src: netip.MustParseAddr("10.244.9.9"), Dst: netip.MustParseAddr(fmt.Sprintf("10.244.0.%d", 10+i)), SrcPort: 1, DstPort: 80, Proto: flow.ProtoTCP}, End: flow.EndIdle, Outcome: flow.OutcomeClosed}
		tally.Consume(&correlate.Enriched{Record: r, NAT: &correlate.Translation{}}, time.Now())
	}
	got := gather(t, Workloads(tally, store, 2))
	wantLines(t, got,
		`layerscope_workload_connections_total{namespace="default",outcome="closed",protocol="tcp",side="server",workload="w0"} 1`,
		`layerscope_workload_connections_total{namespace="",outcome="closed",protocol="tcp",side="server",workload="other"} 2`,
		`layerscope_workload_folded_series 2`,
	)
}

// wantLines fails t for each of want that is not a line of got.
func wantLines(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w+"\n") {
			t.Errorf("missing %s in\n%s", w, got)
		}
	}
}

func TestWorkloadSeriesFollowPods(t *testing.T) {
	store := kube.NewStore(kube.ModeFile, "node-1")
	store.SetPod(metaPod("pod-a", "node-1", "10.244.0.5", "web-6d5f7b8c9d", "6d5f7b8c9d"))
	store.SetPod(metaPod("pod-b", "node-1", "10.244.0.8", "web-6d5f7b8c9d", "6d5f7b8c9d"))
	store.SetPod(metaPod("pod-c", "node-2", "10.244.1.8", "web-6d5f7b8c9d", "6d5f7b8c9d"))
	for _, podNames := range []bool{false, true} {
		store = kube.SourceOf(store).Store() // synced
		tally := workloads.New(store, podNames, workloads.DefaultMax)
		countWorkloads := func(_ *kube.Store, r *flow.Record, tr *correlate.Translation, c *correlate.Conn) {
			tally.Consume(&correlate.Enriched{Record: r, NAT: tr, Conn: c}, time.Now())
		}
		rec := func(src, dst string) *flow.Record {
			return &flow.Record{Key: flow.Key{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SrcPort: 1, DstPort: 8080, Proto: flow.ProtoTCP}, End: flow.EndIdle, Outcome: flow.OutcomeClosed}
		}
		countWorkloads(store, rec("10.244.0.5", "10.244.0.8"), &correlate.Translation{}, nil) // a → b: client and server on this node
		countWorkloads(store, rec("10.244.1.8", "10.244.0.5"), &correlate.Translation{}, nil) // c (node-2) → a
		got := gather(t, Workloads(tally, store, 0))
		want := []string{
			`side="client"`, `side="server"`,
		}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("pod names %v: no %s series in\n%s", podNames, w, got)
			}
		}
		if podNames {
			for _, w := range []string{
				`layerscope_workload_connections_total{namespace="default",outcome="closed",pod="pod-a",protocol="tcp",side="client",workload="web"} 1`,
				`layerscope_workload_connections_total{namespace="default",outcome="closed",pod="pod-a",protocol="tcp",side="server",workload="web"} 1`,
				`layerscope_workload_connections_total{namespace="default",outcome="closed",pod="pod-b",protocol="tcp",side="server",workload="web"} 1`,
			} {
				if !strings.Contains(got, w+"\n") {
					t.Errorf("missing %s in\n%s", w, got)
				}
			}
			if strings.Contains(got, `pod="pod-c"`) {
				t.Errorf("pod-c, on node-2, counted on node-1:\n%s", got)
			}
			store.DeletePod("default", "pod-b")
			if got := gather(t, Workloads(tally, store, 0)); strings.Contains(got, `pod="pod-b"`) || !strings.Contains(got, `pod="pod-a"`) {
				t.Errorf("after pod-b's deletion:\n%s", got)
			}
			continue
		}
		w := `layerscope_workload_connections_total{namespace="default",outcome="closed",protocol="tcp",side="server",workload="web"} 2`
		if !strings.Contains(got, w+"\n") {
			t.Errorf("missing %s in\n%s", w, got)
		}
	}
}

// TestKubeSourceEmptyEndpoints: a Service whose EndpointSlice lists no
// endpoint is exported with 0 ready endpoints; without metadata only the
// health gauge is.
func TestKubeSourceEmptyEndpoints(t *testing.T) {
	store := kube.NewStore(kube.ModeFile, "node-1")
	store.SetService(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.7", Selector: map[string]string{"app": "cart"}, Ports: []corev1.ServicePort{{Port: 80}}},
	})
	store.SetEndpointSlice(&discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart-x", Labels: map[string]string{discoveryv1.LabelServiceName: "cart"}},
	})
	store = kube.SourceOf(store).Store() // synced
	noConntrack := func() *conntrack.Watcher { return nil }
	got := gather(t, Kube(store, noConntrack, 0))
	wantLines(t, got,
		`layerscope_service_endpoints{namespace="shop",service="cart"} 0`,
		`layerscope_kube_metadata_synced{source="file"} 1`,
		`layerscope_kube_metadata_objects{kind="endpointslice"} 1`,
	)
	off, err := kube.Open(kube.Config{Mode: kube.ModeOff})
	if err != nil {
		t.Fatal(err)
	}
	got = gather(t, Kube(off.Store(), noConntrack, 0))
	if want := "layerscope_kube_metadata_synced{source=\"off\"} 0\n"; !strings.Contains(got, want) || strings.Count(got, "\nlayerscope_") != 1 {
		t.Errorf("without metadata:\n%s", got)
	}
}
