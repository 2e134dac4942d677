// Package policy tells whether Kubernetes NetworkPolicies explain a dropped
// connection: for a flow the agent saw leave a pod and not arrive, which
// policies select the destination (ingress) and the source (egress), that
// none of them allows the peer and port, and which rule comes closest to
// allowing it, or else that no policy explains the drop (the CNI or the
// node dropped it). It does so from the API objects alone, on any CNI.
//
// # Entry point
//
// Store.Explain takes an Observation (source and destination address after
// DNAT, protocol, destination port, and the evidence of the drop: attempts,
// times, the hops the packets were seen on and the first they were not)
// and returns an Explanation whose Verdict is VerdictPolicy (Denials name
// each denying direction's namespace, pod, policies and rules),
// VerdictUnexplained (the policies allow the flow, or none selects its
// pods), or VerdictUnknown (no complete copy of the policies yet).
// Store.Allowed is the same evaluation without the explanation. Denied
// counts explanations for layerscope_policy_denied_connections_total
// {namespace,policy,direction} (the pod, opt-in, with Denied.ByPod).
//
// # Semantics
//
// The evaluation follows the networking.k8s.io/v1 NetworkPolicy
// specification:
//   - a pod selected by at least one policy of a direction is isolated in
//     that direction: only what some rule of some selecting policy allows
//     passes (allows add up across policies and rules; there is no deny
//     rule);
//   - policyTypes, when absent, is Ingress, plus Egress when the policy
//     has egress rules;
//   - an absent or empty rule list allows nothing; an empty rule ({})
//     allows every peer on every port; an absent or empty from/to list
//     allows every peer, an absent or empty ports list every port;
//   - a peer with only a podSelector selects pods of the policy's
//     namespace; with only a namespaceSelector every pod of the selected
//     namespaces; with both, in the same peer, the pods matching the
//     podSelector in the selected namespaces (two peers are ORed); an
//     empty selector selects everything in its scope;
//   - an ipBlock matches addresses in its CIDR outside its except CIDRs,
//     whether or not they are pods;
//   - a port's protocol defaults to TCP; a numeric port with endPort is
//     the inclusive range; a named port matches a container port of that
//     name and protocol of the destination pod (for egress, the peer).
//
// Label selectors are compiled once per policy with
// k8s.io/apimachinery's metav1.LabelSelectorAsSelector. Pods with
// hostNetwork are never selected (policies do not apply to them) and, as
// peers, are matched by ipBlock only. A policy whose selector does not
// compile (the API server rejects such policies; a file may hold one) is
// left out and counted in Stats.Invalid.
//
// sigs.k8s.io/kube-network-policies evaluates the same semantics inside its
// enforcer, but as unexported methods of its controller, over listers, and
// relying on the API server's defaulting of policyTypes and protocol; it
// cannot be imported for this.
//
// # Sources
//
// Watch feeds a Store through client-go shared informers of every Pod,
// Namespace (labels) and NetworkPolicy, in the style of the kube package.
// The agent's service account needs list and watch on pods, namespaces
// and networking.k8s.io networkpolicies, cluster-wide.
//
// Every pod of the cluster is held, so pods are compact: the pod
// informer's transform turns each into a Pod (namespace, name, resource
// version, addresses, hostNetwork, and a handle to its labels and named
// ports, interned with package unique so that a workload's replicas share
// one copy), which the informer caches and the store indexes by address;
// the informer has no namespace index. BenchmarkWatchPodsMemory measures
// the whole cost through client-go's informer: about 490 bytes per pod
// (70 MiB for the 150,000 pods of a 5,000-node cluster), where the API's
// objects trimmed of what evaluation does not read took 2,660 (380 MiB).
// --no-network-policies turns the watch off.
//
// # In the agent
//
// Records explains the agent's failed connections from their flow records:
// Final for each ended connection whose outcome failed (the fan-out, before
// the sinks: it counts the denials, once per connection by its conntrack
// ID), Active for each connection whose SYN is still unanswered when the
// history's progress loop looks (not counted). The observation is the
// client and the backend after DNAT from conntrack's entry; a connection
// conntrack does not know, although it went to a Service, is evaluated
// against each of the Service's endpoints (Records.Backends), since an
// enforcer that drops a SYN in the netfilter hooks drops it before
// conntrack confirms its entry. The answer becomes a correlate.Policy: the
// API's policy layer, the span's attributes and events, the input of
// diagnose's policy verdict. Replace feeds the store from a metadata file.
//
// # Concurrency and cost
//
// Every method of Store is safe for concurrent use. Explain and Allowed
// take the read lock and walk the policies of the two pods' namespaces
// only; Allowed does not allocate, Explain allocates its answer (the
// denials, with every rule of the selecting policies, only for a denied
// flow). The informer handlers take the write lock per object and compile
// policies there, so evaluation never parses a selector. BenchmarkRecordsFinal
// measures the agent's cost per failed connection; connections that do not
// fail cost one comparison.
package policy
