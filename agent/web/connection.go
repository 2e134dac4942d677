package web

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/history"
	"github.com/layerscope/layerscope/agent/mtu"
)

// connection converts a history entry to its API form.
func (h *Handlers) connection(e *history.Entry) api.Connection {
	r := &e.Record
	c := api.Connection{
		Time: time.Unix(0, e.Time), Seq: e.Seq, Node: h.cfg.Node, State: api.StateFinal, End: r.End.String(),
		Protocol: flow.ProtoName(r.Key.Proto), Outcome: r.Outcome.String(), View: api.ViewDirect,
		Start: time.Unix(0, r.First), Last: time.Unix(0, r.Last),
		Client:  endpoint(netip.AddrPortFrom(r.Key.Src, r.Key.SrcPort)),
		Backend: endpoint(netip.AddrPortFrom(r.Key.Dst, r.Key.DstPort)),
	}
	if e.Kind == history.KindProgress {
		c.State = api.StateProgress
	}
	keys := []flow.Key{r.Key}
	if e.HasNAT && e.NAT.ID != 0 {
		c.ID = "ct:" + strconv.FormatUint(uint64(e.NAT.ID), 10)
	} else {
		h := fnv.New64a()
		k, _ := r.Key.Canonical()
		h.Write([]byte(k.String()))
		h.Write(strconv.AppendInt(nil, r.First, 16))
		c.ID = "flow:" + strconv.FormatUint(h.Sum64(), 16)
	}
	if e.HasNAT {
		t := &e.NAT
		n := &api.NAT{ConntrackID: t.ID, Original: t.Original.String(), Reply: t.Reply.String(), DNAT: t.DNAT(), SNAT: t.SNAT()}
		c.Client = endpoint(netip.AddrPortFrom(t.Original.Src, t.Original.SrcPort))
		if n.DNAT {
			n.From, n.To = t.Service().String(), t.Backend().String()
			svc := endpoint(t.Service())
			c.Service, c.Backend = &svc, endpoint(t.Backend())
			switch t.ViewOf(r.Key) {
			case correlate.ViewPre:
				c.View = api.ViewPre
			case correlate.ViewPost:
				c.View = api.ViewPost
			}
		}
		if n.SNAT {
			n.ClientNAT = netip.AddrPortFrom(t.Reply.Dst, t.Reply.DstPort).String()
		}
		if n.DNAT || n.SNAT {
			c.NAT = n
		}
		keys = append(keys, t.Original)
	}
	for i := range int(min(r.NumHops, flow.MaxHops)) {
		hp := &r.Hops[i]
		name, kind, role := h.hopName(hp.IfIndex, hp.Role)
		c.Hops = append(c.Hops, api.Hop{
			Interface: name, Kind: kind, Role: role, Direction: hp.Dir.String(), Encap: hp.Encap.String(),
			First: time.Unix(0, hp.First), Last: time.Unix(0, hp.Last),
			Packets:     api.Sides{Client: hp.Packets[flow.FromClient], Server: hp.Packets[flow.FromServer]},
			Bytes:       api.Sides{Client: hp.Bytes[flow.FromClient], Server: hp.Bytes[flow.FromServer]},
			Retransmits: api.Sides{Client: uint64(hp.Retransmits[flow.FromClient]), Server: uint64(hp.Retransmits[flow.FromServer])},
			ZeroWindows: api.Sides{Client: uint64(hp.ZeroWindows[flow.FromClient]), Server: uint64(hp.ZeroWindows[flow.FromServer])},
		})
		if hp.Packets[flow.FromClient] > c.Packets.Client {
			c.Packets.Client, c.Bytes.Client = hp.Packets[flow.FromClient], hp.Bytes[flow.FromClient]
		}
		if hp.Packets[flow.FromServer] > c.Packets.Server {
			c.Packets.Server, c.Bytes.Server = hp.Packets[flow.FromServer], hp.Bytes[flow.FromServer]
		}
	}
	if r.Key.Proto == flow.ProtoTCP {
		c.TCP = h.tcpOf(r)
	}
	if r.L7.App != flow.AppNone {
		c.L7 = l7Of(&r.L7)
	}
	h.nameEndpoints(&c, r.Key.Proto)
	c.PMTU = h.pmtuFor(keys)
	c.Layers = layersOf(&c, r)
	if e.Policy != nil {
		c.Policy = policyOf(e.Policy)
		c.Layers = append(c.Layers, policyLayer(c.Policy))
	}
	c.Failed = r.Outcome.Failed() || slices.ContainsFunc(c.Layers, func(l api.Layer) bool { return l.Status == api.StatusFail })
	c.Summary = summary(&c)
	return c
}

