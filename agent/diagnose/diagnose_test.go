package diagnose

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/api"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ep(addr string) api.Endpoint {
	ip, port, _ := strings.Cut(addr, ":")
	var p uint16
	fmt.Sscan(port, &p)
	return api.Endpoint{Addr: addr, IP: ip, Port: p}
}

// svcConn is a connection from client to the service, DNATed to backend,
// seen on the client's node (pre view) with the given outcome.
func svcConn(i int, client, svc, backend, outcome string) api.Connection {
	s := ep(svc)
	c := api.Connection{
		Time: t0.Add(time.Duration(i) * time.Millisecond), ID: fmt.Sprintf("ct:%d", i), View: api.ViewPre, State: api.StateFinal,
		Protocol: "tcp", Client: ep(fmt.Sprintf("%s:%d", client, 40000+i)), Service: &s, Backend: ep(backend),
		NAT: &api.NAT{DNAT: true, From: svc, To: backend}, Outcome: outcome,
		Failed: outcome == "refused" || outcome == "timeout" || outcome == "reset",
		Start:  t0, Last: t0.Add(time.Duration(i) * time.Millisecond),
		Hops: []api.Hop{
			{Interface: "veth-pod-a", Role: "pod", First: t0},
			{Interface: "vxlan0", Role: "overlay", First: t0.Add(time.Microsecond)},
		},
	}
	if outcome != "timeout" {
		c.Packets.Server = 1
	}
	return c
}

func directConn(i int, client, server, outcome string) api.Connection {
	c := svcConn(i, client, server, server, outcome)
	c.Service, c.NAT, c.View = nil, nil, api.ViewDirect
	return c
}

func dnsConn(i int, client string, rcodes ...string) api.Connection {
	c := directConn(i, client, "10.244.0.10:53", "replied")
	c.Protocol = "udp"
	c.L7 = &api.L7{App: "dns", Requests: uint32(len(rcodes)), Responses: uint32(len(rcodes))}
	for _, r := range rcodes {
		c.L7.Exchanges = append(c.L7.Exchanges, api.Exchange{Time: c.Time, Rcode: r, Failed: r != "NOERROR"})
		if r != "NOERROR" {
			c.L7.Errors++
		}
	}
	return c
}

// namedDNS is a DNS connection of client (in namespace ns) asking for name,
// answered with rcodes (none: unanswered queries).
func namedDNS(i int, client, ns, name string, unanswered int, rcodes ...string) api.Connection {
	c := dnsConn(i, client, rcodes...)
	c.Client.Namespace = ns
	c.L7.Name = name
	c.L7.Requests += uint32(unanswered)
	c.L7.Unanswered = uint32(unanswered)
	for j := range c.L7.Exchanges {
		c.L7.Exchanges[j].Name = name
	}
	return c
}

func node(name string, st *api.Status, cs ...api.Connection) NodeEvidence {
	return NodeEvidence{Source: "http://" + name, Node: name, Status: st, Connections: cs}
}

func healthyStatus() *api.Status {
	return &api.Status{Conntrack: &api.ConntrackStatus{Entries: 100, Limit: 65536, Fill: 100.0 / 65536}}
}

