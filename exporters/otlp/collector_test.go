package otlp

import (
	"context"
	"net/netip"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/internal/otlptest"
)

type (
	receiver     = otlptest.Receiver
	collector    = otlptest.Collector
	receivedSpan = otlptest.Span
)

var newReceiver = otlptest.NewReceiver

func startCollector(t *testing.T, recv *receiver) *collector { return otlptest.StartCollector(t, recv) }

// exporterConfig configures an exporter of node to the collector: gRPC
// through Config, HTTP through the standard environment variables (which
// TestCollector sets).
func exporterConfig(col *collector, proto, node string, ratio float64) Config {
	cfg := Config{Node: node, SampleRatio: ratio, BatchTimeout: 50 * time.Millisecond, ExportTimeout: 2 * time.Second}
	if proto == ProtocolGRPC {
		cfg.Protocol, cfg.Endpoint, cfg.Insecure = ProtocolGRPC, col.GRPCAddr, true
	}
	return cfg
}

func newExporter(t *testing.T, cfg Config) *Exporter {
	t.Helper()
	e, err := New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Shutdown(ctx)
	})
	return e
}

func flush(t *testing.T, es ...*Exporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, e := range es {
		require.NoError(t, e.Flush(ctx))
	}
}

// TestCollector exports the spans of two nodes through a real OpenTelemetry
// Collector, over gRPC and over HTTP, and checks what comes out of it.
func TestCollector(t *testing.T) {
	recv := newReceiver(t)
	col := startCollector(t, recv)
	// The HTTP exporters are configured by the standard variables only.
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+col.HTTPAddr)
	t.Setenv("OTEL_SERVICE_NAME", "layerscope-test")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci")

	port := uint16(41000)
	nextConn := func() (uint16, uint32) {
		port++
		return port, uint32(port) * 2654435761
	}

	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		t.Run(proto, func(t *testing.T) {
			t.Run("stitched", func(t *testing.T) {
				n1 := newExporter(t, exporterConfig(col, proto, "node-1", 1))
				n2 := newExporter(t, exporterConfig(col, proto, "node-2", 1))
				t0 := time.Now().UnixNano()
				p, isn := nextConn()
				c, s := clientConn(t0, p, isn, flow.OutcomeClosed), serverConn(t0, p, isn, flow.OutcomeClosed)
				tid := c.TraceID(0)
				n2.Export(s) // the backend's node may well report first
				n1.Export(c)
				flush(t, n1, n2)
				spans := recv.WaitTrace(t, tid[:], 8)
				checkStitched(t, spans, tid[:])
				for _, sp := range spans {
					require.Equal(t, "layerscope-test", sp.Res["service.name"])
					require.Equal(t, "ci", sp.Res["deployment.environment.name"])
				}
				require.Equal(t, uint64(4), n1.Stats().SpansExported)
				require.Equal(t, uint64(4), n2.Stats().SpansExported)
			})

			t.Run("errors at ratio 0", func(t *testing.T) {
				n1 := newExporter(t, exporterConfig(col, proto, "node-1", 0))
				n2 := newExporter(t, exporterConfig(col, proto, "node-2", 0))
				t0 := time.Now().UnixNano()
				p, isn := nextConn()
				ok := clientConn(t0, p, isn, flow.OutcomeClosed)
				n1.Export(ok)
				// The dead-backend case: pod-c refuses, both nodes see the RST.
				p, isn = nextConn()
				rc, rs := clientConn(t0, p, isn, flow.OutcomeRefused), serverConn(t0, p, isn, flow.OutcomeRefused)
				rc.RSTFrom, rs.RSTFrom = 1<<flow.FromServer, 1<<flow.FromServer
				n1.Export(rc)
				n2.Export(rs)
				// A DF datagram too big for the overlay: frag-needed.
				p, isn = nextConn()
				fc := clientConn(t0, p, isn, flow.OutcomeClosed)
				fc.ICMP = []ICMPError{{Time: t0 + 50_000, Type: ICMPDestUnreachable, Code: ICMPCodeFragNeeded, MTU: 1450,
					From: netipAddr("10.244.0.1"), Interface: "vxlan0"}}
				n1.Export(fc)
				// DNS SERVFAIL and HTTP 503.
				p, _ = nextConn()
				dc := &Conn{Side: SideClient, Proto: flow.ProtoUDP, Client: addrPort(podA, p),
					Backend: addrPort(netipAddr("10.244.1.9"), 53), Outcome: flow.OutcomeReplied, First: t0, Last: t0 + 800_000,
					Exchanges: []Exchange{{App: flow.AppDNS, Start: t0, Latency: 800 * time.Microsecond, Code: 2,
						Name: "web.default.svc.cluster.local"}}}
				n1.Export(dc)
				p, isn = nextConn()
				hc := clientConn(t0, p, isn, flow.OutcomeClosed)
				hc.Exchanges = []Exchange{{App: flow.AppHTTP, Start: t0 + 100_000, Latency: 2 * time.Millisecond, Code: 503, Name: "GET"}}
				n1.Export(hc)
				flush(t, n1, n2)

				refused := recv.WaitTrace(t, traceID(rc), 8)
				checkStitched(t, refused, traceID(rc))
				for _, sp := range refused {
					if sp.Attr("layerscope.hop.index") == nil {
						require.Equal(t, "10.244.1.8:8080", sp.Attr("layerscope.backend").GetStringValue(),
							"the refused connection names its backend")
						require.Equal(t, "refused", sp.Attr("error.type").GetStringValue())
						require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, sp.Span.Status.GetCode())
					}
				}
				frag := recv.WaitTrace(t, traceID(fc), 4)
				var mtu int64
				for _, sp := range frag {
					for _, ev := range sp.Span.Events {
						if ev.Name == EventFragNeeded {
							for _, kv := range ev.Attributes {
								if kv.Key == string(AttrICMPMTU) {
									mtu = kv.Value.GetIntValue()
								}
							}
						}
					}
				}
				require.Equal(t, int64(1450), mtu, "frag-needed event with the MTU")
				dns := recv.WaitTrace(t, traceID(dc), 2)
				httpSpans := recv.WaitTrace(t, traceID(hc), 5)
				for _, x := range []struct {
					spans []receivedSpan
					name  string
					key   string
				}{{dns, "DNS web.default.svc.cluster.local", "dns.question.name"}, {httpSpans, "GET", "http.response.status_code"}} {
					found := false
					for _, sp := range x.spans {
						if sp.Span.Name == x.name {
							found = true
							require.NotNil(t, sp.Attr(x.key), x.name)
							require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, sp.Span.Status.GetCode(), x.name)
						}
					}
					require.True(t, found, "no %q span", x.name)
				}
				require.Empty(t, recv.Trace(traceID(ok)), "an error-free connection exported at ratio 0")
				st := n1.Stats()
				require.Equal(t, uint64(1), st.SampledOut)
				require.Equal(t, uint64(4), st.Forced)
				require.Equal(t, uint64(4+4+2+5), st.SpansExported)
			})
		})
	}

	t.Run("collector down", func(t *testing.T) {
		testCollectorDown(t, recv, col, nextConn)
	})
}