// nameEndpoints fills the Kubernetes names of a connection's client,
// service and backend from the metadata store, when there is one: pods by
// IP (this node's from their Pod objects, other nodes' from the
// EndpointSlices that list them) and Services by address and port.
func (h *Handlers) nameEndpoints(c *api.Connection, proto uint8) {
	store := h.cfg.Kube
	if store == nil {
		return
	}
	named := func(e *api.Endpoint) {
		ap, err := netip.ParseAddrPort(e.Addr)
		if err != nil {
			return
		}
		if p, ok := store.Pod(ap.Addr()); ok {
			e.Namespace, e.Pod, e.Workload = p.Namespace, p.Name, p.Workload
			return
		}
		if ep, ok := store.Endpoint(ap.Addr()); ok && ep.Pod != "" {
			e.Namespace, e.Pod = ep.Namespace, ep.Pod
			return
		}
		if v, ok := store.Service(ap, proto); ok {
			e.Namespace, e.Service = v.Namespace, v.Name
		}
	}
	named(&c.Client)
	named(&c.Backend)
	if c.Service != nil {
		named(c.Service)
	}
}

func endpoint(ap netip.AddrPort) api.Endpoint {
	return api.Endpoint{Addr: ap.String(), IP: ap.Addr().String(), Port: ap.Port()}
}

// hopName names a hop's interface; an interface gone for long has no kind,
// and the role the record saw.
func (h *Handlers) hopName(idx int32, role flow.Role) (name, kind, roleName string) {
	l, ok := h.cfg.LinkNames.LinkOf(int(idx))
	if ok {
		return l.Name, l.Kind.String(), l.Role.String()
	}
	return l.Name, "", role.String()
}

// tcpFlags are the names of the flags a flow record keeps (byte 13 of the
// TCP header), as the API spells them.
var tcpFlags = func() (out [8]string) {
	for i := range out {
		out[i] = strings.ToUpper(flow.TCPFlagNames[i])
	}
	return out
}()

func (h *Handlers) tcpOf(r *flow.Record) *api.TCP {
	t := &r.TCP
	out := &api.TCP{
		SYNACK:       t.SYNACK != 0 || r.Outcome == flow.OutcomeEstablished || r.Outcome == flow.OutcomeClosed,
		ServerRTT:    t.ServerRTT().Seconds(),
		ClientRTT:    t.ClientRTT().Seconds(),
		HandshakeRTT: t.HandshakeRTT().Seconds(),
		Retransmits:  api.Sides{Client: uint64(t.Retransmits[0]), Server: uint64(t.Retransmits[1])},
		ZeroWindows:  api.Sides{Client: uint64(t.ZeroWindows[0]), Server: uint64(t.ZeroWindows[1])},
	}
	for i, n := range tcpFlags {
		if t.Flags&(1<<i) != 0 {
			out.Flags = append(out.Flags, n)
		}
	}
	if t.SYN != 0 || t.Flags&flow.TCPSyn != 0 {
		out.SYNs = 1 + int(t.SYNRetransmits)
	}
	out.RSTFrom, out.FINFrom = sides(t.RSTFrom), sides(t.FINFrom)
	if t.HandshakeIfIndex != 0 {
		out.HandshakeInterface, _, _ = h.hopName(t.HandshakeIfIndex, flow.RoleOther)
	}
	return out
}

func sides(bits uint8) []string {
	var out []string
	if bits&(1<<flow.FromClient) != 0 {
		out = append(out, "client")
	}
	if bits&(1<<flow.FromServer) != 0 {
		out = append(out, "server")
	}
	return out
}