func TestDiagnose(t *testing.T) {
	const (
		podA = "10.244.0.5"
		vip  = "10.96.0.42:8080"
		c8   = "10.244.1.8:8080"
		a5   = "10.244.0.5:8080"
		b8   = "10.244.0.8:8080"
	)
	deadBackend := []api.Connection{}
	for i := range 9 {
		be := []string{a5, b8, c8}[i%3]
		out := "closed"
		if be == c8 {
			out = "refused"
		}
		deadBackend = append(deadBackend, svcConn(i, podA, vip, be, out))
	}
	// A progress event first, then the final one of the same view: only
	// the final one counts.
	progress := svcConn(100, podA, vip, a5, "syn_sent")
	progress.State = api.StateProgress
	final := progress
	final.Outcome, final.State = "closed", api.StateFinal
	// The remote node's post view of the same connection is not counted
	// twice.
	remote := svcConn(2, podA, vip, c8, "refused")
	remote.View, remote.Service, remote.ID = api.ViewPost, nil, "ct:77"

	full := healthyStatus()
	full.Conntrack = &api.ConntrackStatus{Entries: 512, Limit: 512, Fill: 1, Drop: 180, InsertFailed: 0}
	var flood []api.Connection
	for i := range 30 {
		out := "closed"
		if i%4 == 0 {
			out = "timeout"
		}
		flood = append(flood, svcConn(i, podA, vip, []string{a5, b8, c8}[i%3], out))
	}
	// recentCT is a node whose conntrack counted a drop and an
	// insert_failed long ago, and drop and insert_failed more in the last
	// five minutes.
	recentCT := func(drop, insertFailed uint64) *api.Status {
		st := healthyStatus()
		st.Conntrack.Drop, st.Conntrack.InsertFailed = 1+drop, 1+insertFailed
		st.Conntrack.Recent = &api.ConntrackRecent{Since: t0.Add(-5 * time.Minute), Until: t0, Drop: drop, InsertFailed: insertFailed}
		return st
	}
	mtuSt := healthyStatus()
	mtuSt.MTU.Reports = []api.PMTUReport{{Time: t0, Interface: "veth-pod-b", Reporter: "10.244.0.1", MTU: 1450, Flow: "udp 10.244.0.8:5555 -> 10.244.1.8:9999", Count: 5}}
	mtuSt.MTU.Mismatches = []api.MTUMismatch{{Interface: "veth-pod-b", Expected: 1450, Actual: 1500, Reason: "pod_above_overlay"}}
	fixedAt := func(ago time.Duration) *api.Status {
		st := healthyStatus()
		st.MTU.Reports = mtuSt.MTU.Reports
		cleared := t0.Add(-ago)
		st.MTU.Mismatches = []api.MTUMismatch{{Interface: "veth-pod-b", Expected: 1450, Actual: 1500, Reason: "pod_above_overlay", Since: cleared.Add(-time.Minute), Cleared: &cleared}}
		return st
	}
	// A refused connection whose packets all came before the window (its
	// final event came later), then healthy ones.
	stale := svcConn(1, podA, vip, "10.244.1.8:8080", "refused")
	stale.Start, stale.Last = t0.Add(-10*time.Minute), t0.Add(-10*time.Minute)
	mtuConn := directConn(1, "10.244.0.8", "10.244.1.8:9999", "unreplied")
	mtuConn.Protocol = "udp"
	mtuConn.PMTU = []api.PMTUReport{{MTU: 1450, Count: 5}}

	// Connections to the service timing out, explained by the agent.
	explained := func(p *api.Policy, n int) []api.Connection {
		var out []api.Connection
		for i := range n {
			c := svcConn(i, podA, vip, c8, "timeout")
			c.TCP = &api.TCP{SYNs: 3}
			c.Hops = c.Hops[:1]
			c.Hops[0].Direction = "in"
			c.Policy = p
			out = append(out, c)
		}
		return out
	}
	ingress := &api.Policy{Verdict: api.PolicyDenied, Denials: []api.PolicyDenial{{Direction: "ingress", Namespace: "shop", Pod: "b-1",
		Policy: "default-deny", Policies: []string{"allow-c", "default-deny"}, Rule: "shop/allow-c spec.ingress[0]", Change: "port matches, no from peer selects the source"}}}
	egress := &api.Policy{Verdict: api.PolicyDenied, Denials: []api.PolicyDenial{{Direction: "egress", Namespace: "front", Pod: "pod-a",
		Policy: "deny-out", Policies: []string{"deny-out"}, Rule: "front/deny-out (no egress rule)", Change: "no rule allows anything"}}}
	allowed := &api.Policy{Verdict: api.PolicyUnexplained, AllowedBy: []string{"shop/allow-a spec.ingress[0]"}}

	tests := []struct {
		name     string
		from, to string
		nodes    []NodeEvidence
		class    Class
		summary  []string // substrings of the summary
		evidence []string
		// noEvidence must not appear in the evidence.
		noEvidence []string // substrings of some evidence line
	}{
		{
			name: "healthy", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", healthyStatus(), svcConn(1, podA, vip, a5, "closed"), svcConn(2, podA, vip, c8, "closed"), progress, final)},
			class: Healthy, summary: []string{"no fault observed", "3 connections"},
			evidence: []string{"path to 10.244.1.8:8080: node-1/veth-pod-a (pod) → node-1/vxlan0 (overlay)", "DNAT to backends: "},
		},
		{
			name: "dead backend", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", healthyStatus(), deadBackend...), node("node-2", healthyStatus(), remote)},
			class: Backend, summary: []string{"L4: backend 10.244.1.8:8080 refuses (RST", "3 of its 3 connections failed", "3 of 9 connections", "about 1 in 3"},
			evidence: []string{"backend 10.244.0.5:8080: 3 connections, 0 failed", "backend 10.244.1.8:8080: 3 connections, 3 failed (refused×3)",
				"failed connections seen on node-1/veth-pod-a×3, node-1/vxlan0×3, node-2/veth-pod-a×1"},
		},
		{
			name: "dead backend addressed directly", from: podA, to: c8,
			nodes: []NodeEvidence{node("node-1", healthyStatus(), directConn(1, podA, c8, "refused"), directConn(2, podA, c8, "refused"))},
			class: Backend, summary: []string{"backend 10.244.1.8:8080 refuses", "2 of 2", "(all)"},
		},
		{
			name: "SYN retransmitted, no answer yet", from: podA, to: c8,
			nodes: []NodeEvidence{node("node-1", healthyStatus(), func() api.Connection {
				c := directConn(1, podA, c8, "syn_sent")
				c.State, c.Failed, c.TCP = api.StateProgress, false, &api.TCP{SYNs: 3}
				return c
			}())},
			class: Backend, summary: []string{"does not answer"},
		},
		{
			name: "lost between the nodes", from: podA, to: c8,
			nodes: []NodeEvidence{
				node("node-1", healthyStatus(), directConn(1, podA, c8, "timeout"), directConn(2, podA, c8, "timeout")),
				// node-2 sees pod-c serve other clients, not these.
				node("node-2", healthyStatus(), directConn(3, "10.244.1.9", c8, "closed")),
			},
			class: Path, summary: []string{"path: 2 connections to 10.244.1.8:8080 left node-1 (last seen on vxlan0, overlay) and never reached node-2"},
		},
		{
			name: "silent backend", from: podA, to: c8,
			nodes: []NodeEvidence{node("node-1", healthyStatus(), directConn(1, podA, c8, "timeout"))},
			class: Backend, summary: []string{"does not answer (SYN without SYN-ACK)"},
			evidence: []string{"failed connections seen on node-1/veth-pod-a×1"},
		},
		{
			name: "nxdomain", from: podA, to: "no-such-svc.default.svc.cluster.local",
			nodes: []NodeEvidence{node("node-1", healthyStatus(), dnsConn(1, podA, "NXDOMAIN"), dnsConn(2, podA, "NXDOMAIN"))},
			class: DNSNXDomain, summary: []string{"NXDOMAIN", "wrong name or namespace"},
			evidence: []string{"2 DNS queries from 10.244.0.5", "NXDOMAIN×2"},
		},
		{
			name: "servfail", from: podA, to: "api.broken.svc.cluster.local",
			nodes: []NodeEvidence{node("node-1", healthyStatus(), dnsConn(1, podA, "SERVFAIL"))},
			class: DNSServFail, summary: []string{"DNS server is broken"},
		},
		{
			name: "dns fine", from: podA, to: "my-service.default.svc.cluster.local",
			nodes: []NodeEvidence{node("node-1", healthyStatus(), dnsConn(1, podA, "NOERROR"))},
			class: Healthy, summary: []string{"queries are answered"},
		},
		{
			name: "nxdomain for another name does not blame TO", from: podA, to: "my-service.default.svc.cluster.local",
			nodes: []NodeEvidence{node("node-1", healthyStatus(),
				namedDNS(1, podA, "default", "no-such-svc.default.svc.cluster.local", 0, "NXDOMAIN"),
				namedDNS(2, podA, "default", "no-such-svc.default.svc.cluster.local", 0, "NXDOMAIN"),
				namedDNS(3, podA, "default", "My-Service.default.svc.cluster.local", 0, "NOERROR"))},
			class: Healthy, summary: []string{"queries are answered"},
			evidence: []string{"1 DNS queries from 10.244.0.5 for My-Service.default.svc.cluster.local in the last 5m; answers NOERROR×1",
				"2 answers for other names, not judged: NXDOMAIN×2"},
		},
		{
			name: "TO's nxdomain through the search path", from: podA, to: "my-servic",
			nodes: []NodeEvidence{node("node-1", healthyStatus(),
				namedDNS(1, podA, "default", "my-servic.default.svc.cluster.local", 0, "NXDOMAIN"),
				namedDNS(2, podA, "default", "my-servic.svc.cluster.local", 0, "NXDOMAIN"),
				namedDNS(3, podA, "default", "my-servic.cluster.local", 0, "NXDOMAIN"),
				namedDNS(4, podA, "default", "my-servic", 0, "NXDOMAIN"),
				namedDNS(5, podA, "default", "my-servic.other.svc.cluster.local", 0, "NOERROR"),
				namedDNS(6, podA, "default", "my-service.default.svc.cluster.local", 0, "NOERROR"))},
			class: DNSNXDomain, summary: []string{"NXDOMAIN", "the name my-servic does not exist"},
			evidence: []string{"4 DNS queries from 10.244.0.5 for my-servic, my-servic.cluster.local, my-servic.default.svc.cluster.local, my-servic.svc.cluster.local in the last 5m; answers NXDOMAIN×4",
				"2 answers for other names, not judged: NOERROR×2"},
		},
		{
			name: "TO in another namespace than FROM's is not TO", from: podA, to: "my-servic",
			nodes: []NodeEvidence{node("node-1", healthyStatus(), namedDNS(1, podA, "default", "my-servic.prod.svc.cluster.local", 0, "NXDOMAIN"))},
			class: NoTraffic, summary: []string{"sent no DNS query for it (my-servic or my-servic.<namespace>.svc.cluster.local"},
			evidence: []string{"0 DNS queries from 10.244.0.5 for my-servic", "1 answers for other names, not judged: NXDOMAIN×1"},
		},
		{
			name: "FROM's namespace unknown: any namespace", from: podA, to: "my-servic",
			nodes: []NodeEvidence{node("node-1", healthyStatus(), namedDNS(1, podA, "", "my-servic.prod.svc.cluster.local", 0, "NXDOMAIN"))},
			class: DNSNXDomain, evidence: []string{"1 DNS queries from 10.244.0.5 for my-servic.prod.svc.cluster.local"},
		},
		{
			name: "truncated name matches TO's prefix", from: podA, to: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbb.default.svc.cluster.local" + ".",
			nodes: []NodeEvidence{node("node-1", healthyStatus(), func() api.Connection {
				c := namedDNS(1, podA, "default", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbb.default.svc.cluster.local"[:64], 0, "NXDOMAIN")
				c.L7.NameTruncated, c.L7.Exchanges[0].NameTruncated = true, true
				return c
			}())},
			class: DNSNXDomain, evidence: []string{"for aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbb.de… in the last"},
		},
		{
			name: "TO's queries unanswered, other names answered", from: podA, to: "my-service.default.svc.cluster.local",
			nodes: []NodeEvidence{node("node-1", healthyStatus(),
				namedDNS(1, podA, "default", "my-service.default.svc.cluster.local", 2),
				namedDNS(2, podA, "default", "other.default.svc.cluster.local", 0, "NOERROR"))},
			class: DNSServFail, evidence: []string{"2 DNS queries from 10.244.0.5 for my-service.default.svc.cluster.local", "2 unanswered"},
		},
		{
			name: "no dns query", from: podA, to: "x.example",
			nodes: []NodeEvidence{node("node-1", healthyStatus(), dnsConn(1, "10.244.0.8", "NXDOMAIN"))},
			class: NoTraffic,
		},
		{
			name: "conntrack exhaustion", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", full, flood...)},
			class: Conntrack, summary: []string{"conntrack exhaustion", "8 of 30 connections"},
			evidence: []string{"node node-1: conntrack 512 of 512 entries (100%), drop 180"},
		},
		{
			name: "conntrack dropping now", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", recentCT(40, 0), flood...)},
			class: Conntrack, summary: []string{"conntrack exhaustion", "8 of 30 connections"},
			evidence: []string{"drop 41, insert_failed 1, early_drop 0; in the last 5m drop 40, insert_failed 0, early_drop 0"},
		},
		{
			// The kernel's counters only grow: drops before the period
			// are no evidence against a dead backend now.
			name: "conntrack drops of the past", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", recentCT(0, 0), flood...)},
			class: Backend,
		},
		{
			// insert_failed alone is a race of a new flow's packets, not
			// a full table.
			name: "recent insert_failed only", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", recentCT(0, 3), flood...)},
			class: Backend,
		},
		{
			name: "conntrack drops without failures here", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", full, svcConn(1, podA, vip, a5, "closed"))},
			class: Healthy,
		},
		{
			name: "mtu", from: "10.244.0.8", to: "10.244.1.8",
			nodes: []NodeEvidence{node("node-1", mtuSt, mtuConn)},
			class: MTU, summary: []string{"L3 MTU mismatch", "frag-needed MTU 1450"},
			evidence: []string{"interface veth-pod-b has MTU 1500, its path carries 1450", "frag-needed MTU 1450 from 10.244.0.1"},
		},
		{
			name: "mtu fixed within the window", from: "10.244.0.8", to: "10.244.1.8",
			nodes: []NodeEvidence{node("node-1", fixedAt(time.Minute), mtuConn)},
			class: MTU, evidence: []string{"interface veth-pod-b had MTU 1500, its path carries 1450 (pod_above_overlay), from"},
		},
		{
			name: "mtu fixed before the window", from: "10.244.0.8", to: "10.244.1.8",
			nodes: []NodeEvidence{node("node-1", fixedAt(6*time.Minute), mtuConn)},
			class: MTU, evidence: []string{"frag-needed MTU 1450"}, noEvidence: []string{"veth-pod-b had MTU"},
		},
		{
			name: "connections before the window are not judged", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", healthyStatus(), stale, svcConn(2, podA, vip, a5, "closed"), svcConn(3, podA, vip, a5, "closed"))},
			class: Healthy,
		},
		{
			name: "no endpoints", from: podA, to: vip,
			// Another client's connection to the service was DNATed
			// earlier: the address is a service's.
			nodes: []NodeEvidence{node("node-1", healthyStatus(), svcConn(9, "10.244.0.8", vip, a5, "closed"), directConn(1, podA, vip, "timeout"), directConn(2, podA, vip, "timeout"))},
			class: NoDNAT, summary: []string{"none DNATed", "no endpoints"},
		},
		{
			name: "empty endpoints known from the metadata", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", emptyEndpoints("default", "web", 0), named(directConn(1, podA, vip, "refused"), "default", "web"), named(directConn(2, podA, vip, "refused"), "default", "web"))},
			class: NoDNAT, summary: []string{"default/web has no ready endpoints", "none DNATed"},
			evidence: []string{"endpoints of default/web: 0 ready (Kubernetes metadata of node-1)"},
		},
		{
			name: "endpoints ready but nothing DNATed", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", emptyEndpoints("default", "web", 2), named(directConn(1, podA, vip, "timeout"), "default", "web"))},
			class: NoDNAT, summary: []string{"none DNATed", "no endpoints, or"},
			evidence: []string{"endpoints of default/web: 2 ready"},
		},
		{
			name: "no traffic to TO", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", healthyStatus(), directConn(1, podA, "10.244.0.10:53", "replied"))},
			class: NoTraffic, evidence: []string{"1 other connections from 10.244.0.5: 10.244.0.10:53×1"},
		},
		{
			name: "nothing at all", from: podA, to: vip,
			nodes: []NodeEvidence{{Source: "http://x", Err: "connection refused"}},
			class: NoTraffic, evidence: []string{"no connection from 10.244.0.5 at all", "agent http://x: connection refused"},
		},
		{
			name: "http errors", from: podA, to: c8,
			nodes: []NodeEvidence{node("node-1", healthyStatus(), func() api.Connection {
				c := directConn(1, podA, c8, "closed")
				c.L7 = &api.L7{App: "http", Requests: 2, Responses: 2, Errors: 1, Exchanges: []api.Exchange{{Status: 503, Failed: true}}}
				return c
			}())},
			class: App, summary: []string{"1 of 2 responses", "503×1"},
		},
		{
			name: "ingress policy", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", healthyStatus(), explained(ingress, 2)...)},
			class: Policy, summary: []string{"ingress of shop/b-1 denied by NetworkPolicy shop/default-deny", "2 of 2 connections"},
			evidence: []string{"selected by allow-c, default-deny; the rule to change: shop/allow-c spec.ingress[0]: port matches, no from peer selects the source",
				"SYN×6 in 2 connections", "seen on node-1/veth-pod-a (pod, in)×2", "never on the backend's pod interface"},
		},
		{
			// The node's conntrack counted a drop: the failures a policy
			// explains do not make it a conntrack verdict.
			name: "policy beside conntrack drops", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", func() *api.Status {
				st := healthyStatus()
				st.Conntrack.Drop, st.Conntrack.InsertFailed = 1, 1
				return st
			}(), explained(ingress, 2)...)},
			class: Policy, summary: []string{"denied by NetworkPolicy shop/default-deny"},
		},
		{
			name: "egress policy", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", healthyStatus(), explained(egress, 1)...)},
			class: Policy, summary: []string{"egress of front/pod-a denied by NetworkPolicy front/deny-out"},
			evidence: []string{"front/deny-out (no egress rule): no rule allows anything"}, noEvidence: []string{"ingress"},
		},
		{
			name: "drop no policy explains", from: podA, to: vip,
			nodes: []NodeEvidence{node("node-1", healthyStatus(), explained(allowed, 2)...)},
			class: Backend, summary: []string{"does not answer"},
			evidence:   []string{"NetworkPolicies do not explain the drop (shop/allow-a spec.ingress[0]×2): the CNI or the node dropped them"},
			noEvidence: []string{"denied"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Diagnose(&Input{From: ParseEndpoint(tt.from), To: ParseEndpoint(tt.to), Since: 5 * time.Minute, Nodes: tt.nodes})
			if v.Class != tt.class {
				t.Fatalf("class %v, want %v: %s\n%s", v.Class, tt.class, v.Summary, strings.Join(v.Evidence, "\n"))
			}
			if v.ExitCode != tt.class.ExitCode() || v.Layer != tt.class.Layer() || v.Next == "" {
				t.Errorf("exit %d layer %q next %q", v.ExitCode, v.Layer, v.Next)
			}
			for _, s := range tt.summary {
				if !strings.Contains(v.Summary, s) {
					t.Errorf("summary %q lacks %q", v.Summary, s)
				}
			}
			ev := strings.Join(v.Evidence, "\n")
			for _, s := range tt.evidence {
				if !strings.Contains(ev, s) {
					t.Errorf("evidence lacks %q:\n%s", s, ev)
				}
			}
			for _, s := range tt.noEvidence {
				if strings.Contains(ev, s) {
					t.Errorf("evidence has %q:\n%s", s, ev)
				}
			}
		})
	}
}

