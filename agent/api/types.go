package api

import "time"

// Paths of the agent API, served on the agent's HTTP listener beside
// /metrics.
const (
	// PathConnections answers GET with the connection events of the
	// history that match a Query (a JSON array, oldest first), or with
	// follow=1 streams matching events as they happen (NDJSON, one
	// Connection per line).
	PathConnections = "/api/v1/connections"
	// PathStatus answers GET with the node's Status; since=DURATION (at
	// most 15m, default StatusSince) is the period of its recent counts.
	PathStatus = "/api/v1/status"
	// PathPMTU answers GET with the node's PMTU reports (PMTU).
	PathPMTU = "/api/v1/pmtu"
)

// Values of Connection.State.
const (
	StateFinal    = "final"    // the flow ended; no later event of this view follows
	StateProgress = "progress" // the flow is active; its state changed
)

// Values of Connection.View.
const (
	ViewDirect = "direct" // the connection was not DNATed (or conntrack did not know it)
	ViewPre    = "pre"    // before the DNAT: client → service address
	ViewPost   = "post"   // after the DNAT: client (or its SNAT address) → backend
)

// Values of Layer.Status.
const (
	StatusOK      = "ok"      // the layer worked for this connection
	StatusFail    = "fail"    // the layer failed (Detail says how)
	StatusPending = "pending" // no answer yet; the connection is still active
	StatusUnknown = "unknown" // nothing seen tells
)

// Connection is one connection event: one view of one connection, as the
// agent knew it at Time. JSON field names are part of the API (see
// SCHEMA.md beside this file); fields are added, never renamed.
type Connection struct {
	// Time is when the agent recorded this event.
	Time time.Time `json:"time"`
	// Seq is the event's sequence number in the agent's history (grows by
	// one per event; a gap in a stream means lost events).
	Seq uint64 `json:"seq"`
	// Node is the agent's node name.
	Node string `json:"node"`
	// ID identifies the connection on this node: "ct:N" with the conntrack
	// entry ID when conntrack knew it (both views of a DNATed connection
	// share it), else "flow:" and a hash of its tuple and first packet.
	ID string `json:"id"`
	// View is "pre", "post" or "direct" (ViewPre …).
	View string `json:"view"`
	// State is "final" or "progress" (StateFinal, StateProgress).
	State string `json:"state"`
	// End is why the flow table reported the flow: "active" (State
	// progress), "idle", "evicted" or "flushed".
	End string `json:"end"`
	// Protocol is "tcp", "udp", "icmp", … or the protocol number.
	Protocol string `json:"protocol"`
	// Client is the side that opened the connection.
	Client Endpoint `json:"client"`
	// Service is the address the client asked for when it was DNATed
	// (ClusterIP:port, NodeIP:NodePort); absent otherwise.
	Service *Endpoint `json:"service,omitempty"`
	// Backend is the server: the DNAT target, or the destination itself.
	Backend Endpoint `json:"backend"`
	// NAT is conntrack's translation of the connection, when it had one.
	NAT *NAT `json:"nat,omitempty"`
	// Outcome is the connection's outcome so far: unknown, syn_sent,
	// timeout, refused, established, reset, closed, replied, unreplied.
	Outcome string `json:"outcome"`
	// Failed is true for the outcomes timeout, refused and reset, and for
	// connections with an L7 error (DNS rcode other than NOERROR, HTTP 5xx)
	// or a PMTU report.
	Failed bool `json:"failed"`
	// Layers is the verdict per layer, L3 first: always l3 and l4, l7 when
	// an application protocol was seen, policy when the NetworkPolicies
	// were evaluated (Policy).
	Layers []Layer `json:"layers"`
	// Summary is Layers and the DNAT in one line, as observe prints it:
	// "L3 ok · L4 SYN×3 no SYN-ACK · DNAT 10.96.0.42:8080→10.244.1.8:8080";
	// the policy layer only when it failed ("POLICY ingress denied by
	// default/default-deny").
	Summary string `json:"summary"`
	// Start and Last are the times of the first and last packet seen.
	Start time.Time `json:"start"`
	Last  time.Time `json:"last"`
	// Packets and Bytes sum the hop with the most packets of each side.
	Packets Sides `json:"packets"`
	Bytes   Sides `json:"bytes"`
	// Hops are the interfaces of this node the view was seen on, in the
	// order the agent first saw them.
	Hops []Hop `json:"hops"`
	// TCP is the TCP state (absent for other protocols).
	TCP *TCP `json:"tcp,omitempty"`
	// L7 holds the DNS or HTTP exchanges (absent when none was seen).
	L7 *L7 `json:"l7,omitempty"`
	// PMTU lists the ICMP fragmentation-needed / packet-too-big reports
	// about this connection.
	PMTU []PMTUReport `json:"pmtu,omitempty"`
	// Policy is what the Kubernetes NetworkPolicies say of a failed (or
	// still unanswered) connection, when the agent evaluates them; its
	// verdict is also the "policy" layer of Layers.
	Policy *Policy `json:"policy,omitempty"`
}

