package metrics

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerscope/layerscope/agent/conntrack"
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/agent/workloads"
	"github.com/layerscope/layerscope/exporters/prom"
	"github.com/layerscope/layerscope/internal/promtest"
)

// EnvScale set to "full" runs TestSeriesPerNodeAtScale with 10,000
// Services and 150,000 endpoints (else 1,000 and 15,000).
const EnvScale = "LAYERSCOPE_SCALE"

// scaleAddr returns the i-th address of a /8-sized range from base.
func scaleAddr(base netip.Addr, i int) netip.Addr {
	b := base.As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n += uint32(i)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// TestSeriesPerNodeAtScale measures, through a real Prometheus scrape, the
// series that the scale-dependent sources (services, workloads, kube) of
// one node export with the default budget and with the backend label: a
// cluster of N Services with 15 endpoints each, 110 pods on this node in 22
// workloads, and this node's pods connecting to 1,000 distinct Services
// over 3 backends each, some reset, 10 backends dead.
func TestSeriesPerNodeAtScale(t *testing.T) {
	services, perService := 1000, 15
	if os.Getenv(EnvScale) == "full" {
		services = 10000
	}
	bin := promtest.Prometheus(t)
	svcBase, podBase := netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("10.128.0.10")
	store := kube.NewStore(kube.ModeFile, "node-1")
	tr := true
	for i := range services {
		name := fmt.Sprintf("svc-%05d", i)
		store.SetService(&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%03d", i%100), Name: name},
			Spec: corev1.ServiceSpec{ClusterIP: scaleAddr(svcBase, i).String(), Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 80}}},
		})
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%03d", i%100), Name: name + "-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
		}
		for j := range perService {
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{scaleAddr(podBase, i*perService+j).String()},
				Conditions: discoveryv1.EndpointConditions{Ready: &tr}})
		}
		store.SetEndpointSlice(sl)
	}
	localBase := netip.MustParseAddr("10.244.0.10")
	for i := range 110 {
		store.SetPod(metaPod(fmt.Sprintf("pod-%03d", i), "node-1", scaleAddr(localBase, i).String(), fmt.Sprintf("wl%02d-6d5f7b8c9d", i%22), "6d5f7b8c9d"))
	}
	store = kube.SourceOf(store).Store()

	tally := correlate.NewServices(correlate.ServicesConfig{})
	wl := workloads.New(store, false, workloads.DefaultMax)
	now := time.Now()
	id := uint32(0)
	for i := range 1000 {
		svc := netip.AddrPortFrom(scaleAddr(svcBase, i*services/1000), 80)
		for b := range 3 {
			backend := netip.AddrPortFrom(scaleAddr(podBase, i*services/1000*perService+b), 8080)
			client := scaleAddr(localBase, (i+b)%110)
			for k := range 3 {
				outcome := flow.OutcomeClosed
				switch {
				case i%100 == 0 && b == 0:
					outcome = flow.OutcomeRefused // a dead backend
				case i%10 == 0 && k == 0:
					outcome = flow.OutcomeReset // one failure, then success
				}
				id++
				tally.Add(&correlate.Conn{ID: id, Service: svc, Backend: backend, Proto: flow.ProtoTCP, Outcome: outcome}, now.UnixNano())
				r := &flow.Record{Key: flow.Key{Src: client, Dst: backend.Addr(), SrcPort: 40000, DstPort: 8080, Proto: flow.ProtoTCP}, End: flow.EndIdle, Outcome: outcome}
				wl.Consume(&correlate.Enriched{Record: r, NAT: &correlate.Translation{}}, now)
			}
		}
	}
	// Clients on other nodes connect to this node's pods.
	for i := range 110 {
		r := &flow.Record{Key: flow.Key{Src: scaleAddr(podBase, i), Dst: scaleAddr(localBase, i), SrcPort: 40000, DstPort: 8080, Proto: flow.ProtoTCP}, End: flow.EndIdle, Outcome: flow.OutcomeClosed}
		wl.Consume(&correlate.Enriched{Record: r, NAT: &correlate.Translation{}}, now)
	}

	serve := func(sources ...prom.Source) string {
		col, err := prom.NewCollector(nil, sources...)
		if err != nil {
			t.Fatal(err)
		}
		reg, err := prom.NewRegistry(col)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln) //nolint:errcheck // ends with Close
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	noCT := func() *conntrack.Watcher { return nil }
	def := serve(Services(tally, store, ServiceOptions{}), Workloads(wl, store, 0), Kube(store, noCT, 0))
	opt := serve(Services(tally, store, ServiceOptions{Backends: true, MaxSeries: 1 << 20}), Workloads(wl, store, 1<<20), Kube(store, noCT, 1<<20))
	p := promtest.Start(t, bin, fmt.Sprintf(`global:
  scrape_interval: 5s
  scrape_timeout: 5s
scrape_configs:
  - job_name: default
    static_configs:
      - targets: [%q]
  - job_name: unbounded
    static_configs:
      - targets: [%q]
`, def, opt), nil)
	count := func(job string) map[string]float64 {
		// The unbounded target is thousands of series: under -race on a
		// loaded machine one scrape takes seconds.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			s, err := p.Query(fmt.Sprintf(`count by (__name__) ({job=%q, __name__=~"layerscope_.*"})`, job))
			if err == nil && len(s) > 0 {
				out := map[string]float64{}
				for _, x := range s {
					out[x.Metric["__name__"]] = x.Value
					out[""] += x.Value
				}
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("no samples of job %s: %v", job, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	d, u := count("default"), count("unbounded")
	t.Logf("%d Services, %d endpoints, 110 local pods, 1,000 Services touched: series per node, default budget %v total, without budget and with backends %v total", services, services*perService, d[""], u[""])
	for name, n := range d {
		if name != "" {
			t.Logf("  default %s: %v (unbounded %v)", name, n, u[name])
		}
	}
	// Services and workloads: at most (outcomes + ratio) per label set,
	// plus the dead backends and the endpoint gauges.
	if d[""] > 1500 {
		t.Errorf("default configuration exports %v scale-dependent series per node, want at most 1,500", d[""])
	}
	if d["layerscope_service_folded_series"] != 1 || u[""] <= d[""] {
		t.Errorf("the budget did not fold: default %v, unbounded %v", d, u)
	}
}
