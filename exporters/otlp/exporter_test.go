package otlp

import (
	"context"
	"crypto/rand"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/layerscope/layerscope/agent/flow"
)

func TestTraceID(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	base := func() *Conn { return clientConn(t0, 40000, 0xdeadbeef, flow.OutcomeClosed) }
	want := base().TraceID(0)
	tests := []struct {
		name string
		mod  func(c *Conn)
		same bool
	}{
		{"backend node's view", func(c *Conn) { *c = *serverConn(t0, 40000, 0xdeadbeef, flow.OutcomeClosed) }, true},
		{"service is not part of the identity", func(c *Conn) { c.Service = netip.AddrPort{} }, true},
		{"times are not, for TCP with a SYN", func(c *Conn) { c.First += int64(time.Hour) }, true},
		{"node name is not", func(c *Conn) { c.Node = "node-9" }, true},
		{"other ISN", func(c *Conn) { c.ISN++ }, false},
		{"other client port", func(c *Conn) { c.Client = netip.AddrPortFrom(podA, 40001) }, false},
		{"other backend", func(c *Conn) { c.Backend = netip.MustParseAddrPort("10.244.0.8:8080") }, false},
		{"other protocol", func(c *Conn) { c.Proto = flow.ProtoUDP }, false},
		{"no SYN seen", func(c *Conn) { c.HasISN = false }, false},
		{"SNAT: the translated source counts", func(c *Conn) { c.ClientNAT = netip.MustParseAddrPort("10.0.0.10:31000") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(c)
			got := c.TraceID(0)
			require.True(t, got.IsValid())
			require.Equal(t, tt.same, got == want, "trace ID %s vs %s", got, want)
		})
	}

	t.Run("SNAT seen from the backend", func(t *testing.T) {
		nat := netip.MustParseAddrPort("10.0.0.10:31000")
		c := base()
		c.ClientNAT = nat
		s := serverConn(t0, 0, 0xdeadbeef, flow.OutcomeClosed)
		s.Client = nat // the backend's node sees only the translated source
		require.Equal(t, c.TraceID(0), s.TraceID(0))
	})

	t.Run("UDP by time bucket", func(t *testing.T) {
		bucket := 30 * time.Second
		start := (t0 / int64(bucket)) * int64(bucket)
		u := func(first int64) trace.TraceID {
			c := &Conn{Proto: flow.ProtoUDP, Client: netip.AddrPortFrom(podA, 5353),
				Backend: netip.MustParseAddrPort("10.244.1.9:53"), First: first}
			return c.TraceID(bucket)
		}
		require.Equal(t, u(start), u(start+int64(bucket)-1), "same bucket")
		require.NotEqual(t, u(start), u(start+int64(bucket)), "next bucket")
		require.NotEqual(t, u(start), (&Conn{Proto: flow.ProtoUDP, First: start}).TraceID(time.Second),
			"bucket length matters")
	})
}

func TestSpanIDs(t *testing.T) {
	tid := clientConn(1, 40000, 7, flow.OutcomeClosed).TraceID(0)
	cs := ClientSpanID(tid)
	require.True(t, cs.IsValid())
	require.Equal(t, cs, ClientSpanID(tid), "deterministic")
	seen := map[trace.SpanID]string{cs: "client connection span"}
	for _, node := range []string{"node-1", "node-2"} {
		for _, side := range []Side{SideClient, SideServer, SideTransit} {
			for _, purpose := range []byte{purposeConn, purposeHop, purposeExchange} {
				for i := range 4 {
					id := nodeSpanID(tid, node, side, purpose, i)
					require.Equal(t, id, nodeSpanID(tid, node, side, purpose, i), "deterministic")
					what := node + "/" + side.String() + "/" + string(purpose) + "/" + string(rune('0'+i))
					prev, dup := seen[id]
					require.False(t, dup, "%s has the span ID of %s", what, prev)
					seen[id] = what
				}
			}
		}
	}
	other := tid
	other[0] ^= 1
	require.NotEqual(t, cs, ClientSpanID(other))
}

