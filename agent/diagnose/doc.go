// Package diagnose answers "FROM cannot reach TO: which layer is it?" from
// what the agents observed: it walks the layers in order over their
// connection history and status and names the first broken layer, with the
// evidence (counts, times, hops) and the next check to run by hand.
//
// # Design
//
// The diagnosis runs in the client (layerscope diagnose), not in the agent:
// FROM and TO are often on two nodes, so the evidence of several agents
// (one --agent URL each) is gathered through their API
// (GET /api/v1/connections?since=…, GET /api/v1/status), merged, and judged
// once. Diagnose is a pure function of that evidence (Input), so that every
// verdict is unit-tested on fixed evidence, and the lab tests check it
// against real faults end to end.
//
// # Layers, in order
//
// One file per layer: dns.go, traffic.go, conntrack.go, mtu.go, policy.go, dnat.go,
// backend.go (L4 backends and the path hop by hop), app.go (L7);
// diagnose.go walks them in this order, evidence.go writes the evidence
// lines they share.
//
//  1. DNS, when TO is a name that is neither an address nor a known pod
//     or service: the DNS answers FROM received for TO's name. NXDOMAIN
//     means a wrong name or namespace (DNSNXDomain), SERVFAIL or no
//     answer a broken DNS server (DNSServFail). TO's name is TO itself or,
//     unless TO ends with a dot, TO expanded by a pod's search path:
//     TO.<FROM's namespace>.svc.cluster.local (any namespace when FROM's
//     is unknown), TO.svc.cluster.local, TO.cluster.local; names compare
//     case-insensitively, a truncated name by its kept prefix. Answers
//     for other names are listed apart and not judged.
//  2. Traffic: connections from FROM to TO (TO as the service address or
//     the backend address) in the window. None is NoTraffic, with what
//     FROM did connect to instead.
//  3. Conntrack: a table that is full (95%) or counts drop, insert_failed
//     or early_drop, while connections failed (Conntrack).
//  4. L3 MTU: ICMP frag-needed / packet-too-big reports about FROM's
//     connections, interfaces whose MTU exceeds their path, oversize
//     packets FROM sent (MTU; the summary names the reported MTU).
//  5. NetworkPolicies: the failed connections whose policy explanation
//     (evaluated by the agents, see agent/policy) is a denial: the
//     direction (egress of the client, ingress of the backend), the
//     namespace/policy, the rule that would have to change, and the
//     evidence (SYNs, times, the hops they were seen on, and whether they
//     reached the backend's pod interface) (Policy). When the agents found
//     that the policies allow the connections, the L4 or path verdict
//     below says that the CNI or the node dropped them, never a policy.
//     It comes before the DNAT: an enforcer that drops a SYN in the
//     netfilter hooks drops it before conntrack confirms its entry, so
//     the connection shows no DNAT. Failures a policy explains do not
//     count for the conntrack verdict either.
//  6. Service: connections to TO that conntrack never DNATed and nobody
//     answered: a Service without endpoints, or not a service (NoDNAT).
//  7. L4 backends: per backend (the DNAT target, or TO itself) the
//     connections and their outcomes: refused (RST), reset, timeout (SYN
//     without SYN-ACK). The backend with the most failures is named, with
//     the share of failed connections, e.g. about 1 in 3 (Backend). When
//     the backend is silent and the agent of its node saw none of the
//     lost connections, though it sees other traffic of the backend, the
//     packets are lost between the hops: Path, naming the last hop they
//     were seen on.
//  8. L7: DNS or HTTP errors on working connections (App).
//
// Otherwise the verdict is Healthy, "no fault observed", with the
// connections' outcomes, backends and the hops they were seen on.
//
// # Exit codes
//
// Class.ExitCode is what the command exits with:
//
//	0  healthy       no fault observed
//	1  (error of the command: bad flags, no agent reachable)
//	2  no-traffic    nothing from FROM to TO observed
//	3  dns-nxdomain  wrong name or namespace
//	4  dns-servfail  DNS server broken
//	5  conntrack     conntrack table full or dropping
//	6  no-dnat       service address not translated (no endpoints)
//	7  mtu           L3 MTU mismatch / frag-needed
//	8  backend       L4: a backend refuses, resets or stays silent
//	9  path          packets lost between hops
//	10 app           L7 errors
//	11 policy        NetworkPolicies deny the connections
//
// # Active connections
//
// Connections still in progress count as failing when their SYN is
// unanswered after a retransmission or for more than a second, so that a
// fault shows before the flows time out.
//
// # Limits
//
// Paths list hops in the order of their first packet across nodes, which
// assumes the nodes' clocks are in step.
//
// The agents' history is bounded (a ring of recent events), so --since
// longer than what they keep looks at less. The DNS step judges every DNS
// answer FROM received in the window only when no connection carries a
// question name (agents older than the names in the API); an exchange
// whose query asked for another name than its connection's first has no
// name and is not judged. The cluster domain is taken to be cluster.local.
package diagnose