// Values of Policy.Verdict.
const (
	PolicyDenied      = "policy"      // NetworkPolicies deny the connection
	PolicyUnexplained = "unexplained" // the policies allow it, or none selects its pods: not dropped by a policy
	PolicyUnknown     = "unknown"     // the agent had no complete copy of the policies yet
)

// Policy is the NetworkPolicies' explanation of a failed connection,
// evaluated by the agent when the connection failed.
type Policy struct {
	// Verdict is "policy", "unexplained" or "unknown" (PolicyDenied …).
	Verdict string `json:"verdict"`
	// Detail is the explanation in one line.
	Detail string `json:"detail"`
	// Denials has one entry per denying direction: egress from the client
	// first, then ingress to the backend.
	Denials []PolicyDenial `json:"denials,omitempty"`
	// AllowedBy lists, for "unexplained", the rules that allow the
	// connection ("namespace/policy spec.ingress[0]").
	AllowedBy []string `json:"allowed_by,omitempty"`
}

// PolicyDenial is one direction whose policies deny a connection.
type PolicyDenial struct {
	// Direction is "ingress" (the backend's policies) or "egress" (the
	// client's).
	Direction string `json:"direction"`
	// Namespace and Pod name the pod the policies isolate.
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	// Policy is the policy the denial is reported under: the first
	// default-deny policy selecting the pod, else the first selecting one.
	// Policies lists every policy of the direction selecting the pod.
	Policy   string   `json:"policy"`
	Policies []string `json:"policies"`
	// Rule is the rule that would have to change ("namespace/policy
	// spec.ingress[0]", or "namespace/policy (no ingress rule)"), Change
	// what of it does not match the connection.
	Rule   string `json:"rule"`
	Change string `json:"change"`
}

// Endpoint is one end of a connection.
type Endpoint struct {
	// Addr is "ip:port" ("[ip]:port" for IPv6); IP and Port the same
	// apart.
	Addr string `json:"addr"`
	IP   string `json:"ip"`
	Port uint16 `json:"port"`
	// Namespace, Pod and Workload name the pod holding IP, and Service the
	// Service whose address it is, when the agent knows them.
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Workload  string `json:"workload,omitempty"`
	Service   string `json:"service,omitempty"`
}

// Name returns "namespace/pod" or "namespace/service" when known, else
// Addr.
func (e *Endpoint) Name() string {
	switch {
	case e.Pod != "":
		return e.Namespace + "/" + e.Pod
	case e.Service != "":
		return e.Namespace + "/" + e.Service
	}
	return e.Addr
}

