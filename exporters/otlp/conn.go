package otlp

import (
	"net/netip"
	"slices"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// Side says which end of a connection the exporting node holds. It decides
// where the node's connection span sits in the trace (see the package
// documentation, "Trace and span IDs").
type Side uint8

const (
	// SideClient: the client is on this node (its pod veth is here). The
	// node's connection span is the root of the trace, with the span ID every
	// other node derives as the parent of its own spans. A connection whose
	// client and backend are both on this node is exported once, as
	// SideClient.
	SideClient Side = iota
	// SideServer: the backend is on this node and the client is not.
	SideServer
	// SideTransit: neither end is on this node (a node that only forwards,
	// such as the one a NodePort connection entered by).
	SideTransit
)

// String returns "client", "server" or "transit".
func (s Side) String() string {
	switch s {
	case SideClient:
		return "client"
	case SideServer:
		return "server"
	case SideTransit:
		return "transit"
	}
	return "unknown"
}

// SideOf tells the side of a node from the hops it saw a connection on: the
// client is here when a pod veth received the client's packets (they came
// out of a local pod), the backend when a pod veth sent them (into a local
// pod); neither means the node only forwarded. Both (a same-node connection)
// is SideClient.
func SideOf(hops []Hop) Side {
	side := SideTransit
	for i := range hops {
		if hops[i].Role != flow.RolePod {
			continue
		}
		switch hops[i].Dir {
		case flow.DirIn:
			return SideClient
		case flow.DirOut:
			side = SideServer
		}
	}
	return side
}

// Conn is one connection as one node saw it, the input of Exporter.Export.
// The agent fills it from the flow records of the connection's views (the
// pre-DNAT view on the client's pod veth, the post-DNAT view on the overlay
// device and the NIC) and the conntrack translation joining them; AddRecord
// does the flow-record part.
//
// Times are Unix nanoseconds, as in agent/flow. The zero value of every field
// means "not known": such fields are left out of the spans.
type Conn struct {
	// Node is the name of the node that saw the connection (k8s.node.name).
	// Empty means Config.Node. Each node's spans get span IDs of their own
	// derived from it, so two nodes must not share a name.
	Node string
	// Side is the end of the connection this node holds.
	Side Side
	// Proto is the IP protocol number (flow.ProtoTCP, flow.ProtoUDP, …).
	Proto uint8
	// Client is the client's address and port as the client sent them.
	Client netip.AddrPort
	// ClientNAT is the client's address and port after SNAT (masquerade), as
	// the backend sees them; the zero value means the source was not
	// translated.
	ClientNAT netip.AddrPort
	// Service is the destination the client asked for before DNAT: a
	// ClusterIP:port or NodeIP:NodePort. Zero when the connection was not
	// DNATed, or on a node that only saw it after DNAT (the backend's node).
	Service netip.AddrPort
	// ServiceName names the Service ("namespace/name") when known.
	ServiceName string
	// ClientPod and BackendPod name the Kubernetes pods at the two ends
	// when known; the span carries the k8s.* attributes of the one on this
	// node's side (see the package documentation, "Span model").
	ClientPod, BackendPod Pod
	// Backend is where the connection really went: the destination after
	// DNAT, or the server itself when the connection was not DNATed.
	// Together with Client (or ClientNAT), Proto and ISN it is the identity
	// the trace ID is derived from.
	Backend netip.AddrPort
	// Outcome is what became of the connection.
	Outcome flow.Outcome
	// First and Last are the times of the connection's first and last packet
	// on any hop of this node.
	First, Last int64
	// ISN is the initial sequence number of the client's SYN; HasISN says
	// the SYN was seen. TCP connections without it (picked up mid-stream) are
	// identified like UDP ones, by tuple and time bucket.
	ISN    uint32
	HasISN bool

	// Hops are the interfaces of this node the connection crossed, in
	// any order: the exporter orders them by their first packet.
	Hops []Hop
	// NAT are the address translations the kernel applied (conntrack).
	NAT []NAT
	// ICMP are ICMP errors about the connection (fragmentation needed,
	// unreachable, time exceeded).
	ICMP []ICMPError
	// Retransmits counts TCP retransmissions by sending side (indexed by
	// flow.FromClient and flow.FromServer); SYNRetransmits the client's
	// repeated SYNs.
	Retransmits    [2]uint32
	SYNRetransmits uint16
	// RSTFrom has bit 1<<flow.FromClient and/or 1<<flow.FromServer set when
	// that side sent a RST; RSTTime is when the first was seen (zero: the
	// time is not known, Last is used).
	RSTFrom uint8
	RSTTime int64
	// Exchanges are the DNS queries and HTTP requests of the connection.
	Exchanges []Exchange
	// Policy is what the Kubernetes NetworkPolicies say of the connection
	// when it failed; nil when they were not asked.
	Policy *Policy
}

// Policy is the NetworkPolicies' explanation of a failed connection.
type Policy struct {
	// Verdict is "policy" (policies deny it), "unexplained" (they allow it
	// or none selects its pods) or "unknown" (not synced).
	Verdict string
	// Detail is the explanation in one line.
	Detail string
	// Denials has one entry per denying direction.
	Denials []PolicyDenial
}

// PolicyDenial is one direction whose policies deny the connection.
type PolicyDenial struct {
	// Direction is "ingress" or "egress"; Namespace and Policy name the
	// policy reported, Rule the rule that would have to change.
	Direction, Namespace, Policy, Rule string
}

// Pod names a Kubernetes pod and its workload. The zero value means unknown.
type Pod struct {
	Namespace, Name string
	// WorkloadKind is Deployment, ReplicaSet, StatefulSet, DaemonSet, Job,
	// CronJob or Pod (a pod without a controller); Workload its name.
	WorkloadKind, Workload string
}

// Hop is one interface of this node that the connection crossed.
type Hop struct {
	// Interface is the interface's name (network.interface.name); IfIndex
	// its index on the node.
	Interface string
	IfIndex   int32
	// Role is the part the interface plays (pod veth, overlay, uplink, …).
	Role flow.Role
	// Kind is the link kind as rtnetlink reports it: "veth", "vxlan",
	// "geneve", "bridge", "device".
	Kind string
	// Dir is the direction, at this interface, of the client's packets.
	Dir flow.Direction
	// First and Last are the times of the first and last packet of the
	// connection seen here.
	First, Last int64
	// Packets and Bytes by sending side (flow.FromClient, flow.FromServer).
	Packets, Bytes [2]uint64
	// Retransmits counts TCP retransmissions seen here by sending side.
	Retransmits [2]uint32
	// Encap is the encapsulation the connection was seen in here, VNI its
	// virtual network identifier.
	Encap flow.Encap
	VNI   uint32
}

// NATKind is the kind of an address translation.
type NATKind uint8

// NAT kinds.
const (
	DNAT NATKind = iota // destination translated: service → backend
	SNAT                // source translated: client → node address (masquerade)
)

// String returns "dnat" or "snat".
func (k NATKind) String() string {
	if k == SNAT {
		return "snat"
	}
	return "dnat"
}

// NAT is one address translation of the connection by the kernel.
type NAT struct {
	// Time is when the translation was observed (the conntrack event, or the
	// first packet seen translated); zero means First.
	Time int64
	Kind NATKind
	// From and To are the address before and after translation.
	From, To netip.AddrPort
	// ConntrackID is the conntrack entry ID when known.
	ConntrackID uint32
}

// ICMP types the exporter names.
const (
	ICMPDestUnreachable uint8 = 3
	ICMPTimeExceeded    uint8 = 11
	ICMPCodeFragNeeded  uint8 = 4 // with ICMPDestUnreachable
	ICMPv6PacketTooBig  uint8 = 2
)

// ICMPError is an ICMP error message about the connection.
type ICMPError struct {
	Time int64
	// V6 says Type and Code are ICMPv6 values.
	V6         bool
	Type, Code uint8
	// MTU is the next-hop MTU of a fragmentation-needed or packet-too-big
	// message.
	MTU uint16
	// From is the router or host that sent the message.
	From netip.Addr
	// Interface is where the message was seen.
	Interface string
}

// FragNeeded reports whether the message is an IPv4 "fragmentation needed"
// or an ICMPv6 "packet too big".
func (e *ICMPError) FragNeeded() bool {
	if e.V6 {
		return e.Type == ICMPv6PacketTooBig
	}
	return e.Type == ICMPDestUnreachable && e.Code == ICMPCodeFragNeeded
}

// Exchange is one DNS query or HTTP request and its response.
type Exchange struct {
	App flow.App
	// Start is when the request was seen; Latency the time to its response.
	Start   int64
	Latency time.Duration
	// Code is the DNS rcode or the HTTP status code.
	Code uint16
	// Name is the DNS question name, or for HTTP the request method; empty
	// when not known.
	Name string
	// DNSID is the DNS message ID.
	DNSID uint16
}

// Failed reports whether the response is an error: a DNS rcode other than
// NOERROR, an HTTP status of 500 or above.
func (x *Exchange) Failed() bool {
	return flow.Exchange{Code: x.Code}.Failed(x.App)
}

// Error types, the error.type attribute of a failed connection.
const (
	ErrTypeRefused    = "refused"
	ErrTypeTimeout    = "timeout"
	ErrTypeReset      = "reset"
	ErrTypeFragNeeded = "frag_needed"
	ErrTypeICMP       = "icmp_error"
	ErrTypeDNS        = "dns_error"
	ErrTypeHTTP       = "http_5xx"
)

// ErrorType returns the connection's error, one of the ErrType constants, or
// "" when it had none. Connections with an error are exported whatever the
// sampling ratio.
func (c *Conn) ErrorType() string {
	switch c.Outcome {
	case flow.OutcomeRefused:
		return ErrTypeRefused
	case flow.OutcomeTimeout:
		return ErrTypeTimeout
	case flow.OutcomeReset:
		return ErrTypeReset
	}
	icmp := false
	for i := range c.ICMP {
		if c.ICMP[i].FragNeeded() {
			return ErrTypeFragNeeded
		}
		icmp = true
	}
	if icmp {
		return ErrTypeICMP
	}
	for i := range c.Exchanges {
		if c.Exchanges[i].Failed() {
			if c.Exchanges[i].App == flow.AppDNS {
				return ErrTypeDNS
			}
			return ErrTypeHTTP
		}
	}
	return ""
}

// HopInfo names an interface for AddRecord: name and link kind.
type HopInfo func(ifIndex int32) (name, kind string)

// AddRecord merges one flow record of the connection (one of its views on
// this node) into c: hops, times, outcome, ISN, retransmissions, RSTs and L7
// exchanges. Addresses, Side, Node and NAT are the caller's to set, since
// they come from the conntrack join. info names each hop's interface (nil
// leaves names empty). AddRecord copies what it keeps; rec may be reused.
func (c *Conn) AddRecord(rec *flow.Record, info HopInfo) {
	if c.Proto == 0 {
		c.Proto = rec.Key.Proto
	}
	if c.First == 0 || (rec.First != 0 && rec.First < c.First) {
		c.First = rec.First
	}
	c.Last = max(c.Last, rec.Last)
	if outcomeRank(rec.Outcome) > outcomeRank(c.Outcome) {
		c.Outcome = rec.Outcome
	}
	if rec.TCP.SYN != 0 && !c.HasISN {
		c.ISN, c.HasISN = rec.TCP.ISN, true
	}
	for s := range 2 {
		c.Retransmits[s] = max(c.Retransmits[s], rec.TCP.Retransmits[s])
	}
	c.SYNRetransmits = max(c.SYNRetransmits, rec.TCP.SYNRetransmits)
	c.RSTFrom |= rec.TCP.RSTFrom
	for i := range int(min(rec.NumHops, flow.MaxHops)) {
		h := &rec.Hops[i]
		hop := Hop{
			IfIndex: h.IfIndex, Role: h.Role, Dir: h.Dir, Encap: h.Encap,
			First: h.First, Last: h.Last, Packets: h.Packets, Bytes: h.Bytes,
			Retransmits: h.Retransmits,
		}
		if h.Encap != flow.EncapNone && h.Encap == rec.Tunnel.Encap {
			hop.VNI = rec.Tunnel.VNI
		}
		if info != nil {
			hop.Interface, hop.Kind = info(h.IfIndex)
		}
		c.Hops = append(c.Hops, hop)
	}
	for i := range int(min(rec.L7.NumExchanges, flow.MaxExchanges)) {
		x := &rec.L7.Exchanges[i]
		// The same exchange seen in another view of the connection (before
		// and after DNAT) starts a little later or earlier, within its own
		// latency; the next exchange of a connection starts after it ended.
		dup := slices.ContainsFunc(c.Exchanges, func(e Exchange) bool {
			d := time.Duration(e.Start - x.Start)
			return e.App == rec.L7.App && e.DNSID == x.ID && e.Code == x.Code &&
				d < max(e.Latency, x.Latency, 1) && -d < max(e.Latency, x.Latency, 1)
		})
		if !dup {
			c.Exchanges = append(c.Exchanges, Exchange{
				App: rec.L7.App, Start: x.Start, Latency: x.Latency, Code: x.Code, DNSID: x.ID,
			})
		}
	}
}

// outcomeRank orders outcomes by how much they tell: a final failure over a
// completed connection over one still in its handshake.
func outcomeRank(o flow.Outcome) int {
	switch o {
	case flow.OutcomeRefused, flow.OutcomeTimeout, flow.OutcomeReset:
		return 4
	case flow.OutcomeClosed, flow.OutcomeReplied:
		return 3
	case flow.OutcomeEstablished, flow.OutcomeUnreplied:
		return 2
	case flow.OutcomeSynSent:
		return 1
	}
	return 0
}

// spanCount is the number of spans Export makes of c: the connection span,
// one per hop and one per exchange.
func (c *Conn) spanCount() int {
	return 1 + len(c.Hops) + len(c.Exchanges)
}