// testCollectorDown stops the collector under load: Export must neither
// block nor grow memory, losses are counted, and export resumes when the
// collector is back.
func testCollectorDown(t *testing.T, recv *receiver, col *collector, nextConn func() (uint16, uint32)) {
	var es []*Exporter
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		cfg := exporterConfig(col, proto, "node-1", 1)
		cfg.MaxQueueSize, cfg.MaxExportBatchSize, cfg.ExportTimeout = 64, 64, 300*time.Millisecond
		es = append(es, newExporter(t, cfg))
	}
	// Both exporters work before the outage.
	t0 := time.Now().UnixNano()
	for _, e := range es {
		p, isn := nextConn()
		c := clientConn(t0, p, isn, flow.OutcomeClosed)
		e.Export(c)
		flush(t, e)
		recv.WaitTrace(t, traceID(c), 4)
	}
	col.Stop()

	var slowest time.Duration
	load := func(rounds int) {
		for range rounds {
			for range 100 {
				for _, e := range es {
					p, isn := nextConn()
					c := clientConn(time.Now().UnixNano(), p, isn, flow.OutcomeClosed)
					start := time.Now()
					e.Export(c)
					slowest = max(slowest, time.Since(start))
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	load(20) // 2,000 connections per exporter: the queues fill
	before := heap()
	load(100) // 10,000 more each, about 2 s of outage
	after := heap()
	t.Logf("collector down: heap %d → %d bytes, slowest Export %v", before, after, slowest)
	for i, e := range es {
		st := e.Stats()
		t.Logf("exporter %d: %+v", i, st)
		require.Positive(t, st.Dropped, "connections dropped at the full queue")
		require.Positive(t, st.ExportErrors, "failed exports counted")
		require.GreaterOrEqual(t, st.SpansDropped, 4*st.Dropped)
		require.LessOrEqual(t, st.Queued, 64)
	}
	// Without the bounded queue, 20,000 connections of 4 spans each would
	// hold tens of megabytes.
	require.Less(t, int64(after)-int64(before), int64(2<<20), "memory grew while the collector was down")
	require.Less(t, slowest, 100*time.Millisecond, "Export blocked (export timeout 300 ms)")

	col.Start()
	restarted := time.Now()
	for i, e := range es {
		// Export a marker connection and flush until a marker comes out of
		// the collector (the first exports after the restart may still fail
		// while the client reconnects).
		exported := e.Stats().SpansExported
		var markers [][]byte
		arrived := func() bool {
			for _, m := range markers {
				if len(recv.Trace(m)) > 0 {
					return true
				}
			}
			return false
		}
		deadline := time.Now().Add(30 * time.Second)
		for !arrived() {
			require.True(t, time.Now().Before(deadline), "exporter %d did not resume: %+v; collector log:\n%s",
				i, e.Stats(), col.Log)
			p, isn := nextConn()
			c := clientConn(time.Now().UnixNano(), p, isn, flow.OutcomeClosed)
			markers = append(markers, traceID(c))
			e.Export(c)
			flush(t, e)
			for wait := time.Now().Add(500 * time.Millisecond); !arrived() && time.Now().Before(wait); {
				time.Sleep(20 * time.Millisecond)
			}
		}
		require.Greater(t, e.Stats().SpansExported, exported)
		t.Logf("exporter %d resumed %v after the collector restarted", i, time.Since(restarted).Round(time.Millisecond))
	}
}

// checkStitched checks one connection's spans from node-1 (client side) and
// node-2 (backend side): one trace, the backend's connection span under the
// client's, hops under their node's connection span in path order with
// non-negative gaps.
func checkStitched(t *testing.T, spans []receivedSpan, tid []byte) {
	t.Helper()
	byNode := map[string][]receivedSpan{}
	conn := map[string]*tracepb.Span{}
	for _, sp := range spans {
		require.Equal(t, tid, sp.Span.TraceId)
		node := sp.Res["k8s.node.name"]
		byNode[node] = append(byNode[node], sp)
		if sp.Attr("layerscope.hop.index") == nil {
			require.Nil(t, conn[node], "two connection spans from %s", node)
			conn[node] = sp.Span
		}
	}
	require.Len(t, byNode, 2, "spans of node-1 and node-2")
	c1, c2 := conn["node-1"], conn["node-2"]
	require.NotNil(t, c1)
	require.NotNil(t, c2)
	require.Empty(t, c1.ParentSpanId, "the client's connection span is the root")
	require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, c1.Kind)
	require.Equal(t, c1.SpanId, c2.ParentSpanId, "the backend's connection span hangs under the client's")
	require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, c2.Kind)

	for node, want := range map[string][]string{"node-1": clientHops, "node-2": serverHops} {
		var hops []receivedSpan
		for _, sp := range byNode[node] {
			if sp.Attr("layerscope.hop.index") != nil {
				require.Equal(t, conn[node].SpanId, sp.Span.ParentSpanId, "%s hop parent", node)
				hops = append(hops, sp)
			}
		}
		sort.Slice(hops, func(i, j int) bool {
			return hops[i].Attr("layerscope.hop.index").GetIntValue() < hops[j].Attr("layerscope.hop.index").GetIntValue()
		})
		require.Len(t, hops, len(want), node)
		for i, h := range hops {
			require.Equal(t, "hop "+want[i], h.Span.Name)
			require.Equal(t, want[i], h.Attr("network.interface.name").GetStringValue())
			gap := h.Attr("layerscope.hop.gap_ns").GetIntValue()
			require.GreaterOrEqual(t, gap, int64(0), "%s hop %d", node, i)
			if i > 0 {
				require.Equal(t, int64(h.Span.StartTimeUnixNano-hops[i-1].Span.StartTimeUnixNano), gap,
					"%s hop %d gap", node, i)
			}
			if want[i] == "vxlan0" {
				require.Equal(t, int64(1), h.Attr("layerscope.vni").GetIntValue())
			}
		}
	}
}

func traceID(c *Conn) []byte {
	tid := c.TraceID(0)
	return tid[:]
}

func netipAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func addrPort(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