// TestSampledMatchesSDK checks the ratio rule against the SDK's own
// TraceIDRatioBased sampler, the one other nodes or backends would use.
func TestSampledMatchesSDK(t *testing.T) {
	for _, ratio := range []float64{0, 0.01, 0.25, 0.5, 0.9, 1} {
		s := sdktrace.TraceIDRatioBased(ratio)
		kept := 0
		const n = 20000
		for range n {
			var tid trace.TraceID
			_, _ = rand.Read(tid[:])
			want := s.ShouldSample(sdktrace.SamplingParameters{TraceID: tid}).Decision == sdktrace.RecordAndSample
			got := sampled(tid, ratio)
			require.Equal(t, want, got, "ratio %v trace %s", ratio, tid)
			if got {
				kept++
			}
		}
		require.InDelta(t, ratio, float64(kept)/n, 0.02, "ratio %v", ratio)
	}
}

func TestAddRecord(t *testing.T) {
	t0 := int64(1_000_000_000)
	pre := flow.Record{ // on pod-a's veth: pod-a → service
		Key:   flow.Key{Src: podA, Dst: service.Addr(), SrcPort: 40000, DstPort: 8080, Proto: flow.ProtoTCP},
		First: t0, Last: t0 + 900, Outcome: flow.OutcomeClosed,
		Hops:    [flow.MaxHops]flow.Hop{{IfIndex: 5, Role: flow.RolePod, Dir: flow.DirIn, First: t0, Last: t0 + 900}},
		NumHops: 1,
		TCP:     flow.TCP{SYN: t0, ISN: 77, Retransmits: [2]uint32{1, 0}},
		L7: flow.AppInfo{App: flow.AppHTTP, NumExchanges: 1,
			Exchanges: [flow.MaxExchanges]flow.Exchange{{Start: t0 + 100, Latency: 300, Code: 503}}},
	}
	post := flow.Record{ // on vxlan0 and eth0: pod-a → pod-c
		Key:   flow.Key{Src: podA, Dst: podC, SrcPort: 40000, DstPort: 8080, Proto: flow.ProtoTCP},
		First: t0 + 30, Last: t0 + 950, Outcome: flow.OutcomeReset,
		Tunnel: flow.Tunnel{Encap: flow.EncapVXLAN, VNI: 1},
		Hops: [flow.MaxHops]flow.Hop{
			{IfIndex: 3, Role: flow.RoleOverlay, Dir: flow.DirOut, First: t0 + 30, Last: t0 + 940},
			{IfIndex: 2, Role: flow.RoleUplink, Dir: flow.DirOut, Encap: flow.EncapVXLAN, First: t0 + 45, Last: t0 + 950},
		},
		NumHops: 2,
		TCP:     flow.TCP{SYN: t0 + 30, ISN: 77, RSTFrom: 1 << flow.FromServer, Retransmits: [2]uint32{2, 1}},
		L7:      pre.L7, // the same exchange decoded again on this view
	}
	names := map[int32][2]string{5: {"veth-pod-a", "veth"}, 3: {"vxlan0", "vxlan"}, 2: {"eth0", "device"}}
	info := func(i int32) (string, string) { return names[i][0], names[i][1] }

	c := Conn{Side: SideClient, Client: netip.AddrPortFrom(podA, 40000), Backend: backend}
	c.AddRecord(&pre, info)
	c.AddRecord(&post, info)

	require.Equal(t, flow.ProtoTCP, c.Proto)
	require.Equal(t, t0, c.First)
	require.Equal(t, t0+950, c.Last)
	require.Equal(t, flow.OutcomeReset, c.Outcome, "a failure outranks a close")
	require.True(t, c.HasISN)
	require.Equal(t, uint32(77), c.ISN)
	require.Equal(t, [2]uint32{2, 1}, c.Retransmits)
	require.Equal(t, uint8(1<<flow.FromServer), c.RSTFrom)
	require.Len(t, c.Hops, 3)
	require.Equal(t, "veth-pod-a", c.Hops[0].Interface)
	require.Equal(t, "veth", c.Hops[0].Kind)
	require.Equal(t, uint32(0), c.Hops[0].VNI)
	require.Equal(t, uint32(0), c.Hops[1].VNI, "the overlay device sees the inner frame only")
	require.Equal(t, uint32(1), c.Hops[2].VNI)
	require.Len(t, c.Exchanges, 1, "an exchange seen on two views counts once")
	require.Equal(t, ErrTypeReset, c.ErrorType())
}