// NAT is conntrack's translation of a connection.
type NAT struct {
	// ConntrackID is the kernel's conntrack entry ID.
	ConntrackID uint32 `json:"conntrack_id"`
	// Original is the tuple as the client sent it, Reply the tuple the
	// server answers with ("proto src:port -> dst:port").
	Original string `json:"original"`
	Reply    string `json:"reply"`
	// DNAT is true when the destination was translated: From (the service
	// address) → To (the backend).
	DNAT bool   `json:"dnat"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// SNAT is true when the source was translated (masquerade): the
	// backend answers ClientNAT instead of the client.
	SNAT      bool   `json:"snat"`
	ClientNAT string `json:"client_nat,omitempty"`
}

// Layer is the verdict of one layer for one connection.
type Layer struct {
	// Layer is "l3", "l4", "l7" or "policy".
	Layer string `json:"layer"`
	// Status is "ok", "fail", "pending" or "unknown" (StatusOK …).
	Status string `json:"status"`
	// Detail says what was seen: "SYN×3 no SYN-ACK", "RST", "NXDOMAIN",
	// "frag-needed MTU 1450", "handshake 0.21ms".
	Detail string `json:"detail"`
}

// Sides holds a count per sending side.
type Sides struct {
	Client uint64 `json:"client"`
	Server uint64 `json:"server"`
}

// Hop is one interface a connection was seen on.
type Hop struct {
	// Interface is the interface name ("if" and the index when the agent
	// no longer knows it); Kind its link kind (veth, vxlan, device, …);
	// Role its role: pod, overlay, uplink, bridge, other.
	Interface string `json:"interface"`
	Kind      string `json:"kind,omitempty"`
	Role      string `json:"role"`
	// Direction of the client's packets at this interface: in, out or
	// unknown.
	Direction string `json:"direction"`
	// Encap is the encapsulation seen here: none, vxlan or geneve.
	Encap string `json:"encap"`
	// First and Last are the times of the first and last packet here.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Packets, Bytes, Retransmits and ZeroWindows by sending side.
	Packets     Sides `json:"packets"`
	Bytes       Sides `json:"bytes"`
	Retransmits Sides `json:"retransmits"`
	ZeroWindows Sides `json:"zero_windows"`
}

// TCP is the TCP state of a connection.
type TCP struct {
	// Flags lists the TCP flags seen from either side ("SYN", "ACK", …).
	Flags []string `json:"flags"`
	// SYNs is the number of SYNs the client sent (1 + retransmissions).
	SYNs int `json:"syns"`
	// SYNACK is true when a SYN-ACK answered the SYN.
	SYNACK bool `json:"synack"`
	// RSTFrom and FINFrom list the sides ("client", "server") that sent a
	// RST or a FIN.
	RSTFrom []string `json:"rst_from,omitempty"`
	FINFrom []string `json:"fin_from,omitempty"`
	// HandshakeInterface is the interface the handshake was timed at.
	HandshakeInterface string `json:"handshake_interface,omitempty"`
	// ServerRTT (SYN → SYN-ACK), ClientRTT (SYN-ACK → ACK) and
	// HandshakeRTT (SYN → ACK) in seconds; 0 when not seen.
	ServerRTT    float64 `json:"server_rtt_seconds"`
	ClientRTT    float64 `json:"client_rtt_seconds"`
	HandshakeRTT float64 `json:"handshake_rtt_seconds"`
	// Retransmits and ZeroWindows by side (largest count of any hop).
	Retransmits Sides `json:"retransmits"`
	ZeroWindows Sides `json:"zero_windows"`
}

// L7 is the application part of a connection.
type L7 struct {
	// App is "dns" or "http".
	App string `json:"app"`
	// Requests, Responses, Errors (DNS rcode other than NOERROR, HTTP 5xx)
	// and Unanswered requests.
	Requests   uint32 `json:"requests"`
	Responses  uint32 `json:"responses"`
	Errors     uint32 `json:"errors"`
	Unanswered uint32 `json:"unanswered"`
	// Name is the DNS question name of the connection's first DNS message
	// (absent for HTTP): a resolver's connection asks for one name, so
	// this names the unanswered queries too. It is dotted, without the
	// final dot, cut to its first 64 bytes when NameTruncated.
	Name          string `json:"name,omitempty"`
	NameTruncated bool   `json:"name_truncated,omitempty"`
	// Exchanges are the first few matched exchanges (a failed one always
	// among them).
	Exchanges []Exchange `json:"exchanges,omitempty"`
}

// Exchange is one request matched with its response.
type Exchange struct {
	Time    time.Time `json:"time"`
	Latency float64   `json:"latency_seconds"`
	// ID is the DNS message ID (0 for HTTP).
	ID uint16 `json:"id,omitempty"`
	// Rcode is the DNS response code name (NOERROR, NXDOMAIN, SERVFAIL,
	// …); Status the HTTP status code.
	Rcode  string `json:"rcode,omitempty"`
	Status int    `json:"status,omitempty"`
	Failed bool   `json:"failed"`
	// Name is the DNS question name of the query (absent for HTTP, and
	// for a query of another name than the connection's first one, which
	// the agent does not keep); NameTruncated as in L7.
	Name          string `json:"name,omitempty"`
	NameTruncated bool   `json:"name_truncated,omitempty"`
}

// PMTUReport is one ICMP fragmentation-needed or ICMPv6 packet-too-big
// message the agent saw, attributed to the connection it was about.
type PMTUReport struct {
	Time      time.Time `json:"time"`
	Interface string    `json:"interface"`
	Reporter  string    `json:"reporter"`
	MTU       uint32    `json:"mtu"`
	Quoted    string    `json:"quoted"`
	// Flow is the connection as its client sent it ("proto src:port ->
	// dst:port", before DNAT when Translated).
	Flow       string `json:"flow"`
	Translated bool   `json:"translated"`
	Attributed bool   `json:"attributed"`
	Count      int    `json:"count"`
}

// OversizeReport is the last packet a pod interface sent that was too big
// for its path.
type OversizeReport struct {
	Time      time.Time `json:"time"`
	Interface string    `json:"interface"`
	Source    string    `json:"source"`
	Dest      string    `json:"destination"`
	Protocol  string    `json:"protocol"`
	Size      uint32    `json:"size"`
	PathMTU   uint32    `json:"path_mtu"`
}

// PMTU is the answer of PathPMTU: reports newest first.
type PMTU struct {
	Reports  []PMTUReport     `json:"reports"`
	Oversize []OversizeReport `json:"oversize"`
}

// Status is a one-screen summary of a node (PathStatus).
type Status struct {
	Time    time.Time `json:"time"`
	Node    string    `json:"node"`
	Version string    `json:"version"`
	// Ready is true when every capture and netlink source is open.
	Ready     bool             `json:"ready"`
	Capture   CaptureStatus    `json:"capture"`
	FlowTable FlowTableStatus  `json:"flow_table"`
	Conntrack *ConntrackStatus `json:"conntrack,omitempty"` // absent when conntrack is off
	MTU       MTUStatus        `json:"mtu"`
	// Services are the service backends with the most failed connections
	// over the last five minutes, worst first (at most ten).
	Services []ServiceStatus `json:"services"`
	// Endpoints are the ready endpoint counts of the Services the agent's
	// Kubernetes metadata knows (absent without metadata); Ready 0 is a
	// Service whose EndpointSlices are empty.
	Endpoints []ServiceEndpoints `json:"endpoints,omitempty"`
	DNS       DNSStatus          `json:"dns"`
	History   HistoryStatus      `json:"history"`
}

// CaptureStatus is the health of the capture rings.
type CaptureStatus struct {
	// Interfaces are the interfaces captured now.
	Interfaces []Interface `json:"interfaces"`
	// Packets, Drops and Freezes are the kernel's ring counters summed
	// over every ring since the agent started (also closed ones).
	Packets uint64 `json:"packets"`
	Drops   uint64 `json:"drops"`
	Freezes uint64 `json:"queue_freezes"`
	// DropRatio is Drops / (Packets + Drops), 0 without packets.
	DropRatio float64 `json:"drop_ratio"`
}

// Interface is one captured interface.
type Interface struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Role  string `json:"role"`
	MTU   int    `json:"mtu"`
	Drops uint64 `json:"drops"`
}

// FlowTableStatus is the flow table's fill and losses.
type FlowTableStatus struct {
	Entries   int    `json:"entries"`
	Capacity  int    `json:"capacity"`
	Evictions uint64 `json:"evictions"`
	Refused   uint64 `json:"refused"`
}

// ConntrackStatus is the conntrack table's health.
type ConntrackStatus struct {
	Entries int     `json:"entries"`
	Limit   int     `json:"limit"`
	Fill    float64 `json:"fill_ratio"`
	// Growth is entries per second; ETA the seconds until full at that
	// rate (absent when not growing).
	Growth       float64  `json:"growth_per_second"`
	ETA          *float64 `json:"eta_seconds,omitempty"`
	Drop         uint64   `json:"drop"`
	EarlyDrop    uint64   `json:"early_drop"`
	InsertFailed uint64   `json:"insert_failed"`
	EventsLost   uint64   `json:"events_lost"`
	// Recent is the increase of Drop, EarlyDrop and InsertFailed over
	// the status's period (since=): the counters above only grow, from
	// the namespace's creation. Absent before the agent sampled twice.
	Recent *ConntrackRecent `json:"recent,omitempty"`
}

// ConntrackRecent is the increase of the conntrack loss counters from
// Since to Until (the agent's samples nearest the period asked for).
type ConntrackRecent struct {
	Since        time.Time `json:"since"`
	Until        time.Time `json:"until"`
	Drop         uint64    `json:"drop"`
	EarlyDrop    uint64    `json:"early_drop"`
	InsertFailed uint64    `json:"insert_failed"`
}

// StatusSince is the default period of a Status's recent counts.
const StatusSince = 5 * time.Minute

// MaxStatusSince is the longest period a Status's recent counts cover.
const MaxStatusSince = 15 * time.Minute

// MTUStatus are the node's MTU findings.
type MTUStatus struct {
	Mismatches []MTUMismatch    `json:"mismatches"`
	Reports    []PMTUReport     `json:"reports"`  // newest first, at most ten
	Oversize   []OversizeReport `json:"oversize"` // per pod interface
}

// MTUMismatch is an interface whose MTU exceeds what its path carries.
type MTUMismatch struct {
	Interface string `json:"interface"`
	Expected  int    `json:"expected"`
	Actual    int    `json:"actual"`
	Reason    string `json:"reason"`
	// Since is when the agent first found it; Cleared when it went away
	// (absent while it is present). Cleared ones are kept ten minutes.
	Since   time.Time  `json:"since"`
	Cleared *time.Time `json:"cleared,omitempty"`
}

// ServiceStatus is one service backend's recent connections.
type ServiceStatus struct {
	Service      string  `json:"service"`
	Backend      string  `json:"backend"`
	Protocol     string  `json:"protocol"`
	Attempts     uint64  `json:"attempts"`
	Failed       uint64  `json:"failed"`
	FailureRatio float64 `json:"failure_ratio"`
	Dead         bool    `json:"dead"`
}

// ServiceEndpoints is a Service's count of ready endpoints.
type ServiceEndpoints struct {
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	Ready     int    `json:"ready"`
}

// DNSStatus counts the DNS messages the agent saw since it started (each
// once, whatever the hops it crossed); Errors are responses with an rcode
// other than NOERROR, ErrorRatio is Errors / Responses.
type DNSStatus struct {
	Queries    uint64            `json:"queries"`
	Responses  uint64            `json:"responses"`
	Errors     uint64            `json:"errors"`
	ErrorRatio float64           `json:"error_ratio"`
	ByRcode    map[string]uint64 `json:"by_rcode"`
}

// HistoryStatus is the agent's history ring and its followers.
type HistoryStatus struct {
	Size        int        `json:"size"`
	Len         int        `json:"len"`
	Oldest      *time.Time `json:"oldest,omitempty"`
	Added       uint64     `json:"added"`
	Overwritten uint64     `json:"overwritten"`
	Followers   int        `json:"followers"`
	// FollowerLost counts events followers missed because they fell behind
	// the ring; FollowersDropped followers disconnected because a write to
	// them stalled.
	FollowerLost     uint64 `json:"follower_lost"`
	FollowersDropped uint64 `json:"followers_dropped"`
}
