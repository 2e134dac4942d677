package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"

	corev1 "k8s.io/api/core/v1"

	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/internal/otlptest"
	"github.com/layerscope/layerscope/internal/promtest"
	"github.com/layerscope/layerscope/lab"
)

// promSample is one sample of a scrape: its labels and value.
type promSample struct {
	labels map[string]string
	value  float64
}

// samples returns the samples of the metric name in a scrape.
func samples(body, name string) []promSample {
	var out []promSample
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				s := promSample{labels: map[string]string{}}
				fmt.Sscan(v, &s.value)
				out = append(out, s)
			}
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		s := promSample{labels: map[string]string{}}
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			s.labels[k] = strings.Trim(v, `"`)
		}
		fmt.Sscan(value, &s.value)
		out = append(out, s)
	}
	return out
}

// tally sums the samples of name by the values of the labels keys.
func tally(body, name string, keys ...string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples(body, name) {
		var k []string
		for _, key := range keys {
			k = append(k, s.labels[key])
		}
		out[strings.Join(k, " ")] += s.value
	}
	return out
}

// waitFor scrapes a until check returns "" (or 30 s pass) and returns the
// last scrape and the last complaint.
func waitFor(t *testing.T, a *Agent, check func(body string) string) string {
	t.Helper()
	var why string
	for deadline := time.Now().Add(30 * time.Second); ; {
		body := scrapeAgent(t, a)
		if why = check(body); why == "" {
			return ""
		}
		if time.Now().After(deadline) {
			return why
		}
	}
}

// conntrackDNATTo counts the entries of a lab node's conntrack table
// DNATed to backend (read with conntrack -L, never written).
func conntrackDNATTo(t *testing.T, l *lab.Lab, node string, backend netip.Addr) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.NetNS(node), "conntrack", "-L", "-p", "tcp", "--reply-src", backend.String()).Output()
	if err != nil {
		t.Fatalf("conntrack -L in %s: %v", node, err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		// The original destination is the ClusterIP or a NodePort.
		if strings.Contains(line, "dst="+lab.ServiceVIP.String()+" ") || strings.Contains(line, fmt.Sprintf("dport=%d ", lab.NodePort)) {
			n++
		}
	}
	return n
}

