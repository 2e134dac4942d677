package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/otlp"
	"github.com/layerscope/layerscope/exporters/prom"
)

// TracesConfig says whether and where the agent exports connection traces
// over OTLP. The zero value exports none, unless the standard
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// variable is set.
type TracesConfig struct {
	// Enabled exports traces (with the OTLP exporter's defaults for
	// whatever is not set).
	Enabled bool
	// Endpoint, Protocol and Insecure override the OTEL_EXPORTER_OTLP_*
	// variables (see otlp.Config).
	Endpoint, Protocol string
	Insecure           bool
	// SampleRatio is the share of error-free connections exported;
	// connections with an error are always exported. Zero exports only
	// those.
	SampleRatio float64
	// Node names this node in spans; empty means Config.Node, else the
	// host name.
	Node string
}

func (c *TracesConfig) enabled() bool {
	return c.Enabled || c.Endpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// traceJoinWait is how long the first view of a DNATed connection waits for
// its other view (before or after the DNAT) on this node before export.
const traceJoinWait = 2 * time.Second

// tracer builds one otlp.Conn per connection and node from the flow
// records the flow table ends, joining the views of a DNATed connection by
// conntrack entry ID.
type tracer struct {
	a       *Agent
	exp     *otlp.Exporter
	node    string
	mu      sync.Mutex
	pending map[uint32]*pendingConn
}

type pendingConn struct {
	c        *otlp.Conn
	key      flow.Key // the connection's original (pre-DNAT) tuple
	deadline time.Time
}

func (a *Agent) openTracer(ctx context.Context) (*tracer, error) {
	cfg := a.cfg.Traces
	if !cfg.enabled() {
		return nil, nil
	}
	node := a.cfg.node()
	if node == "" {
		node, _ = os.Hostname()
	}
	exp, err := otlp.New(ctx, otlp.Config{
		Node: node, SampleRatio: cfg.SampleRatio, Endpoint: cfg.Endpoint, Protocol: cfg.Protocol,
		Insecure: cfg.Insecure, Logger: a.cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("--otlp-*: %w", err)
	}
	return &tracer{a: a, exp: exp, node: node, pending: map[uint32]*pendingConn{}}, nil
}

// hopInfo names interfaces for spans.
func (t *tracer) hopInfo(idx int32) (string, string) {
	if l, ok := t.a.capture.linkOf(int(idx)); ok {
		return l.Name, l.Kind.String()
	}
	return "if" + strconv.Itoa(int(idx)), ""
}

// record takes one ended flow record, with the conntrack translation of
// its connection when there is one.
func (t *tracer) record(r *flow.Record, tr *correlate.Translation, joined *correlate.Conn, now time.Time) {
	if joined == nil {
		c := &otlp.Conn{Node: t.node, Proto: r.Key.Proto,
			Client:  netip.AddrPortFrom(r.Key.Src, r.Key.SrcPort),
			Backend: netip.AddrPortFrom(r.Key.Dst, r.Key.DstPort)}
		t.name(c)
		c.AddRecord(r, t.hopInfo)
		c.Side = otlp.SideOf(c.Hops)
		c.ICMP = t.a.icmpFor(r.Key)
		t.exp.Export(c)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pending[joined.ID]
	if p == nil {
		c := &otlp.Conn{Node: t.node, Proto: joined.Proto, Client: joined.Client, Service: joined.Service, Backend: joined.Backend}
		c.NAT = append(c.NAT, otlp.NAT{Kind: otlp.DNAT, From: joined.Service, To: joined.Backend, ConntrackID: joined.ID})
		if tr.SNAT() {
			c.ClientNAT = netip.AddrPortFrom(tr.Reply.Dst, tr.Reply.DstPort)
			c.NAT = append(c.NAT, otlp.NAT{Kind: otlp.SNAT, From: joined.Client, To: c.ClientNAT, ConntrackID: joined.ID})
		}
		t.name(c)
		p = &pendingConn{c: c, key: tr.Original, deadline: now.Add(traceJoinWait)}
		t.pending[joined.ID] = p
	}
	p.c.AddRecord(r, t.hopInfo)
}

// name fills in the Kubernetes names of c's service and pods.
func (t *tracer) name(c *otlp.Conn) {
	store := t.a.kube.Store()
	if store.Mode() == kube.ModeOff {
		return
	}
	if c.Service.IsValid() {
		if sv, ok := store.Service(c.Service, c.Proto); ok {
			c.ServiceName = sv.Namespace + "/" + sv.Name
		}
	}
	c.ClientPod = podMeta(store, c.Client.Addr())
	c.BackendPod = podMeta(store, c.Backend.Addr())
}

// flush exports the joined connections whose wait is over (all of them
// when all is set).
func (t *tracer) flush(now time.Time, all bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, p := range t.pending {
		if all || now.After(p.deadline) {
			p.c.Side = otlp.SideOf(p.c.Hops)
			p.c.ICMP = t.a.icmpFor(p.key)
			t.exp.Export(p.c)
			delete(t.pending, id)
		}
	}
}

func (t *tracer) shutdown() {
	t.flush(time.Now(), true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.exp.Shutdown(ctx); err != nil {
		t.a.log.Warn("trace exporter shutdown", "err", err)
	}
}

// tracesSource exports the exporter's own accounting.
func (a *Agent) tracesSource() prom.Source {
	return prom.SourceFunc{SourceName: "otlp", Fn: func(e *prom.Emitter) error {
		t := a.tracer.Load()
		if t == nil {
			return nil
		}
		s := t.exp.Stats()
		e.Counter(metricdef.OTLPSpansExported, float64(s.SpansExported))
		e.Counter(metricdef.OTLPSpansDropped, float64(s.SpansDropped))
		e.Counter(metricdef.OTLPExportErrors, float64(s.ExportErrors))
		e.Counter(metricdef.OTLPConnections, float64(s.Conns-s.SampledOut-s.Dropped), "exported")
		e.Counter(metricdef.OTLPConnections, float64(s.SampledOut), "sampled_out")
		e.Counter(metricdef.OTLPConnections, float64(s.Dropped), "dropped")
		e.Counter(metricdef.OTLPForced, float64(s.Forced))
		e.Gauge(metricdef.OTLPQueue, float64(s.Queued))
		return nil
	}}
}
