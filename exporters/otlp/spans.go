package otlp

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/layerscope/layerscope/agent/flow"
)

// Attribute keys of the layerscope namespace.
const (
	AttrLayer          = attribute.Key("layerscope.layer")
	AttrSide           = attribute.Key("layerscope.side")
	AttrOutcome        = attribute.Key("layerscope.outcome")
	AttrServiceVIP     = attribute.Key("layerscope.service.vip")
	AttrServiceName    = attribute.Key("layerscope.service.name")
	AttrBackend        = attribute.Key("layerscope.backend")
	AttrClientPod      = attribute.Key("layerscope.client.pod")
	AttrBackendPod     = attribute.Key("layerscope.backend.pod")
	AttrClientNAT      = attribute.Key("layerscope.client.nat")
	AttrTCPISN         = attribute.Key("layerscope.tcp.isn")
	AttrHopIndex       = attribute.Key("layerscope.hop.index")
	AttrHopGap         = attribute.Key("layerscope.hop.gap_ns")
	AttrIfIndex        = attribute.Key("layerscope.interface.index")
	AttrIfRole         = attribute.Key("layerscope.interface.role")
	AttrIfKind         = attribute.Key("layerscope.interface.kind")
	AttrDirection      = attribute.Key("layerscope.direction")
	AttrEncap          = attribute.Key("layerscope.encap")
	AttrVNI            = attribute.Key("layerscope.vni")
	AttrPacketsClient  = attribute.Key("layerscope.packets.client")
	AttrPacketsServer  = attribute.Key("layerscope.packets.server")
	AttrBytesClient    = attribute.Key("layerscope.bytes.client")
	AttrBytesServer    = attribute.Key("layerscope.bytes.server")
	AttrRetransClient  = attribute.Key("layerscope.tcp.retransmits.client")
	AttrRetransServer  = attribute.Key("layerscope.tcp.retransmits.server")
	AttrRetransSYN     = attribute.Key("layerscope.tcp.retransmits.syn")
	AttrRSTFrom        = attribute.Key("layerscope.tcp.rst.from")
	AttrNATKind        = attribute.Key("layerscope.nat.kind")
	AttrNATFrom        = attribute.Key("layerscope.nat.from")
	AttrNATTo          = attribute.Key("layerscope.nat.to")
	AttrConntrackID    = attribute.Key("layerscope.conntrack.id")
	AttrICMPType       = attribute.Key("layerscope.icmp.type")
	AttrICMPCode       = attribute.Key("layerscope.icmp.code")
	AttrICMPMTU        = attribute.Key("layerscope.icmp.mtu")
	AttrDNSRcode       = attribute.Key("layerscope.dns.rcode")
	AttrDNSRcodeName   = attribute.Key("layerscope.dns.rcode_name")
	AttrDNSID          = attribute.Key("layerscope.dns.id")
	AttrLatencySeconds = attribute.Key("layerscope.latency_s")
	AttrPolicyVerdict  = attribute.Key("layerscope.policy.verdict")
	AttrPolicyDetail   = attribute.Key("layerscope.policy.detail")
	AttrPolicyDir      = attribute.Key("layerscope.policy.direction")
	AttrPolicyNS       = attribute.Key("layerscope.policy.namespace")
	AttrPolicyName     = attribute.Key("layerscope.policy.name")
	AttrPolicyRule     = attribute.Key("layerscope.policy.rule")
)

// Span event names.
const (
	EventNAT         = "conntrack.nat"
	EventFragNeeded  = "icmp.frag_needed"
	EventICMPError   = "icmp.error"
	EventRetransmits = "tcp.retransmissions"
	EventRST         = "tcp.rst"
	EventPolicy      = "policy.denied"
)