// TestLiveKubeMetadata runs node-1's agent with the lab's metadata file
// through the service scenario: the service metrics name the Service, its
// namespace, port and the backends' workloads with the scenario's counts;
// the workload metrics count node-1's pods; the spans carry the k8s.*
// attributes. Then the metadata changes as if pod-c had died (removed from
// the EndpointSlice; the kernel's conntrack entries to it stay): its
// entries are reported stale, and the deleted pods' series disappear.
func TestLiveKubeMetadata(t *testing.T) {
	l := newLab(t)
	meta := filepath.Join(t.TempDir(), "metadata.yaml")
	if err := l.WriteMetadata(meta); err != nil {
		t.Fatal(err)
	}
	recv := otlptest.NewReceiver(t)
	col := otlptest.StartCollector(t, recv)
	a, err := New(Config{
		NetNS: l.NetNS(lab.Node1), MetricsAddr: "127.0.0.1:0", Node: lab.Node1,
		Kube:    KubeConfig{Mode: kube.ModeFile, File: meta, ReloadInterval: 200 * time.Millisecond, ServiceBackends: true},
		Capture: CaptureConfig{FlowTable: &flowtable.Config{MaxEntries: 4096, ClosedTimeout: 500 * time.Millisecond, SweepInterval: 200 * time.Millisecond}},
		Traces:  TracesConfig{Enabled: true, Endpoint: col.HTTPAddr, Protocol: "http/protobuf", Insecure: true, SampleRatio: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	body := scrapeAgent(t, a)
	for _, want := range []string{
		`layerscope_kube_metadata_synced{source="file"} 1`,
		`layerscope_kube_metadata_objects{kind="pod"} 4`,
		`layerscope_kube_metadata_objects{kind="service"} 1`,
		`layerscope_kube_metadata_objects{kind="endpointslice"} 1`,
		`layerscope_service_endpoints{namespace="default",service="my-service"} 3`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}

	r, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node1, _ := l.Node(lab.Node1)
	svcWant := map[string]float64{} // namespace service port backend workload outcome
	wlWant := map[string]float64{}  // namespace workload side outcome
	var toPodC int                  // requests DNATed on node-1 to pod-c
	local := map[string]bool{lab.PodA: true, lab.PodB: true}
	for _, q := range r.Requests {
		if !q.OK() {
			t.Fatalf("request failed: %+v", q)
		}
		be, ok := l.Pod(q.DNATBackend)
		if !ok {
			t.Fatalf("request %+v: no DNAT backend", q)
		}
		if local[q.Client] {
			wlWant["default web client closed"]++
		}
		if local[q.DNATBackend] {
			wlWant["default web server closed"]++
		}
		if q.NATNode != lab.Node1 {
			continue
		}
		port := lab.ServicePort
		if q.Target.Addr() == node1.IP {
			port = lab.NodePort
		}
		svcWant[fmt.Sprintf("default my-service %d %s %s closed", port, netip.AddrPortFrom(be.IP, lab.ServicePort), lab.WorkloadOf(be.Name))]++
		if q.DNATBackend == lab.PodC {
			toPodC++
		}
	}
	if len(svcWant) < 4 || toPodC == 0 {
		t.Fatalf("the scenario DNATed too little on node-1 to test: %v", svcWant)
	}
	why := waitFor(t, a, func(body string) string {
		got := tally(body, "layerscope_service_connections_total", "namespace", "service", "port", "backend", "workload", "outcome")
		if fmt.Sprint(got) != fmt.Sprint(svcWant) {
			return fmt.Sprintf("service connections:\n got %v\nwant %v", got, svcWant)
		}
		got = tally(body, "layerscope_workload_connections_total", "namespace", "workload", "side", "outcome")
		if fmt.Sprint(got) != fmt.Sprint(wlWant) {
			return fmt.Sprintf("workload connections:\n got %v\nwant %v", got, wlWant)
		}
		return ""
	})
	if why != "" {
		t.Error(why)
	}
	promtest.CheckMetrics(t, promtest.Promtool(t), "node-1 with Kubernetes metadata", scrapeAgent(t, a))

	// Spans: pod-a's connections through the Service, on node-1 (the
	// client's node), carry pod-a's names and the Service's.
	podA, _ := l.Pod(lab.PodA)
	var found bool
	for deadline := time.Now().Add(20 * time.Second); !found && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, sp := range recv.All() {
			if sp.Attr("client.address").GetStringValue() != podA.IP.String() || sp.Attr("layerscope.service.vip") == nil {
				continue
			}
			got := map[string]string{}
			for _, k := range []string{"k8s.namespace.name", "k8s.pod.name", "k8s.deployment.name", "k8s.service.name", "k8s.node.name", "layerscope.backend.pod"} {
				got[k] = sp.Attr(k).GetStringValue()
			}
			want := map[string]string{"k8s.namespace.name": "default", "k8s.pod.name": lab.PodA, "k8s.deployment.name": lab.WorkloadWeb,
				"k8s.service.name": lab.ServiceObject, "k8s.node.name": lab.Node1, "layerscope.backend.pod": got["layerscope.backend.pod"]}
			if !strings.HasPrefix(got["layerscope.backend.pod"], "default/pod-") {
				t.Errorf("span %s: layerscope.backend.pod %q", sp.Span.Name, got["layerscope.backend.pod"])
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("span %s attributes %v, want %v", sp.Span.Name, got, want)
			}
			found = true
			break
		}
	}
	if !found {
		t.Error("no span of pod-a's service traffic arrived")
	}

	// pod-c dies: the EndpointSlice drops it, the pods of web go away. The
	// kernel's entries DNATed to pod-c stay (TIME_WAIT).
	if n := sample(scrapeAgent(t, a), "layerscope_service_stale_conntrack_entries{"); n != -1 {
		t.Errorf("stale entries reported while every backend is an endpoint: %v", n)
	}
	objs, err := kube.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	var kept []runtime.Object
	for _, o := range objs {
		switch v := o.(type) {
		case *discoveryv1.EndpointSlice:
			var eps []discoveryv1.Endpoint
			for _, e := range v.Endpoints {
				if e.TargetRef.Name != lab.PodC {
					eps = append(eps, e)
				}
			}
			v.Endpoints = eps
		case *corev1.Pod:
			if v.Name == lab.PodC || v.Name == lab.PodB {
				continue
			}
		}
		kept = append(kept, o)
	}
	if err := kube.WriteFile(meta, kept); err != nil {
		t.Fatal(err)
	}
	podC, _ := l.Pod(lab.PodC)
	staleKey := `layerscope_service_stale_conntrack_entries{backend="` + netip.AddrPortFrom(podC.IP, lab.ServicePort).String() + `",namespace="default",service="my-service"} `
	why = waitFor(t, a, func(body string) string {
		if n := sample(body, `layerscope_service_endpoints{namespace="default",service="my-service"} `); n != 2 {
			return fmt.Sprintf("ready endpoints %v, want 2", n)
		}
		// The entries expire on the kernel's clock: compare with a read of
		// the table around the scrape.
		before := conntrackDNATTo(t, l, lab.Node1, podC.IP)
		got := sample(body, staleKey)
		after := conntrackDNATTo(t, l, lab.Node1, podC.IP)
		if before == 0 {
			return "no conntrack entry DNATed to pod-c left on node-1"
		}
		if got < float64(after) || got > float64(before) {
			return fmt.Sprintf("%s= %v, conntrack -L counts %d then %d", staleKey, got, before, after)
		}
		// pod-b was deleted; pod-a keeps web alive.
		wl := tally(body, "layerscope_workload_connections_total", "workload")
		if wl["web"] == 0 {
			return fmt.Sprintf("workload web gone with pod-a still there: %v", wl)
		}
		return ""
	})
	if why != "" {
		t.Error(why)
	}
	t.Logf("%d requests DNATed to pod-c on node-1; %d entries left", toPodC, conntrackDNATTo(t, l, lab.Node1, podC.IP))

	// The last pod of web goes: its workload series go with it.
	var noWeb []runtime.Object
	for _, o := range kept {
		if p, ok := o.(*corev1.Pod); ok && p.Name == lab.PodA {
			continue
		}
		noWeb = append(noWeb, o)
	}
	if err := kube.WriteFile(meta, noWeb); err != nil {
		t.Fatal(err)
	}
	why = waitFor(t, a, func(body string) string {
		if wl := tally(body, "layerscope_workload_connections_total", "workload"); len(wl) != 0 {
			return fmt.Sprintf("workload series after their pods' deletion: %v", wl)
		}
		return ""
	})
	if why != "" {
		t.Error(why)
	}
}

// TestLiveKubeAPIStaleDNAT runs node-1's agent with its metadata from the
// Kubernetes lab's API server (the informer path) under the real
// kube-proxy, in iptables and in nftables mode: the service metrics name
// my-service in default with the scenario's per-backend counts; pod-c
// deleted through the API leaves its conntrack entries behind, and the
// agent reports them stale.
func TestLiveKubeAPIStaleDNAT(t *testing.T) {
	for _, mode := range lab.KubeProxyModes {
		t.Run(string(mode), func(t *testing.T) {
			l := newKubeLab(t, mode)
			kc, err := l.Kubeconfig()
			if err != nil {
				t.Fatal(err)
			}
			a, err := New(Config{
				NetNS: l.NetNS(lab.Node1), MetricsAddr: "127.0.0.1:0", Node: lab.Node1,
				Kube:    KubeConfig{Mode: kube.ModeAPI, Kubeconfig: kc, ServiceBackends: true},
				Capture: CaptureConfig{FlowTable: &flowtable.Config{MaxEntries: 4096, ClosedTimeout: 500 * time.Millisecond, SweepInterval: 200 * time.Millisecond}},
			})
			if err != nil {
				t.Fatal(err)
			}
			runAgent(t, a)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			endpoints := `layerscope_service_endpoints{namespace="default",service="my-service"} `
			if why := waitFor(t, a, func(body string) string {
				if n := sample(body, `layerscope_kube_metadata_synced{source="api"} `); n != 1 {
					return fmt.Sprintf("metadata synced %v", n)
				}
				if n := sample(body, endpoints); n != 3 {
					return fmt.Sprintf("ready endpoints %v, want 3", n)
				}
				return ""
			}); why != "" {
				t.Fatal(why)
			}

			r, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{})
			if err != nil {
				t.Fatal(err)
			}
			node1, _ := l.Node(lab.Node1)
			want := map[string]float64{}
			toPodC := 0
			for _, q := range r.Requests {
				if !q.OK() {
					t.Fatalf("request failed: %+v", q)
				}
				be, ok := l.Pod(q.DNATBackend)
				if !ok {
					t.Fatalf("request %+v: no DNAT backend", q)
				}
				if q.NATNode != lab.Node1 {
					continue
				}
				port := lab.ServicePort
				if q.Target.Addr() == node1.IP {
					port = lab.NodePort
				}
				want[fmt.Sprintf("default my-service %d %s closed", port, netip.AddrPortFrom(be.IP, lab.ServicePort))]++
				if be.Name == lab.PodC {
					toPodC++
				}
			}
			if len(want) < 4 || toPodC == 0 {
				t.Fatalf("the scenario DNATed too little on node-1 to test: %v", want)
			}
			if why := waitFor(t, a, func(body string) string {
				got := tally(body, "layerscope_service_connections_total", "namespace", "service", "port", "backend", "outcome")
				if fmt.Sprint(got) != fmt.Sprint(want) {
					return fmt.Sprintf("service connections:\n got %v\nwant %v", got, want)
				}
				return ""
			}); why != "" {
				t.Error(why)
			}

			// pod-c deleted through the API: kube-proxy stops sending to it,
			// the kernel's entries DNATed to it stay (TIME_WAIT): stale.
			if err := l.DeletePod(ctx, lab.PodC); err != nil {
				t.Fatal(err)
			}
			if err := l.WaitKubeProxy(ctx, lab.PodA, lab.PodB); err != nil {
				t.Fatal(err)
			}
			podC, _ := l.Pod(lab.PodC)
			staleKey := `layerscope_service_stale_conntrack_entries{backend="` + netip.AddrPortFrom(podC.IP, lab.ServicePort).String() + `",namespace="default",service="my-service"} `
			if why := waitFor(t, a, func(body string) string {
				if n := sample(body, endpoints); n != 2 {
					return fmt.Sprintf("ready endpoints %v, want 2", n)
				}
				before := conntrackDNATTo(t, l, lab.Node1, podC.IP)
				got := sample(body, staleKey)
				after := conntrackDNATTo(t, l, lab.Node1, podC.IP)
				if before == 0 {
					return "no conntrack entry DNATed to pod-c left on node-1"
				}
				if got < float64(after) || got > float64(before) {
					return fmt.Sprintf("%s= %v, conntrack -L counts %d then %d", staleKey, got, before, after)
				}
				return ""
			}); why != "" {
				t.Error(why)
			}
		})
	}
}
