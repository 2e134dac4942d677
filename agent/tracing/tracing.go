// Package tracing turns the agent's ended flows into connection traces: a
// correlate.Sink that builds one otlp.Conn per connection and node and hands
// it to the OTLP exporter (exporters/otlp, which owns the span layout, the
// trace ID scheme and sampling).
//
// # Joining the views of a DNATed connection
//
// On the node that translated a connection the flow table reports two
// records, the views before and after the DNAT, at different times. The
// first view of a connection (by conntrack ID) opens a pending otlp.Conn
// that waits JoinWait for the other; Flush exports those whose wait is
// over, with the PMTU reports about the connection as ICMP events. A
// connection that was not DNATed is exported at once.
//
// # Names
//
// Interfaces are named from the agent's workers (captured or recently
// detached links), the service and pods from the Kubernetes metadata store.
//
// # Concurrency
//
// Consume runs on the flow table's sweeping goroutine, Flush on Run's
// ticker; one mutex guards the pending connections. Open and Shutdown are
// called once each by the agent's Run.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/agent/mtu"
	"github.com/layerscope/layerscope/exporters/otlp"
)

// Config says whether and where the agent exports connection traces over
// OTLP. The zero value exports none, unless the standard
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// variable is set.
type Config struct {
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
	// Version is the agent's build, exported as service.version.
	Version string
}

// On reports whether c asks for traces, from its fields or the
// environment.
func (c *Config) On() bool {
	return c.Enabled || c.Endpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// JoinWait is how long the first view of a DNATed connection waits for its
// other view (before or after the DNAT) on this node before export.
const JoinWait = 2 * time.Second

// Links names interfaces by index (workers.Set): ok is false for an
// interface it does not know, whose Link holds only its index and name
// (links.Unknown).
type Links interface {
	LinkOf(idx int) (l links.Link, ok bool)
}

// Tracer is the tracing sink. Its exporter opens with Open; until then
// (and when traces are off) Consume drops what it gets.
type Tracer struct {
	cfg   Config
	node  string
	log   *slog.Logger
	store *kube.Store
	links Links
	pmtu  *mtu.PMTULog
	exp   atomic.Pointer[otlp.Exporter]

	mu      sync.Mutex
	pending map[uint32]*pendingConn
}

type pendingConn struct {
	c        *otlp.Conn
	key      flow.Key // the connection's original (pre-DNAT) tuple
	deadline time.Time
}

// New returns a Tracer for node (empty: the host name) that names what it
// exports from store, ls and pmtu.
func New(cfg Config, node string, store *kube.Store, ls Links, pmtu *mtu.PMTULog, log *slog.Logger) *Tracer {
	if node == "" {
		node, _ = os.Hostname()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Tracer{cfg: cfg, node: node, log: log, store: store, links: ls, pmtu: pmtu, pending: map[uint32]*pendingConn{}}
}

// Open starts the exporter when the configuration asks for traces.
func (t *Tracer) Open(ctx context.Context) error {
	if !t.cfg.On() {
		return nil
	}
	exp, err := otlp.New(ctx, otlp.Config{
		Node: t.node, SampleRatio: t.cfg.SampleRatio, Endpoint: t.cfg.Endpoint, Protocol: t.cfg.Protocol,
		Insecure: t.cfg.Insecure, ServiceVersion: t.cfg.Version, Logger: t.log,
	})
	if err != nil {
		return fmt.Errorf("--otlp-*: %w", err)
	}
	t.exp.Store(exp)
	return nil
}

// Exporter returns the exporter; nil before Open or when traces are off.
func (t *Tracer) Exporter() *otlp.Exporter { return t.exp.Load() }

// Run flushes the joined connections whose wait is over every second until
// ctx is done.
func (t *Tracer) Run(ctx context.Context) {
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			t.Flush(now, false)
		}
	}
}

// hopInfo names interfaces for spans.
func (t *Tracer) hopInfo(idx int32) (string, string) {
	l, ok := t.links.LinkOf(int(idx))
	if ok {
		return l.Name, l.Kind.String()
	}
	return l.Name, ""
}