// emit turns c into spans. It runs on the exporter's worker only: the spans
// end into the worker's batch.
func (e *Exporter) emit(c *Conn) {
	node := c.Node
	if node == "" {
		node = e.cfg.Node
	}
	tid := c.TraceID(e.cfg.UDPBucket)
	side := c.Side
	ctx := context.Background()
	kind := trace.SpanKindInternal
	var sid trace.SpanID
	switch side {
	case SideClient:
		kind = trace.SpanKindClient
		sid = ClientSpanID(tid)
	default:
		if side == SideServer {
			kind = trace.SpanKindServer
		}
		sid = nodeSpanID(tid, node, side, purposeConn, 0)
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: ClientSpanID(tid), TraceFlags: trace.FlagsSampled, Remote: true,
		}))
	}
	first, last := c.First, max(c.Last, c.First)
	errType := c.ErrorType()

	ctx, span := e.tracer.Start(withSpanIDs(ctx, tid, sid), connName(c),
		trace.WithTimestamp(time.Unix(0, first)), trace.WithSpanKind(kind),
		trace.WithAttributes(connAttrs(c, node, errType)...))

	for i := range c.NAT {
		n := &c.NAT[i]
		at := n.Time
		if at == 0 {
			at = first
		}
		attrs := []attribute.KeyValue{AttrLayer.String("l3"), AttrNATKind.String(n.Kind.String()),
			AttrNATFrom.String(n.From.String()), AttrNATTo.String(n.To.String())}
		if n.ConntrackID != 0 {
			attrs = append(attrs, AttrConntrackID.Int64(int64(n.ConntrackID)))
		}
		span.AddEvent(EventNAT, trace.WithTimestamp(time.Unix(0, at)), trace.WithAttributes(attrs...))
	}
	for i := range c.ICMP {
		m := &c.ICMP[i]
		name := EventICMPError
		if m.FragNeeded() {
			name = EventFragNeeded
		}
		attrs := []attribute.KeyValue{AttrLayer.String("l3"),
			AttrICMPType.Int(int(m.Type)), AttrICMPCode.Int(int(m.Code))}
		if m.MTU != 0 {
			attrs = append(attrs, AttrICMPMTU.Int(int(m.MTU)))
		}
		if m.From.IsValid() {
			attrs = append(attrs, semconv.NetworkPeerAddress(m.From.String()))
		}
		if m.Interface != "" {
			attrs = append(attrs, semconv.NetworkInterfaceName(m.Interface))
		}
		span.AddEvent(name, trace.WithTimestamp(time.Unix(0, orTime(m.Time, last))), trace.WithAttributes(attrs...))
	}
	if c.Retransmits != [2]uint32{} || c.SYNRetransmits != 0 {
		// The flow record counts retransmissions without their times: the
		// event sits at the connection's last packet.
		span.AddEvent(EventRetransmits, trace.WithTimestamp(time.Unix(0, last)), trace.WithAttributes(
			AttrLayer.String("l4"),
			AttrRetransClient.Int64(int64(c.Retransmits[flow.FromClient])),
			AttrRetransServer.Int64(int64(c.Retransmits[flow.FromServer])),
			AttrRetransSYN.Int(int(c.SYNRetransmits))))
	}
	if p := c.Policy; p != nil {
		span.SetAttributes(AttrPolicyVerdict.String(p.Verdict), AttrPolicyDetail.String(p.Detail))
		for _, d := range p.Denials {
			span.AddEvent(EventPolicy, trace.WithTimestamp(time.Unix(0, last)), trace.WithAttributes(
				AttrLayer.String("policy"), AttrPolicyDir.String(d.Direction), AttrPolicyNS.String(d.Namespace),
				AttrPolicyName.String(d.Policy), AttrPolicyRule.String(d.Rule)))
		}
	}
	if c.RSTFrom != 0 {
		span.AddEvent(EventRST, trace.WithTimestamp(time.Unix(0, orTime(c.RSTTime, last))), trace.WithAttributes(
			AttrLayer.String("l4"), AttrRSTFrom.String(sidesName(c.RSTFrom))))
	}

	// Hops in the order the connection reached them, each a child span
	// from its first to its last packet, with the time since the previous
	// hop's first packet.
	slices.SortStableFunc(c.Hops, func(a, b Hop) int {
		switch {
		case a.First < b.First:
			return -1
		case a.First > b.First:
			return 1
		}
		return 0
	})
	for i := range c.Hops {
		h := &c.Hops[i]
		var gap int64
		if i > 0 {
			gap = h.First - c.Hops[i-1].First
		}
		_, hs := e.tracer.Start(withSpanIDs(ctx, tid, nodeSpanID(tid, node, side, purposeHop, i)), hopName(h),
			trace.WithTimestamp(time.Unix(0, h.First)), trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(hopAttrs(h, i, gap)...))
		hs.End(trace.WithTimestamp(time.Unix(0, max(h.Last, h.First))))
	}

	xkind := trace.SpanKindClient
	if side != SideClient {
		xkind = trace.SpanKindServer
	}
	for i := range c.Exchanges {
		x := &c.Exchanges[i]
		name, attrs := exchangeSpan(x)
		_, xs := e.tracer.Start(withSpanIDs(ctx, tid, nodeSpanID(tid, node, side, purposeExchange, i)), name,
			trace.WithTimestamp(time.Unix(0, x.Start)), trace.WithSpanKind(xkind),
			trace.WithAttributes(attrs...))
		if x.Failed() {
			xs.SetStatus(codes.Error, name+" failed: "+exchangeCode(x))
		}
		xs.End(trace.WithTimestamp(time.Unix(0, x.Start).Add(x.Latency)))
	}

	if errType != "" {
		span.SetStatus(codes.Error, errType)
	}
	span.End(trace.WithTimestamp(time.Unix(0, last)))
}

