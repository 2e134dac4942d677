package lab

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Scenario names accepted by Traffic.
const (
	ScenarioService        = "service"
	ScenarioDeadBackend    = "dead-backend"
	ScenarioMTU            = "mtu"
	ScenarioConntrackFlood = "conntrack-flood"
	ScenarioDNS            = "dns"
	ScenarioHTTP           = "http"
	ScenarioTLS            = "tls"
)

// Scenarios lists every traffic scenario, in the order the demo runs them.
var Scenarios = []string{
	ScenarioService, ScenarioDeadBackend, ScenarioMTU, ScenarioConntrackFlood,
	ScenarioDNS, ScenarioHTTP, ScenarioTLS,
}

// TrafficOptions tunes a scenario. The zero value runs each scenario with
// its defaults.
type TrafficOptions struct {
	// Count is the amount of traffic: requests per client (service,
	// dead-backend), rounds over the backends (http, tls), datagrams per DF
	// mode (mtu), connections (conntrack-flood) and queries per rcode (dns,
	// unless DNSMix is set). Zero means 9, 9, 3, 5, 300 and 5.
	Count int
	// Timeout bounds one connection attempt or request. Zero means 2s, and
	// 200ms for conntrack-flood (whose SYNs are dropped once the table is
	// full).
	Timeout time.Duration
	// Concurrency is the number of parallel connection workers of
	// conntrack-flood. Zero means 16.
	Concurrency int
	// ConntrackMax, if positive, lowers the global nf_conntrack_max to this
	// value for the duration of conntrack-flood and restores it afterwards.
	// Zero leaves the limit alone.
	ConntrackMax int
	// RemoteMTU, if positive, adds a phase to the mtu scenario: node-2's
	// bridge and pod-c's interfaces are lowered to this MTU, and pod-b sends
	// DF datagrams through the Service that fit the overlay but not pod-c's
	// link, so that node-2 answers with a frag-needed about the packet as
	// DNATed on node-1. The MTUs are put back afterwards.
	RemoteMTU int
	// KeepMTU leaves pod-b at MTU 1500 after the mtu scenario. False
	// restores 1450.
	KeepMTU bool
	// PayloadSize is the UDP payload of the mtu scenario's datagrams. Zero
	// means 1472 (a 1500-byte IP packet).
	PayloadSize int
	// DNSMix is the number of queries expecting NOERROR, NXDOMAIN and
	// SERVFAIL, in that order. All zero means Count of each.
	DNSMix [3]int
}

// Request is one client exchange of a scenario, with the addresses a test
// needs to find it in captures and in the conntrack table.
type Request struct {
	Client string         `json:"client"`           // pod or node the request came from
	Target netip.AddrPort `json:"target"`           // address dialled (ClusterIP, node IP:NodePort, pod IP)
	Source netip.AddrPort `json:"source,omitzero"`  // local address of the client socket
	Path   string         `json:"path,omitempty"`   // HTTP path
	Query  string         `json:"query,omitempty"`  // DNS name queried
	Want   string         `json:"want,omitempty"`   // DNS rcode expected
	RCode  string         `json:"rcode,omitempty"`  // DNS rcode received
	Status int            `json:"status,omitempty"` // HTTP status received
	// Backend is the pod that answered, from the response's X-Backend.
	Backend string `json:"backend,omitempty"`
	// NATNode is the node whose conntrack table holds the DNAT of this
	// request (the client's node for the ClusterIP, the target node for a
	// NodePort); empty for direct pod traffic.
	NATNode string `json:"nat_node,omitempty"`
	// DNATBackend is the backend the DNAT picked, read from NATNode's
	// conntrack reply tuple after the run (also for failed requests).
	DNATBackend string        `json:"dnat_backend,omitempty"`
	TLSVersion  string        `json:"tls_version,omitempty"`
	Err         string        `json:"error,omitempty"`
	Refused     bool          `json:"refused,omitempty"` // connection refused (RST)
	Duration    time.Duration `json:"duration"`
}

// OK reports whether the exchange completed (any HTTP status or rcode).
func (r *Request) OK() bool { return r.Err == "" }

// MTUReport is the ground truth of the mtu scenario.
type MTUReport struct {
	PayloadSize int `json:"payload_size"`
	PodMTU      int `json:"pod_mtu"`     // MTU set on pod-b's eth0 and its host veth
	OverlayMTU  int `json:"overlay_mtu"` // MTU of vxlan0 on node-1
	// Without DF (IP_PMTUDISC_DONT): datagrams that left the socket and
	// those that failed locally. node-1 fragments each one that left.
	NoDFSent, NoDFErrors int
	// With DF (IP_PMTUDISC_DO): datagrams that left the socket (each one
	// dropped by node-1 with an ICMP frag-needed), those refused with
	// EMSGSIZE once pod-b learnt the path MTU, and other errors.
	DFSent, DFEMSGSIZE, DFErrors int
	// ReceivedNoDF and ReceivedDF count the datagrams pod-c received.
	ReceivedNoDF, ReceivedDF int
	// PathMTU is the path MTU pod-b's DF socket learnt (IP_MTU), 0 if none.
	PathMTU int `json:"path_mtu"`
	// ServiceDFSent counts the DF datagrams pod-b sent through the
	// Service's UDP port (ServiceVIP:ServicePort/udp), each from its own
	// socket so that each is DNATed anew. ServiceFragNeeded lists the
	// source ports of those whose socket then learnt the overlay's MTU from
	// an ICMP frag-needed: the ones DNATed to pod-c, across the overlay.
	ServiceDFSent     int      `json:"service_df_sent"`
	ServiceFragNeeded []uint16 `json:"service_frag_needed,omitempty"`
	// RemoteMTU and RemoteFragNeeded: with TrafficOptions.RemoteMTU, the
	// source ports of the DF datagrams through the Service that node-2
	// refused (DNATed to pod-c, whose link was lowered to RemoteMTU).
	RemoteMTU        int      `json:"remote_mtu,omitempty"`
	RemoteFragNeeded []uint16 `json:"remote_frag_needed,omitempty"`
	// MTURestored is true when pod-b was put back to PodMTU.
	MTURestored bool `json:"mtu_restored"`
}

