package agent

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/internal/otlptest"
	"github.com/layerscope/layerscope/lab"
)

// startTracingAgent runs an agent of a lab node exporting to the collector
// at the sampling ratio, with short flow timeouts so connections end
// quickly (idle 0: the flow table's default).
func startTracingAgent(t *testing.T, l *lab.Lab, node string, col *otlptest.Collector, ratio float64, idle time.Duration) *Agent {
	t.Helper()
	a, err := New(Config{
		NetNS: l.NetNS(node), MetricsAddr: "127.0.0.1:0", Node: node,
		Capture: CaptureConfig{FlowTable: &flowtable.Config{MaxEntries: 4096, IdleTimeout: idle, ClosedTimeout: 500 * time.Millisecond, SweepInterval: 200 * time.Millisecond}},
		Traces:  TracesConfig{Enabled: true, Endpoint: col.HTTPAddr, Protocol: "http/protobuf", Insecure: true, SampleRatio: ratio},
	})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	return a
}

// TestLiveTracesAcrossNodes makes one connection from pod-a through the
// Service to pod-c (across the overlay) with both node agents exporting
// through a real OpenTelemetry Collector: the spans of node-1 and node-2
// share one trace ID, node-2's connection span hangs under node-1's, and
// node-1's hops are pod-a's veth, vxlan0 and eth0, in that order, with
// non-negative gaps.
func TestLiveTracesAcrossNodes(t *testing.T) {
	l := newLab(t)
	recv := otlptest.NewReceiver(t)
	col := otlptest.StartCollector(t, recv)
	startTracingAgent(t, l, lab.Node1, col, 1, 0)
	startTracingAgent(t, l, lab.Node2, col, 1, 0)
	podA, _ := l.Pod(lab.PodA)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Until the DNAT sends a connection to pod-c.
	var port uint16
	for try := 0; port == 0; try++ {
		if try == 30 {
			t.Fatal("30 connections and none DNATed to pod-c")
		}
		conn, err := l.DialTCP(ctx, lab.PodA, lab.ServiceAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tc := conn.(*net.TCPConn)
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_ = tc.CloseWrite()
		_, _ = io.Copy(io.Discard, tc)
		if resp.Header.Get(lab.HeaderBackend) == lab.PodC {
			port = netip.MustParseAddrPort(tc.LocalAddr().String()).Port()
		}
		tc.Close()
	}

	// Find the trace of that connection: its client span names pod-a's port.
	var tid []byte
	deadline := time.Now().Add(30 * time.Second)
	for tid == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no trace of pod-a:%d arrived", port)
		}
		for _, sp := range recv.All() {
			if sp.Res["k8s.node.name"] == lab.Node1 && sp.Attr("client.port").GetIntValue() == int64(port) &&
				sp.Attr("client.address").GetStringValue() == podA.IP.String() {
				tid = sp.Span.TraceId
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Both nodes' spans; give node-2's a moment to arrive too.
	var spans []otlptest.Span
	for deadline = time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		spans = recv.Trace(tid)
		nodes := map[string]bool{}
		for _, sp := range spans {
			nodes[sp.Res["k8s.node.name"]] = true
		}
		if len(nodes) == 2 || time.Now().After(deadline) {
			break
		}
	}
	conn := map[string]otlptest.Span{}
	var hops []otlptest.Span
	exchanges := map[string]int{}
	for _, sp := range spans {
		if sp.Span.Name == "HTTP" {
			exchanges[sp.Res["k8s.node.name"]]++
		}
		node := sp.Res["k8s.node.name"]
		if sp.Attr("layerscope.hop.index") == nil {
			// The connection spans: the client's (node-1) and the server's
			// (node-2); the others are DNS/HTTP exchanges under them.
			if k := sp.Span.Kind; (k == tracepb.Span_SPAN_KIND_CLIENT || k == tracepb.Span_SPAN_KIND_SERVER) && strings.HasPrefix(sp.Span.Name, "tcp ") {
				if conn[node].Span != nil {
					t.Errorf("two connection spans from %s", node)
				}
				conn[node] = sp
			}
			continue
		}
		if node == lab.Node1 {
			hops = append(hops, sp)
		}
	}
	c1, c2 := conn[lab.Node1], conn[lab.Node2]
	if c1.Span == nil || c2.Span == nil {
		t.Fatalf("trace %s: connection spans of node-1 %v and node-2 %v; %d spans", hex.EncodeToString(tid), c1.Span != nil, c2.Span != nil, len(spans))
	}
	if string(c2.Span.ParentSpanId) != string(c1.Span.SpanId) {
		t.Errorf("node-2's connection span's parent %x, node-1's connection span %x", c2.Span.ParentSpanId, c1.Span.SpanId)
	}
	if b := c1.Attr("layerscope.backend").GetStringValue(); b == "" {
		t.Errorf("client span names no backend")
	}
	sort.Slice(hops, func(i, j int) bool {
		return hops[i].Attr("layerscope.hop.index").GetIntValue() < hops[j].Attr("layerscope.hop.index").GetIntValue()
	})
	var names []string
	for i, h := range hops {
		names = append(names, h.Attr("network.interface.name").GetStringValue())
		if gap := h.Attr("layerscope.hop.gap_ns").GetIntValue(); gap < 0 {
			t.Errorf("hop %d gap %d", i, gap)
		}
	}
	if exchanges[lab.Node1] != 1 || exchanges[lab.Node2] != 1 {
		t.Errorf("HTTP exchange spans by node: %v, want one each (both views of the connection on node-1 saw it)", exchanges)
	}
	// pod-a's veth sees the connection before DNAT (to the VIP), vxlan0
	// and eth0 after it.
	if want := []string{podA.HostVeth, lab.VXLANName, lab.NodeIface}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("node-1 hops %v, want %v", names, want)
	}
}