func orTime(t, def int64) int64 {
	if t == 0 {
		return def
	}
	return t
}

// connName is "<transport> <target>": the service the client asked for, else
// the backend.
func connName(c *Conn) string {
	target := c.Service
	if !target.IsValid() {
		target = c.Backend
	}
	return flow.ProtoName(c.Proto) + " " + target.String()
}

func hopName(h *Hop) string {
	if h.Interface != "" {
		return "hop " + h.Interface
	}
	return "hop ifindex " + strconv.Itoa(int(h.IfIndex))
}

func connAttrs(c *Conn, node, errType string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 28)
	attrs = append(attrs,
		semconv.NetworkTransportKey.String(flow.ProtoName(c.Proto)),
		AttrLayer.String("l4"),
		AttrSide.String(c.Side.String()),
		AttrOutcome.String(c.Outcome.String()),
	)
	if node != "" {
		attrs = append(attrs, semconv.K8SNodeName(node))
	}
	if c.Client.IsValid() {
		attrs = append(attrs, networkType(c.Client.Addr()),
			semconv.ClientAddress(c.Client.Addr().String()), semconv.ClientPort(int(c.Client.Port())))
	}
	server := c.Service
	if !server.IsValid() {
		server = c.Backend
	}
	if server.IsValid() {
		attrs = append(attrs, semconv.ServerAddress(server.Addr().String()), semconv.ServerPort(int(server.Port())))
	}
	// The peer is the other end of the wire from this node's end.
	peer := c.Backend
	if c.Side == SideServer {
		peer = c.Client
		if c.ClientNAT.IsValid() {
			peer = c.ClientNAT
		}
	}
	if peer.IsValid() {
		attrs = append(attrs, semconv.NetworkPeerAddress(peer.Addr().String()), semconv.NetworkPeerPort(int(peer.Port())))
	}
	if c.Service.IsValid() {
		attrs = append(attrs, AttrServiceVIP.String(c.Service.String()))
	}
	if c.ServiceName != "" {
		attrs = append(attrs, AttrServiceName.String(c.ServiceName))
		if i := strings.IndexByte(c.ServiceName, '/'); i >= 0 {
			attrs = append(attrs, semconv.K8SServiceName(c.ServiceName[i+1:]))
		}
	}
	attrs = appendK8s(attrs, c)
	if c.Backend.IsValid() {
		attrs = append(attrs, AttrBackend.String(c.Backend.String()))
	}
	if c.ClientNAT.IsValid() {
		attrs = append(attrs, AttrClientNAT.String(c.ClientNAT.String()))
	}
	if c.HasISN {
		attrs = append(attrs, AttrTCPISN.Int64(int64(c.ISN)))
	}
	if errType != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(errType))
	}
	return attrs
}