func l7Of(ai *flow.AppInfo) *api.L7 {
	out := &api.L7{App: ai.App.String(), Requests: ai.Requests, Responses: ai.Responses, Errors: ai.Errors, Unanswered: ai.Unanswered}
	if ai.App == flow.AppDNS {
		out.Name, out.NameTruncated = ai.DNSName()
	}
	for i := range int(min(ai.NumExchanges, flow.MaxExchanges)) {
		x := ai.Exchanges[i]
		e := api.Exchange{Time: time.Unix(0, x.Start), Latency: x.Latency.Seconds(), ID: x.ID, Failed: x.Failed(ai.App)}
		if ai.App == flow.AppDNS {
			e.Rcode = flow.Rcode(x.Code).String()
			if !x.OtherName {
				e.Name, e.NameTruncated = out.Name, out.NameTruncated
			}
		} else {
			e.Status = int(x.Code)
		}
		out.Exchanges = append(out.Exchanges, e)
	}
	return out
}

// pmtuFor returns the PMTU reports about the connection of any of keys.
func (h *Handlers) pmtuFor(keys []flow.Key) []api.PMTUReport {
	var out []api.PMTUReport
	for _, r := range h.cfg.PMTU.About(keys...) {
		out = append(out, apiPMTU(&r))
	}
	return out
}

// apiPMTU is the API form of a PMTU report.
func apiPMTU(r *mtu.PMTUReport) api.PMTUReport {
	return api.PMTUReport{Time: r.Time, Interface: r.Interface, Reporter: r.Reporter.String(), MTU: r.MTU, Quoted: r.Quoted.String(),
		Flow: r.Flow.String(), Translated: r.Translated, Attributed: r.Attributed, Count: r.Count}
}

// layersOf gives the verdict of each layer from what the record shows.
func layersOf(c *api.Connection, r *flow.Record) []api.Layer {
	active := c.State == api.StateProgress
	l3 := api.Layer{Layer: "l3", Status: api.StatusOK}
	switch {
	case len(c.PMTU) > 0:
		l3.Status, l3.Detail = api.StatusFail, "frag-needed MTU "+strconv.Itoa(int(c.PMTU[len(c.PMTU)-1].MTU))
	case c.Packets.Server > 0:
	case active:
		l3.Status, l3.Detail = api.StatusPending, "no reply yet"
	default:
		l3.Status, l3.Detail = api.StatusUnknown, "no reply"
	}
	l4 := api.Layer{Layer: "l4", Status: api.StatusOK}
	syns := "SYN"
	if c.TCP != nil && c.TCP.SYNs > 1 {
		syns = "SYN×" + strconv.Itoa(c.TCP.SYNs)
	}
	switch r.Outcome {
	case flow.OutcomeSynSent:
		l4.Status, l4.Detail = api.StatusPending, syns+" no SYN-ACK"
	case flow.OutcomeTimeout:
		l4.Status, l4.Detail = api.StatusFail, syns+" no SYN-ACK"
	case flow.OutcomeRefused:
		l4.Status, l4.Detail = api.StatusFail, syns+" → RST"
	case flow.OutcomeReset:
		l4.Status, l4.Detail = api.StatusFail, "RST from "+strings.Join(c.TCP.RSTFrom, "+")
	case flow.OutcomeEstablished, flow.OutcomeClosed:
		l4.Detail = r.Outcome.String()
		if c.TCP.HandshakeRTT > 0 {
			l4.Detail += ", handshake " + fmtSeconds(c.TCP.HandshakeRTT)
		}
	case flow.OutcomeReplied:
		l4.Detail = "replied"
	case flow.OutcomeUnreplied:
		l4.Status, l4.Detail = api.StatusUnknown, "no reply"
		if active {
			l4.Status = api.StatusPending
		}
	default:
		l4.Status, l4.Detail = api.StatusUnknown, "picked up mid-stream"
	}
	if c.TCP != nil && c.TCP.Retransmits != (api.Sides{}) {
		l4.Detail += fmt.Sprintf(" (retrans %d/%d)", c.TCP.Retransmits.Client, c.TCP.Retransmits.Server)
	}
	out := []api.Layer{l3, l4}
	if c.L7 != nil {
		out = append(out, l7Layer(c.L7, active))
	}
	return out
}