func TestErrorType(t *testing.T) {
	tests := []struct {
		name string
		c    Conn
		want string
	}{
		{"closed", Conn{Outcome: flow.OutcomeClosed}, ""},
		{"udp replied", Conn{Outcome: flow.OutcomeReplied}, ""},
		{"refused", Conn{Outcome: flow.OutcomeRefused}, ErrTypeRefused},
		{"timeout", Conn{Outcome: flow.OutcomeTimeout}, ErrTypeTimeout},
		{"reset", Conn{Outcome: flow.OutcomeReset}, ErrTypeReset},
		{"frag needed", Conn{Outcome: flow.OutcomeReplied, ICMP: []ICMPError{{Type: 3, Code: 4, MTU: 1450}}}, ErrTypeFragNeeded},
		{"packet too big", Conn{ICMP: []ICMPError{{V6: true, Type: 2, MTU: 1450}}}, ErrTypeFragNeeded},
		{"port unreachable", Conn{ICMP: []ICMPError{{Type: 3, Code: 3}}}, ErrTypeICMP},
		{"dns nxdomain", Conn{Exchanges: []Exchange{{App: flow.AppDNS, Code: 0}, {App: flow.AppDNS, Code: 3}}}, ErrTypeDNS},
		{"dns noerror", Conn{Exchanges: []Exchange{{App: flow.AppDNS, Code: 0}}}, ""},
		{"http 503", Conn{Exchanges: []Exchange{{App: flow.AppHTTP, Code: 503}}}, ErrTypeHTTP},
		{"http 404", Conn{Exchanges: []Exchange{{App: flow.AppHTTP, Code: 404}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.c.ErrorType())
		})
	}
}