// TestLiveTracesRefusedAtRatioZero: with the sampling ratio at 0 only
// connections with an error are traced; during the dead-backend scenario
// the refused connections to pod-c are, and they name the failing backend.
func TestLiveTracesRefusedAtRatioZero(t *testing.T) {
	l := newLab(t)
	recv := otlptest.NewReceiver(t)
	col := otlptest.StartCollector(t, recv)
	startTracingAgent(t, l, lab.Node1, col, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := l.Traffic(ctx, lab.ScenarioDeadBackend, lab.TrafficOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podC, _ := l.Pod(lab.PodC)
	deadBackend := netip.AddrPortFrom(podC.IP, lab.ServicePort).String()
	refused := map[int64]bool{} // client ports of refused requests DNATed on node-1
	for _, q := range r.Requests {
		if q.NATNode == lab.Node1 && q.Refused {
			refused[int64(q.Source.Port())] = true
		}
	}
	if len(refused) == 0 {
		t.Fatalf("no refused connection DNATed on node-1: %+v", r)
	}
	var got map[int64]bool
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got = map[int64]bool{}
		for _, sp := range recv.All() {
			if !strings.HasPrefix(sp.Span.Name, "tcp ") {
				continue
			}
			if sp.Attr("error.type").GetStringValue() == "" {
				t.Fatalf("a connection without error was traced at ratio 0: %s %v", sp.Span.Name, sp.Span.Attributes)
			}
			if sp.Attr("layerscope.backend").GetStringValue() == deadBackend && sp.Attr("error.type").GetStringValue() == "refused" {
				got[sp.Attr("client.port").GetIntValue()] = true
			}
		}
		if len(got) >= len(refused) || time.Now().After(deadline) {
			break
		}
	}
	for p := range refused {
		if !got[p] {
			t.Errorf("refused connection from port %d not traced with backend %s (traced: %v)", p, deadBackend, got)
		}
	}
}

// TestLiveTracesCollectorOutage stops the collector for a minute while the
// service scenario runs: the agent keeps its memory flat and counts what it
// drops, and its spans reach the collector again once it is back.
func TestLiveTracesCollectorOutage(t *testing.T) {
	l := newLab(t)
	recv := otlptest.NewReceiver(t)
	col := otlptest.StartCollector(t, recv)
	a := startTracingAgent(t, l, lab.Node1, col, 1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	traffic := func(d time.Duration) int {
		n := 0
		for end := time.Now().Add(d); time.Now().Before(end); {
			// This test needs the traffic, not which backend each request
			// was DNATed to.
			r, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{Count: 3})
			if err != nil && !errors.Is(err, lab.ErrNoNATEvent) {
				t.Fatal(err)
			}
			n += r.Attempted
		}
		return n
	}
	traffic(3 * time.Second)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	col.Stop()
	h0 := heap()
	conns := traffic(time.Minute)
	h1 := heap()
	m := scrapeAgent(t, a)
	dropped := sample(m, "layerscope_otlp_spans_dropped_total ")
	errs := sample(m, "layerscope_otlp_export_errors_total ")
	t.Logf("outage: %d connections, heap %d → %d KiB, spans dropped %v, export errors %v", conns, h0>>10, h1>>10, dropped, errs)
	if dropped <= 0 || errs <= 0 {
		t.Errorf("nothing counted lost during the outage: spans dropped %v, export errors %v", dropped, errs)
	}
	if h1 > h0+32<<20 {
		t.Errorf("heap grew from %d to %d KiB during the outage", h0>>10, h1>>10)
	}
	before := len(recv.All())
	col.Start()
	exported := sample(m, "layerscope_otlp_spans_exported_total ")
	traffic(3 * time.Second)
	for deadline := time.Now().Add(30 * time.Second); len(recv.All()) == before; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no span reached the collector after it came back")
		}
	}
	if after := sample(scrapeAgent(t, a), "layerscope_otlp_spans_exported_total "); after <= exported {
		t.Errorf("spans exported %v → %v after the collector came back", exported, after)
	}
}

// TestLivePMTUInTraces: a DF datagram refused with a frag-needed makes its
// connection an error, traced at ratio 0 with the frag-needed (MTU 1450) as
// a span event.
func TestLivePMTUInTraces(t *testing.T) {
	l := newLab(t)
	recv := otlptest.NewReceiver(t)
	col := otlptest.StartCollector(t, recv)
	startTracingAgent(t, l, lab.Node1, col, 0, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := l.Traffic(ctx, lab.ScenarioMTU, lab.TrafficOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podB, _ := l.Pod(lab.PodB)
	want := map[string]bool{}
	for _, p := range r.MTU.ServiceFragNeeded {
		want[fmt.Sprintf("%s:%d", podB.IP, p)] = true
	}
	got := map[string]bool{}
	for deadline := time.Now().Add(30 * time.Second); len(got) < len(want) && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, sp := range recv.All() {
			if !strings.HasPrefix(sp.Span.Name, "udp ") {
				continue
			}
			for _, ev := range sp.Span.Events {
				if ev.Name != "icmp.frag_needed" {
					continue
				}
				for _, kv := range ev.Attributes {
					if strings.HasSuffix(kv.Key, "mtu") && kv.Value.GetIntValue() == 1450 {
						got[fmt.Sprintf("%s:%d", sp.Attr("client.address").GetStringValue(), sp.Attr("client.port").GetIntValue())] = true
					}
				}
			}
		}
	}
	for c := range want {
		if !got[c] {
			t.Errorf("no traced frag-needed 1450 for %s → the Service (traced: %v)", c, got)
		}
	}
}