func TestExitCodesDistinct(t *testing.T) {
	seen := map[int]Class{}
	for c := range numClasses {
		code := c.ExitCode()
		if prev, ok := seen[code]; ok {
			t.Errorf("%v and %v share exit code %d", prev, c, code)
		}
		if code == 1 || (c != Healthy && code == 0) {
			t.Errorf("%v: exit code %d is reserved", c, code)
		}
		seen[code] = c
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in   string
		addr string
		port uint16
		name string
	}{
		{"10.96.0.42:8080", "10.96.0.42", 8080, ""},
		{"10.244.1.8", "10.244.1.8", 0, ""},
		{"[fd00::1]:53", "fd00::1", 53, ""},
		{"my-service.default.svc.cluster.local", "", 0, "my-service.default.svc.cluster.local"},
	}
	for _, tt := range tests {
		e := ParseEndpoint(tt.in)
		got := ""
		if len(e.Addrs) > 0 {
			got = e.Addrs[0].String()
		}
		if got != tt.addr || e.Port != tt.port || e.DNSName != tt.name {
			t.Errorf("%s: %+v", tt.in, e)
		}
	}
}

// named sets the Service name the agent's metadata gave the (not DNATed)
// service address c went to.
func named(c api.Connection, namespace, service string) api.Connection {
	c.Backend.Namespace, c.Backend.Service = namespace, service
	return c
}

// emptyEndpoints is a healthy status whose metadata lists the Service
// namespace/service with ready endpoints.
func emptyEndpoints(namespace, service string, ready int) *api.Status {
	st := healthyStatus()
	st.Endpoints = []api.ServiceEndpoints{{Namespace: "other", Service: service, Ready: 3}, {Namespace: namespace, Service: service, Ready: ready}}
	return st
}