func attrs(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// newMemExporter returns an Exporter of node writing into an in-memory
// span exporter.
func newMemExporter(t *testing.T, node string, ratio float64) (*Exporter, *tracetest.InMemoryExporter) {
	t.Helper()
	mem := tracetest.NewInMemoryExporter()
	e, err := New(context.Background(), Config{Node: node, SampleRatio: ratio, SpanExporter: mem, BatchTimeout: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e, mem
}

func TestSpanModel(t *testing.T) {
	ctx := context.Background()
	e1, mem1 := newMemExporter(t, "node-1", 1)
	e2, mem2 := newMemExporter(t, "node-2", 1)
	t0 := time.Now().UnixNano()
	c := clientConn(t0, 40000, 12345, flow.OutcomeReset)
	c.RSTFrom, c.RSTTime = 1<<flow.FromServer, t0+4_000_000
	c.Retransmits = [2]uint32{3, 0}
	c.ICMP = []ICMPError{{Time: t0 + 2_000_000, Type: 3, Code: 4, MTU: 1450, From: podC, Interface: "vxlan0"}}
	s := serverConn(t0, 40000, 12345, flow.OutcomeReset)
	s.Exchanges = []Exchange{{App: flow.AppHTTP, Start: t0 + 300_000, Latency: time.Millisecond, Code: 503, Name: "GET"}}
	e1.Export(c)
	e2.Export(s)
	require.NoError(t, e1.Flush(ctx))
	require.NoError(t, e2.Flush(ctx))

	byNode := map[string]tracetest.SpanStubs{"node-1": mem1.GetSpans(), "node-2": mem2.GetSpans()}
	require.Len(t, byNode["node-1"], 4, "connection + 3 hops")
	require.Len(t, byNode["node-2"], 5, "connection + 3 hops + 1 exchange")
	tid := c.TraceID(0)
	conn := map[string]tracetest.SpanStub{}
	for node, spans := range byNode {
		for _, sp := range spans {
			require.Equal(t, tid, sp.SpanContext.TraceID(), "%s %s", node, sp.Name)
			if sp.Name == "tcp 10.96.0.42:8080" || sp.Name == "tcp 10.244.1.8:8080" {
				conn[node] = sp
			}
		}
	}
	cs, ss := conn["node-1"], conn["node-2"]
	require.Equal(t, ClientSpanID(tid), cs.SpanContext.SpanID())
	require.False(t, cs.Parent.IsValid(), "the client's connection span is the root")
	require.Equal(t, trace.SpanKindClient, cs.SpanKind)
	require.Equal(t, cs.SpanContext.SpanID(), ss.Parent.SpanID(), "the backend hangs under the client")
	require.True(t, ss.Parent.IsRemote())
	require.Equal(t, trace.SpanKindServer, ss.SpanKind)
	require.NotEqual(t, cs.SpanContext.SpanID(), ss.SpanContext.SpanID())

	a := attrs(cs.Attributes)
	require.Equal(t, "tcp", a["network.transport"].AsString())
	require.Equal(t, "10.244.0.5", a["client.address"].AsString())
	require.Equal(t, int64(40000), a["client.port"].AsInt64())
	require.Equal(t, "10.96.0.42", a["server.address"].AsString())
	require.Equal(t, "10.244.1.8", a["network.peer.address"].AsString())
	require.Equal(t, "10.96.0.42:8080", a[AttrServiceVIP].AsString())
	require.Equal(t, "10.244.1.8:8080", a[AttrBackend].AsString())
	require.Equal(t, "reset", a["error.type"].AsString())
	require.Equal(t, codes.Error, cs.Status.Code)
	require.Equal(t, "10.244.0.5", attrs(ss.Attributes)["network.peer.address"].AsString())

	var events []string
	for _, ev := range cs.Events {
		events = append(events, ev.Name)
		switch ev.Name {
		case EventNAT:
			ea := attrs(ev.Attributes)
			require.Equal(t, "dnat", ea[AttrNATKind].AsString())
			require.Equal(t, "10.96.0.42:8080", ea[AttrNATFrom].AsString())
			require.Equal(t, "10.244.1.8:8080", ea[AttrNATTo].AsString())
		case EventFragNeeded:
			require.Equal(t, int64(1450), attrs(ev.Attributes)[AttrICMPMTU].AsInt64())
		case EventRST:
			require.Equal(t, "server", attrs(ev.Attributes)[AttrRSTFrom].AsString())
			require.Equal(t, t0+4_000_000, ev.Time.UnixNano())
		}
	}
	require.ElementsMatch(t, []string{EventNAT, EventFragNeeded, EventRetransmits, EventRST}, events)

	for node, want := range map[string][]string{"node-1": clientHops, "node-2": serverHops} {
		parent := conn[node].SpanContext.SpanID()
		var prev time.Time
		hops := 0
		for _, sp := range byNode[node] {
			ha := attrs(sp.Attributes)
			if _, ok := ha[AttrHopIndex]; !ok {
				continue
			}
			i := int(ha[AttrHopIndex].AsInt64())
			hops++
			require.Equal(t, "hop "+want[i], sp.Name)
			require.Equal(t, want[i], ha["network.interface.name"].AsString())
			require.Equal(t, parent, sp.Parent.SpanID())
			gap := ha[AttrHopGap].AsInt64()
			require.GreaterOrEqual(t, gap, int64(0))
			if i > 0 {
				require.Equal(t, sp.StartTime.Sub(prev).Nanoseconds(), gap)
			}
			prev = sp.StartTime
		}
		require.Equal(t, len(want), hops, node)
	}

	var x tracetest.SpanStub
	for _, sp := range byNode["node-2"] {
		if sp.Name == "GET" {
			x = sp
		}
	}
	require.Equal(t, "GET", x.Name)
	require.Equal(t, ss.SpanContext.SpanID(), x.Parent.SpanID())
	require.Equal(t, int64(503), attrs(x.Attributes)["http.response.status_code"].AsInt64())
	require.Equal(t, codes.Error, x.Status.Code)
	require.Equal(t, time.Millisecond, x.EndTime.Sub(x.StartTime))
}

func TestSamplingKeepsErrors(t *testing.T) {
	e, mem := newMemExporter(t, "node-1", 0)
	t0 := time.Now().UnixNano()
	ok := clientConn(t0, 40001, 1, flow.OutcomeClosed)
	refused := clientConn(t0, 40002, 2, flow.OutcomeRefused)
	dns := &Conn{Side: SideClient, Proto: flow.ProtoUDP, Client: netip.AddrPortFrom(podA, 5353),
		Backend: netip.MustParseAddrPort("10.244.1.9:53"), Outcome: flow.OutcomeReplied, First: t0, Last: t0 + 1000,
		Exchanges: []Exchange{{App: flow.AppDNS, Start: t0, Latency: 1000, Code: 2, Name: "web.default.svc.cluster.local"}}}
	for _, c := range []*Conn{ok, refused, dns} {
		e.Export(c)
	}
	require.NoError(t, e.Flush(context.Background()))
	st := e.Stats()
	require.Equal(t, uint64(3), st.Conns)
	require.Equal(t, uint64(1), st.SampledOut)
	require.Equal(t, uint64(2), st.Forced)
	spans := mem.GetSpans()
	require.Len(t, spans, 4+2)
	require.Equal(t, uint64(len(spans)), st.SpansExported)
	traces := map[trace.TraceID]bool{}
	for _, sp := range spans {
		traces[sp.SpanContext.TraceID()] = true
		if sp.Name == "DNS web.default.svc.cluster.local" {
			require.Equal(t, "SERVFAIL", attrs(sp.Attributes)[AttrDNSRcodeName].AsString())
			require.Equal(t, "web.default.svc.cluster.local", attrs(sp.Attributes)["dns.question.name"].AsString())
		}
	}
	require.False(t, traces[ok.TraceID(0)], "an error-free connection is not exported at ratio 0")
	require.True(t, traces[refused.TraceID(0)])
	require.True(t, traces[dns.TraceID(0)])
}

// stuckExporter is a collector that never answers: every export waits for
// its deadline.
type stuckExporter struct{ calls atomic.Int64 }

func (s *stuckExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	s.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}
func (s *stuckExporter) Shutdown(context.Context) error { return nil }

func TestExportNeverBlocks(t *testing.T) {
	stuck := &stuckExporter{}
	e, err := New(context.Background(), Config{Node: "node-1", SampleRatio: 1, SpanExporter: stuck,
		MaxQueueSize: 16, MaxExportBatchSize: 8, ExportTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	t0 := time.Now().UnixNano()
	const n = 2000
	start := time.Now()
	for i := range n {
		e.Export(clientConn(t0, uint16(10000+i), uint32(i), flow.OutcomeClosed))
	}
	require.Less(t, time.Since(start), 200*time.Millisecond, "Export waited for the stuck collector")
	st := e.Stats()
	require.Equal(t, uint64(n), st.Conns)
	require.Greater(t, st.Dropped, uint64(n-16-10), "the queue holds 16 connections")
	require.LessOrEqual(t, st.Queued, 16)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.Shutdown(ctx))
	st = e.Stats()
	require.Positive(t, st.ExportErrors)
	require.Equal(t, uint64(0), st.SpansExported)
	require.Equal(t, uint64(n*4), st.SpansDropped, "every span is counted lost")
	e.Export(clientConn(t0, 1, 1, flow.OutcomeClosed))
	require.Equal(t, st.Dropped+1, e.Stats().Dropped, "after Shutdown, Export drops")
	require.ErrorIs(t, e.Flush(ctx), errClosed)
}

func TestConfigErrors(t *testing.T) {
	_, err := New(context.Background(), Config{SampleRatio: 1.5, SpanExporter: tracetest.NewNoopExporter()})
	require.ErrorIs(t, err, errSampleRatio)
	_, err = New(context.Background(), Config{Protocol: "http/json"})
	require.ErrorIs(t, err, errProtocol)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")
	_, err = New(context.Background(), Config{})
	require.True(t, errors.Is(err, errProtocol), "the environment's protocol is checked: %v", err)
}

func TestSideOf(t *testing.T) {
	pod := func(dir flow.Direction) Hop { return Hop{Role: flow.RolePod, Dir: dir} }
	nic := Hop{Role: flow.RoleUplink, Dir: flow.DirOut}
	tests := []struct {
		name string
		hops []Hop
		want Side
	}{
		{"client pod here", []Hop{nic, pod(flow.DirIn)}, SideClient},
		{"backend pod here", []Hop{nic, pod(flow.DirOut)}, SideServer},
		{"both here", []Hop{pod(flow.DirOut), pod(flow.DirIn)}, SideClient},
		{"forwarded only", []Hop{nic, {Role: flow.RoleOverlay, Dir: flow.DirIn}}, SideTransit},
		{"only the server's packets on the veth", []Hop{pod(flow.DirUnknown)}, SideTransit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, SideOf(tt.hops))
		})
	}
	require.Equal(t, SideClient, SideOf(clientConn(0, 1, 1, flow.OutcomeClosed).Hops))
	require.Equal(t, SideServer, SideOf(serverConn(0, 1, 1, flow.OutcomeClosed).Hops))
}

func TestMalformedResourceAttributes(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "team=net,broken")
	e, mem := newMemExporter(t, "node-1", 1)
	e.Export(clientConn(time.Now().UnixNano(), 1, 1, flow.OutcomeClosed))
	require.NoError(t, e.Flush(context.Background()))
	spans := mem.GetSpans()
	require.NotEmpty(t, spans)
	v, ok := spans[0].Resource.Set().Value("team")
	require.True(t, ok, "the well-formed attributes are kept")
	require.Equal(t, "net", v.AsString())
}

func TestServiceVersion(t *testing.T) {
	for _, tt := range []struct{ env, want string }{{"", "v1.2.3"}, {"service.version=v9", "v9"}} {
		t.Setenv("OTEL_RESOURCE_ATTRIBUTES", tt.env)
		mem := tracetest.NewInMemoryExporter()
		e, err := New(context.Background(), Config{Node: "node-1", SampleRatio: 1, SpanExporter: mem,
			BatchTimeout: time.Hour, ServiceVersion: "v1.2.3"})
		require.NoError(t, err)
		e.Export(clientConn(time.Now().UnixNano(), 1, 1, flow.OutcomeClosed))
		require.NoError(t, e.Flush(context.Background()))
		spans := mem.GetSpans()
		require.NoError(t, e.Shutdown(context.Background()))
		require.NotEmpty(t, spans)
		v, ok := spans[0].Resource.Set().Value("service.version")
		require.True(t, ok, "service.version on the resource (OTEL_RESOURCE_ATTRIBUTES=%q)", tt.env)
		require.Equal(t, tt.want, v.AsString())
	}
}

// BenchmarkExport is the cost on the caller's goroutine: error check, trace
// ID, sampling, queue.
func BenchmarkExport(b *testing.B) {
	for _, bc := range []struct {
		name  string
		ratio float64
	}{{"sampled_out", 0}, {"queued", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := New(context.Background(), Config{Node: "node-1", SampleRatio: bc.ratio,
				SpanExporter: tracetest.NewNoopExporter(), MaxQueueSize: 1})
			require.NoError(b, err)
			defer func() { _ = e.Shutdown(context.Background()) }()
			c := clientConn(time.Now().UnixNano(), 40000, 1, flow.OutcomeClosed)
			b.ReportAllocs()
			for b.Loop() {
				e.Export(c)
			}
		})
	}
}

func BenchmarkEmit(b *testing.B) {
	e, err := New(context.Background(), Config{Node: "node-1", SampleRatio: 1, SpanExporter: tracetest.NewNoopExporter(),
		BatchTimeout: time.Hour}) // the benchmark emits on its own goroutine: no ticker flush
	require.NoError(b, err)
	defer func() { _ = e.Shutdown(context.Background()) }()
	t0 := time.Now().UnixNano()
	b.ReportAllocs()
	for b.Loop() {
		e.emit(clientConn(t0, 40000, 1, flow.OutcomeClosed))
	}
}