// Consume takes one ended flow record with the conntrack translation of its
// connection when there is one (a correlate.Sink).
func (t *Tracer) Consume(e *correlate.Enriched, now time.Time) {
	exp := t.exp.Load()
	if exp == nil {
		return
	}
	r, joined := e.Record, e.Conn
	if joined == nil {
		c := &otlp.Conn{Node: t.node, Proto: r.Key.Proto,
			Client:  netip.AddrPortFrom(r.Key.Src, r.Key.SrcPort),
			Backend: netip.AddrPortFrom(r.Key.Dst, r.Key.DstPort)}
		t.name(c)
		c.AddRecord(r, t.hopInfo)
		c.Side = otlp.SideOf(c.Hops)
		c.ICMP = t.icmpFor(r.Key)
		c.Policy = policyOf(e.Policy)
		exp.Export(c)
		return
	}
	tr := e.NAT
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
		p = &pendingConn{c: c, key: tr.Original, deadline: now.Add(JoinWait)}
		t.pending[joined.ID] = p
	}
	p.c.AddRecord(r, t.hopInfo)
	if e.Policy != nil {
		p.c.Policy = policyOf(e.Policy)
	}
}

// policyOf is the span form of a connection's policy explanation (nil:
// none).
func policyOf(p *correlate.Policy) *otlp.Policy {
	if p == nil {
		return nil
	}
	out := &otlp.Policy{Verdict: p.Verdict, Detail: p.Detail}
	for _, d := range p.Denials {
		out.Denials = append(out.Denials, otlp.PolicyDenial{Direction: d.Direction, Namespace: d.Namespace, Policy: d.Policy, Rule: d.Rule})
	}
	return out
}

// name fills in the Kubernetes names of c's service and pods.
func (t *Tracer) name(c *otlp.Conn) {
	store := t.store
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

// podMeta returns the span metadata of the pod holding addr: from the
// pods the store knows, else (a backend on another node) from its
// EndpointSlice entry, without a workload.
func podMeta(store *kube.Store, addr netip.Addr) otlp.Pod {
	if p, ok := store.Pod(addr); ok {
		return otlp.Pod{Namespace: p.Namespace, Name: p.Name, WorkloadKind: p.WorkloadKind, Workload: p.Workload}
	}
	if e, ok := store.Endpoint(addr); ok && e.Pod != "" {
		return otlp.Pod{Namespace: e.Namespace, Name: e.Pod}
	}
	return otlp.Pod{}
}

// icmpFor returns the PMTU reports about the connection whose original
// (pre-DNAT) tuple is k, as trace events.
func (t *Tracer) icmpFor(k flow.Key) []otlp.ICMPError {
	if t.pmtu == nil {
		return nil
	}
	var out []otlp.ICMPError
	for _, r := range t.pmtu.About(k) {
		e := otlp.ICMPError{Time: r.Time.UnixNano(), V6: r.V6, MTU: uint16(min(r.MTU, 65535)), From: r.Reporter, Interface: r.Interface}
		if r.V6 {
			e.Type = 2 // packet too big
		} else {
			e.Type, e.Code = 3, 4 // fragmentation needed
		}
		out = append(out, e)
	}
	return out
}

// Flush exports the joined connections whose wait is over at now (all of
// them when all is set).
func (t *Tracer) Flush(now time.Time, all bool) {
	exp := t.exp.Load()
	if exp == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, p := range t.pending {
		if all || now.After(p.deadline) {
			p.c.Side = otlp.SideOf(p.c.Hops)
			p.c.ICMP = t.icmpFor(p.key)
			exp.Export(p.c)
			delete(t.pending, id)
		}
	}
}

// Shutdown exports every pending connection and stops the exporter,
// waiting until deadline at most for it to send what it holds (an
// unreachable collector holds it there).
func (t *Tracer) Shutdown(deadline time.Time) {
	exp := t.exp.Load()
	if exp == nil {
		return
	}
	t.Flush(time.Now(), true)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := exp.Shutdown(ctx); err != nil {
		t.log.Warn("trace exporter shutdown", "err", err)
	}
}