func l7Layer(x *api.L7, active bool) api.Layer {
	l := api.Layer{Layer: "l7", Status: api.StatusOK}
	name := strings.ToUpper(x.App)
	for _, e := range x.Exchanges {
		if e.Failed {
			l.Status = api.StatusFail
			if e.Rcode != "" {
				l.Detail = name + " " + e.Rcode + dnsNameSuffix(e.Name, e.NameTruncated)
			} else {
				l.Detail = name + " " + strconv.Itoa(e.Status)
			}
			return l
		}
	}
	switch {
	case x.Errors > 0:
		l.Status, l.Detail = api.StatusFail, fmt.Sprintf("%s %d errors", name, x.Errors)
	case x.Unanswered > 0 || x.Requests > x.Responses:
		n := max(x.Unanswered, x.Requests-min(x.Responses, x.Requests))
		l.Status, l.Detail = api.StatusFail, fmt.Sprintf("%s %d unanswered", name, n)+dnsNameSuffix(x.Name, x.NameTruncated)
		if active {
			l.Status = api.StatusPending
		}
	case len(x.Exchanges) > 0:
		e := x.Exchanges[0]
		if e.Rcode != "" {
			l.Detail = name + " " + e.Rcode + dnsNameSuffix(e.Name, e.NameTruncated)
		} else {
			l.Detail = name + " " + strconv.Itoa(e.Status)
		}
	default:
		l.Status, l.Detail = api.StatusUnknown, name+dnsNameSuffix(x.Name, x.NameTruncated)
	}
	return l
}

// dnsNameSuffix is " name" for a layer detail ("DNS NXDOMAIN my-svc.default"),
// with "…" after a truncated name; "" without a name.
func dnsNameSuffix(name string, truncated bool) string {
	if name == "" {
		return ""
	}
	if truncated {
		name += "…"
	}
	return " " + name
}

func fmtSeconds(s float64) string {
	d := time.Duration(s * 1e9)
	switch {
	case d < time.Millisecond:
		return strconv.FormatFloat(s*1e6, 'f', 0, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(s*1e3, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(s, 'f', 2, 64) + "s"
}

// summary is the one-line layer verdict observe prints.
func summary(c *api.Connection) string {
	parts := make([]string, 0, 4)
	for _, l := range c.Layers {
		if l.Layer == "policy" && l.Status != api.StatusFail {
			continue // only a denial is worth the line's room
		}
		s := strings.ToUpper(l.Layer) + " "
		switch {
		case l.Layer == "l7" || l.Status != api.StatusOK:
			s += l.Detail
		default:
			s += "ok"
		}
		parts = append(parts, s)
	}
	if c.NAT != nil && c.NAT.DNAT {
		parts = append(parts, "DNAT "+c.NAT.From+"→"+c.NAT.To)
	}
	return strings.Join(parts, " · ")
}

// policyOf converts the agent's policy explanation to its API form.
func policyOf(p *correlate.Policy) *api.Policy {
	out := &api.Policy{Verdict: p.Verdict, Detail: p.Detail, AllowedBy: p.AllowedBy}
	for _, d := range p.Denials {
		out.Denials = append(out.Denials, api.PolicyDenial{Direction: d.Direction, Namespace: d.Namespace, Pod: d.Pod,
			Policy: d.Policy, Policies: d.Policies, Rule: d.Rule, Change: d.RuleChange})
	}
	return out
}

// policyLayer is the "policy" layer of a connection the NetworkPolicies
// were asked about: fail when they deny it ("ingress denied by ns/name"),
// ok when they allow it, unknown when they were not synced.
func policyLayer(p *api.Policy) api.Layer {
	l := api.Layer{Layer: "policy", Status: api.StatusOK, Detail: "no NetworkPolicy denies it"}
	switch p.Verdict {
	case api.PolicyDenied:
		parts := make([]string, len(p.Denials))
		for i, d := range p.Denials {
			parts[i] = d.Direction + " denied by " + d.Namespace + "/" + d.Policy
		}
		l.Status, l.Detail = api.StatusFail, strings.Join(parts, ", ")
	case api.PolicyUnknown:
		l.Status, l.Detail = api.StatusUnknown, "NetworkPolicies not synced"
	}
	return l
}