// FloodReport is the ground truth of the conntrack-flood scenario.
type FloodReport struct {
	Attempted, Succeeded, Failed int
	// ConntrackMax is the lowered global limit during the run (0: untouched)
	// and OriginalMax the value before, restored on return.
	ConntrackMax, OriginalMax int
	Restored                  bool
	// Entries is nf_conntrack_count of each node right after the run.
	Entries map[string]int
}

// Report is what a scenario did, with the counts a test compares the
// agent's view with.
type Report struct {
	Scenario string        `json:"scenario"`
	Prefix   string        `json:"prefix"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	Requests []Request     `json:"requests,omitempty"`
	// Attempted, Succeeded and Failed count Requests (or flood connections).
	Attempted, Succeeded, Failed int
	Backends                     map[string]int `json:"backends,omitempty"`     // answers per backend pod
	Status                       map[int]int    `json:"status,omitempty"`       // HTTP status counts
	TLSVersions                  map[string]int `json:"tls_versions,omitempty"` // negotiated TLS versions
	RCodes                       map[string]int `json:"rcodes,omitempty"`       // DNS rcodes received
	MTU                          *MTUReport     `json:"mtu,omitempty"`
	Flood                        *FloodReport   `json:"flood,omitempty"`
}

func newReport(scenario, prefix string) *Report {
	return &Report{Scenario: scenario, Prefix: prefix, Started: time.Now(),
		Backends: map[string]int{}, Status: map[int]int{}, TLSVersions: map[string]int{}, RCodes: map[string]int{}}
}

// add records a finished request and updates the counts.
func (r *Report) add(q Request) {
	r.Requests = append(r.Requests, q)
	r.Attempted++
	if !q.OK() {
		r.Failed++
		return
	}
	r.Succeeded++
	if q.Backend != "" {
		r.Backends[q.Backend]++
	}
	if q.Status != 0 {
		r.Status[q.Status]++
	}
	if q.TLSVersion != "" {
		r.TLSVersions[q.TLSVersion]++
	}
	if q.RCode != "" {
		r.RCodes[q.RCode]++
	}
}

// String summarizes the report on a few lines.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s (lab %s): %d attempted, %d succeeded, %d failed in %.2fs\n",
		r.Scenario, r.Prefix, r.Attempted, r.Succeeded, r.Failed, r.Duration.Seconds())
	writeMap := func(title string, m map[string]int) {
		if len(m) == 0 {
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "  %s:", title)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%d", k, m[k])
		}
		b.WriteByte('\n')
	}
	writeMap("backends", r.Backends)
	status := map[string]int{}
	for k, v := range r.Status {
		status[fmt.Sprint(k)] = v
	}
	writeMap("http status", status)
	writeMap("tls versions", r.TLSVersions)
	writeMap("dns rcodes", r.RCodes)
	failed := map[string]int{}
	for _, q := range r.Requests {
		if !q.OK() && q.DNATBackend != "" {
			failed[q.DNATBackend]++
		}
	}
	writeMap("failures by DNAT backend", failed)
	if m := r.MTU; m != nil {
		fmt.Fprintf(&b, "  mtu: payload %d, pod MTU %d over overlay MTU %d\n", m.PayloadSize, m.PodMTU, m.OverlayMTU)
		fmt.Fprintf(&b, "  no DF: sent %d (errors %d), received by pod-c %d\n", m.NoDFSent, m.NoDFErrors, m.ReceivedNoDF)
		fmt.Fprintf(&b, "  DF:    sent %d, EMSGSIZE %d (errors %d), received by pod-c %d, path MTU learnt %d\n",
			m.DFSent, m.DFEMSGSIZE, m.DFErrors, m.ReceivedDF, m.PathMTU)
	}
	if f := r.Flood; f != nil {
		if f.ConntrackMax > 0 {
			fmt.Fprintf(&b, "  nf_conntrack_max lowered %d -> %d, restored: %v\n", f.OriginalMax, f.ConntrackMax, f.Restored)
		}
		keys := make([]string, 0, len(f.Entries))
		for k := range f.Entries {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s conntrack entries after: %d\n", k, f.Entries[k])
		}
	}
	return b.String()
}