// appendK8s adds the semantic-convention k8s.* attributes of the pod at
// this node's end of the connection (the client's on SideClient, the
// backend's on SideServer), and both ends' pods as namespace/name.
func appendK8s(attrs []attribute.KeyValue, c *Conn) []attribute.KeyValue {
	if p := c.ClientPod; p.Name != "" {
		attrs = append(attrs, AttrClientPod.String(p.Namespace+"/"+p.Name))
	}
	if p := c.BackendPod; p.Name != "" {
		attrs = append(attrs, AttrBackendPod.String(p.Namespace+"/"+p.Name))
	}
	var p *Pod
	switch c.Side {
	case SideClient:
		p = &c.ClientPod
	case SideServer:
		p = &c.BackendPod
	}
	if p == nil || p.Name == "" {
		return attrs
	}
	attrs = append(attrs, semconv.K8SNamespaceName(p.Namespace), semconv.K8SPodName(p.Name))
	switch p.WorkloadKind {
	case "Deployment":
		attrs = append(attrs, semconv.K8SDeploymentName(p.Workload))
	case "ReplicaSet":
		attrs = append(attrs, semconv.K8SReplicaSetName(p.Workload))
	case "StatefulSet":
		attrs = append(attrs, semconv.K8SStatefulSetName(p.Workload))
	case "DaemonSet":
		attrs = append(attrs, semconv.K8SDaemonSetName(p.Workload))
	case "Job":
		attrs = append(attrs, semconv.K8SJobName(p.Workload))
	case "CronJob":
		attrs = append(attrs, semconv.K8SCronJobName(p.Workload))
	}
	return attrs
}

func networkType(a netip.Addr) attribute.KeyValue {
	if a.Is4() || a.Is4In6() {
		return semconv.NetworkTypeIPv4
	}
	return semconv.NetworkTypeIPv6
}

func hopAttrs(h *Hop, index int, gap int64) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 16)
	attrs = append(attrs,
		AttrLayer.String("l2"),
		AttrHopIndex.Int(index),
		AttrHopGap.Int64(gap),
		AttrIfIndex.Int(int(h.IfIndex)),
		AttrIfRole.String(h.Role.String()),
		AttrDirection.String(h.Dir.String()),
		AttrPacketsClient.Int64(int64(h.Packets[flow.FromClient])),
		AttrPacketsServer.Int64(int64(h.Packets[flow.FromServer])),
		AttrBytesClient.Int64(int64(h.Bytes[flow.FromClient])),
		AttrBytesServer.Int64(int64(h.Bytes[flow.FromServer])),
	)
	if h.Interface != "" {
		attrs = append(attrs, semconv.NetworkInterfaceName(h.Interface))
	}
	if h.Kind != "" {
		attrs = append(attrs, AttrIfKind.String(h.Kind))
	}
	if h.Encap != flow.EncapNone {
		attrs = append(attrs, AttrEncap.String(h.Encap.String()), AttrVNI.Int64(int64(h.VNI)))
	}
	if h.Retransmits != [2]uint32{} {
		attrs = append(attrs,
			AttrRetransClient.Int64(int64(h.Retransmits[flow.FromClient])),
			AttrRetransServer.Int64(int64(h.Retransmits[flow.FromServer])))
	}
	return attrs
}

func exchangeCode(x *Exchange) string {
	if x.App == flow.AppDNS {
		return flow.Rcode(x.Code).String()
	}
	return strconv.Itoa(int(x.Code))
}

// exchangeSpan returns the name and attributes of an exchange's span.
func exchangeSpan(x *Exchange) (string, []attribute.KeyValue) {
	attrs := []attribute.KeyValue{AttrLayer.String("l7"), AttrLatencySeconds.Float64(x.Latency.Seconds())}
	switch x.App {
	case flow.AppDNS:
		attrs = append(attrs, AttrDNSRcode.Int(int(x.Code)), AttrDNSRcodeName.String(flow.Rcode(x.Code).String()),
			AttrDNSID.Int(int(x.DNSID)))
		name := "DNS query"
		if x.Name != "" {
			attrs = append(attrs, semconv.DNSQuestionName(x.Name))
			name = "DNS " + x.Name
		}
		if x.Failed() {
			attrs = append(attrs, semconv.ErrorTypeKey.String(flow.Rcode(x.Code).String()))
		}
		return name, attrs
	default:
		attrs = append(attrs, semconv.HTTPResponseStatusCode(int(x.Code)))
		name := "HTTP"
		if x.Name != "" {
			attrs = append(attrs, semconv.HTTPRequestMethodKey.String(x.Name))
			name = x.Name
		}
		if x.Failed() {
			attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(int(x.Code))))
		}
		return name, attrs
	}
}

// sidesName names a bit set of flow.FromClient/FromServer.
func sidesName(bits uint8) string {
	switch bits & (1<<flow.FromClient | 1<<flow.FromServer) {
	case 1 << flow.FromClient:
		return "client"
	case 1 << flow.FromServer:
		return "server"
	case 1<<flow.FromClient | 1<<flow.FromServer:
		return "both"
	}
	return "none"
}
