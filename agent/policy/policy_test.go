package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The cluster of the table: namespaces prod (team=a), dev (team=b) and
// empty (no labels); pods by address.
const (
	backendIP   = "10.244.0.8" // prod/backend app=backend, ports http 8080/TCP, dns 53/UDP
	prodCliIP   = "10.244.0.5" // prod/client app=client
	webIP       = "10.244.0.9" // prod/web app=web
	devCliIP    = "10.244.1.5" // dev/client app=client
	devToolIP   = "10.244.1.6" // dev/tool app=tool
	nodeAgentIP = "10.0.0.10"  // prod/agent app=client, hostNetwork
	externalIP  = "192.168.5.5"
)

func testStore(t testing.TB, policies ...*networkingv1.NetworkPolicy) *Store {
	t.Helper()
	s := NewStore()
	s.SetNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"team": "a"}}})
	s.SetNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dev", Labels: map[string]string{"team": "b"}}})
	s.SetNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "empty"}})
	s.SetPod(pod("prod", "backend", backendIP, map[string]string{"app": "backend"},
		corev1.ContainerPort{Name: "http", ContainerPort: 8080},
		corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}))
	s.SetPod(pod("prod", "client", prodCliIP, map[string]string{"app": "client"}))
	s.SetPod(pod("prod", "web", webIP, map[string]string{"app": "web"}))
	s.SetPod(pod("dev", "client", devCliIP, map[string]string{"app": "client"}))
	s.SetPod(pod("dev", "tool", devToolIP, map[string]string{"app": "tool"}))
	agent := pod("prod", "agent", nodeAgentIP, map[string]string{"app": "client"})
	agent.Spec.HostNetwork = true
	s.SetPod(agent)
	for _, p := range policies {
		if err := s.SetPolicy(p); err != nil {
			t.Fatalf("policy %s: %v", p.Name, err)
		}
	}
	s.MarkSynced()
	return s
}

func pod(ns, name, ip string, l map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

// np is a policy in prod selecting app=sel ("" selects every pod).
func np(name, sel string, types []networkingv1.PolicyType, in []networkingv1.NetworkPolicyIngressRule, eg []networkingv1.NetworkPolicyEgressRule) *networkingv1.NetworkPolicy {
	p := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: types, Ingress: in, Egress: eg},
	}
	if sel != "" {
		p.Spec.PodSelector.MatchLabels = map[string]string{"app": sel}
	}
	return p
}

var (
	ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	udp         = corev1.ProtocolUDP
)

func app(v string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": v}}
}

func team(v string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"team": v}}
}

func tcp(p int) networkingv1.NetworkPolicyPort {
	v := intstr.FromInt32(int32(p))
	return networkingv1.NetworkPolicyPort{Port: &v}
}

func named(n string) networkingv1.NetworkPolicyPort {
	v := intstr.FromString(n)
	return networkingv1.NetworkPolicyPort{Port: &v}
}

func from(ports []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyIngressRule {
	return []networkingv1.NetworkPolicyIngressRule{{From: peers, Ports: ports}}
}

func to(ports []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyEgressRule {
	return []networkingv1.NetworkPolicyEgressRule{{To: peers, Ports: ports}}
}

func ports(p ...networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort { return p }

func flow(src, dst string, port uint16) Flow {
	return Flow{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Port: port}
}

func TestExplainSemantics(t *testing.T) {
	deny := np("deny-all", "", ingressOnly, nil, nil)
	allowClient := np("allow-client-8080", "backend", nil, from(ports(tcp(8080)), networkingv1.NetworkPolicyPeer{PodSelector: app("client")}), nil)
	allowWeb := np("allow-web-9090", "backend", nil, from(ports(tcp(9090)), networkingv1.NetworkPolicyPeer{PodSelector: app("web")}), nil)
	andPeer := np("and", "backend", nil, from(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: team("b"), PodSelector: app("client")}), nil)
	orPeers := np("or", "backend", nil, from(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: team("b")}, networkingv1.NetworkPolicyPeer{PodSelector: app("client")}), nil)
	podOnly := np("pod-only", "backend", nil, from(nil, networkingv1.NetworkPolicyPeer{PodSelector: app("client")}), nil)
	anyNS := np("any-ns-client", "backend", nil, from(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: app("client")}), nil)
	block := np("block", "backend", nil, from(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.244.0.0/16", Except: []string{"10.244.1.0/24"}}}), nil)
	block6 := np("block6", "backend", nil, from(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "::/0"}}), nil)
	namedHTTP := np("named-http", "backend", nil, from(ports(named("http"))), nil)
	namedDNS := np("named-dns", "backend", nil, from(ports(networkingv1.NetworkPolicyPort{Protocol: &udp, Port: named("dns").Port})), nil)
	rng := tcp(8000)
	end := int32(8100)
	rng.EndPort = &end
	endPort := np("range", "backend", nil, from(ports(rng)), nil)
	egressClient := np("client-egress", "client", egressOnly, nil, to(ports(tcp(8080)), networkingv1.NetworkPolicyPeer{PodSelector: app("backend")}))
	// policyTypes absent: Ingress only, since there is no egress rule.
	inferredIngress := np("inferred-ingress", "client", nil, from(nil, networkingv1.NetworkPolicyPeer{PodSelector: app("web")}), nil)
	// policyTypes absent with egress rules: Ingress and Egress, and no
	// ingress rule: every ingress is denied.
	inferredBoth := np("inferred-both", "backend", nil, nil, to(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}))
	allowAll := np("allow-all", "backend", nil, []networkingv1.NetworkPolicyIngressRule{{}}, nil)
	emptyIngress := np("empty-ingress", "backend", nil, []networkingv1.NetworkPolicyIngressRule{}, nil)
	otherApp := np("allow-tool", "backend", ingressOnly, from(ports(tcp(8080)), networkingv1.NetworkPolicyPeer{NamespaceSelector: team("b"), PodSelector: app("tool")}), nil)
	clientDeny := np("client-deny-egress", "client", egressOnly, nil, nil)
	ipEgress := np("egress-ext", "client", egressOnly, nil, to(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16"}}))

	type tc struct {
		name      string
		policies  []*networkingv1.NetworkPolicy
		flow      Flow
		verdict   Verdict
		denials   []string // "direction pod blame"
		change    string   // RuleRef of the first denial's Change
		allowedBy []string
	}
	u := func(f Flow, p Protocol) Flow { f.Protocol = corev1.Protocol(p); return f }
	cases := []tc{
		{name: "selected by no policy", flow: flow(prodCliIP, backendIP, 8080), verdict: VerdictUnexplained},
		{name: "other pod selected, this one not", policies: ps(allowClient), flow: flow(prodCliIP, webIP, 80), verdict: VerdictUnexplained},
		{name: "default deny ingress", policies: ps(deny), flow: flow(prodCliIP, backendIP, 8080), verdict: VerdictPolicy,
			denials: []string{"ingress prod/backend prod/deny-all"}, change: "prod/deny-all (no ingress rule)"},
		{name: "two policies add up: first", policies: ps(allowClient, allowWeb), flow: flow(prodCliIP, backendIP, 8080), verdict: VerdictUnexplained,
			allowedBy: []string{"prod/allow-client-8080 spec.ingress[0]"}},
		{name: "two policies add up: second", policies: ps(allowClient, allowWeb), flow: flow(webIP, backendIP, 9090), verdict: VerdictUnexplained,
			allowedBy: []string{"prod/allow-web-9090 spec.ingress[0]"}},
		{name: "two policies add up: neither", policies: ps(allowClient, allowWeb), flow: flow(webIP, backendIP, 8080), verdict: VerdictPolicy,
			denials: []string{"ingress prod/backend prod/allow-client-8080"}, change: "prod/allow-client-8080 spec.ingress[0]"},
		{name: "default deny plus allow: allowed", policies: ps(deny, allowClient), flow: flow(prodCliIP, backendIP, 8080), verdict: VerdictUnexplained,
			allowedBy: []string{"prod/allow-client-8080 spec.ingress[0]"}},
		{name: "default deny plus allow for another app: blames the default deny", policies: ps(deny, otherApp), flow: flow(prodCliIP, backendIP, 8080), verdict: VerdictPolicy,
			denials: []string{"ingress prod/backend prod/deny-all"}, change: "prod/allow-tool spec.ingress[0]"},
		{name: "ns AND pod in one peer: both match", policies: ps(andPeer), flow: flow(devCliIP, backendIP, 80), verdict: VerdictUnexplained, allowedBy: []string{"prod/and spec.ingress[0]"}},
		{name: "ns AND pod in one peer: ns only", policies: ps(andPeer), flow: flow(devToolIP, backendIP, 80), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/and"}},
		{name: "ns AND pod in one peer: pod only", policies: ps(andPeer), flow: flow(prodCliIP, backendIP, 80), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/and"}},
		{name: "ns OR pod in two peers: ns", policies: ps(orPeers), flow: flow(devToolIP, backendIP, 80), verdict: VerdictUnexplained, allowedBy: []string{"prod/or spec.ingress[0]"}},
		{name: "ns OR pod in two peers: pod of the policy's namespace", policies: ps(orPeers), flow: flow(prodCliIP, backendIP, 80), verdict: VerdictUnexplained, allowedBy: []string{"prod/or spec.ingress[0]"}},
		{name: "ns OR pod in two peers: neither", policies: ps(orPeers), flow: flow(webIP, backendIP, 80), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/or"}},
		{name: "podSelector alone: own namespace only", policies: ps(podOnly), flow: flow(devCliIP, backendIP, 80), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/pod-only"}},
		{name: "empty namespaceSelector: every namespace", policies: ps(anyNS), flow: flow(devCliIP, backendIP, 80), verdict: VerdictUnexplained, allowedBy: []string{"prod/any-ns-client spec.ingress[0]"}},
		{name: "selectors never match a hostNetwork pod", policies: ps(podOnly), flow: flow(nodeAgentIP, backendIP, 80), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/pod-only"}},
		{name: "ipBlock: inside", policies: ps(block), flow: flow(prodCliIP, backendIP, 80), verdict: VerdictUnexplained, allowedBy: []string{"prod/block spec.ingress[0]"}},
		{name: "ipBlock: except", policies: ps(block), flow: flow(devCliIP, backendIP, 80), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/block"}},
		{name: "ipBlock: outside", policies: ps(block), flow: flow(externalIP, backendIP, 80), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/block"}},
		{name: "ipBlock of the other family", policies: ps(block6), flow: flow(prodCliIP, backendIP, 80), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/block6"}},
		{name: "ipBlock IPv6", policies: ps(block6), flow: flow("fd00::5", backendIP, 80), verdict: VerdictUnexplained, allowedBy: []string{"prod/block6 spec.ingress[0]"}},
		{name: "named port", policies: ps(namedHTTP), flow: flow(externalIP, backendIP, 8080), verdict: VerdictUnexplained, allowedBy: []string{"prod/named-http spec.ingress[0]"}},
		{name: "named port: other number", policies: ps(namedHTTP), flow: flow(externalIP, backendIP, 8081), verdict: VerdictPolicy,
			denials: []string{"ingress prod/backend prod/named-http"}, change: "prod/named-http spec.ingress[0]"},
		{name: "named UDP port", policies: ps(namedDNS), flow: u(flow(prodCliIP, backendIP, 53), "UDP"), verdict: VerdictUnexplained, allowedBy: []string{"prod/named-dns spec.ingress[0]"}},
		{name: "named UDP port: TCP denied", policies: ps(namedDNS), flow: flow(prodCliIP, backendIP, 53), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/named-dns"}},
		{name: "port protocol defaults to TCP", policies: ps(allowClient), flow: u(flow(prodCliIP, backendIP, 8080), "UDP"), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/allow-client-8080"}},
		{name: "endPort: inside", policies: ps(endPort), flow: flow(externalIP, backendIP, 8080), verdict: VerdictUnexplained, allowedBy: []string{"prod/range spec.ingress[0]"}},
		{name: "endPort: last", policies: ps(endPort), flow: flow(externalIP, backendIP, 8100), verdict: VerdictUnexplained, allowedBy: []string{"prod/range spec.ingress[0]"}},
		{name: "endPort: first", policies: ps(endPort), flow: flow(externalIP, backendIP, 8000), verdict: VerdictUnexplained, allowedBy: []string{"prod/range spec.ingress[0]"}},
		{name: "endPort: above", policies: ps(endPort), flow: flow(externalIP, backendIP, 8101), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/range"}},
		{name: "endPort: below", policies: ps(endPort), flow: flow(externalIP, backendIP, 7999), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/range"}},
		{name: "egress-only: allowed", policies: ps(egressClient), flow: flow(prodCliIP, backendIP, 8080), verdict: VerdictUnexplained, allowedBy: []string{"prod/client-egress spec.egress[0]"}},
		{name: "egress-only: denied, told apart from ingress", policies: ps(egressClient), flow: flow(prodCliIP, webIP, 80), verdict: VerdictPolicy,
			denials: []string{"egress prod/client prod/client-egress"}, change: "prod/client-egress spec.egress[0]"},
		{name: "egress-only: ingress to the pod untouched", policies: ps(egressClient), flow: flow(webIP, prodCliIP, 80), verdict: VerdictUnexplained},
		{name: "egress ipBlock to a non-pod", policies: ps(ipEgress), flow: flow(prodCliIP, externalIP, 443), verdict: VerdictUnexplained, allowedBy: []string{"prod/egress-ext spec.egress[0]"}},
		{name: "egress and ingress both deny", policies: ps(clientDeny, deny), flow: flow(prodCliIP, backendIP, 8080), verdict: VerdictPolicy,
			denials: []string{"egress prod/client prod/client-deny-egress", "ingress prod/backend prod/deny-all"}},
		{name: "policyTypes absent, ingress rules only: egress not isolated", policies: ps(inferredIngress), flow: flow(prodCliIP, backendIP, 8080), verdict: VerdictUnexplained},
		{name: "policyTypes absent, ingress rules only: ingress isolated", policies: ps(inferredIngress), flow: flow(devCliIP, prodCliIP, 80), verdict: VerdictPolicy,
			denials: []string{"ingress prod/client prod/inferred-ingress"}},
		{name: "policyTypes absent, egress rules: ingress isolated too", policies: ps(inferredBoth), flow: flow(prodCliIP, backendIP, 8080), verdict: VerdictPolicy,
			denials: []string{"ingress prod/backend prod/inferred-both"}, change: "prod/inferred-both (no ingress rule)"},
		{name: "policyTypes absent, egress rules: egress allowed by ipBlock", policies: ps(inferredBoth), flow: flow(backendIP, prodCliIP, 80), verdict: VerdictUnexplained,
			allowedBy: []string{"prod/inferred-both spec.egress[0]"}},
		{name: "empty rule allows everything", policies: ps(allowAll), flow: flow(externalIP, backendIP, 1), verdict: VerdictUnexplained, allowedBy: []string{"prod/allow-all spec.ingress[0]"}},
		{name: "empty rule list allows nothing", policies: ps(emptyIngress), flow: flow(prodCliIP, backendIP, 8080), verdict: VerdictPolicy, denials: []string{"ingress prod/backend prod/empty-ingress"}},
		{name: "hostNetwork pod is never selected", policies: ps(clientDeny), flow: flow(nodeAgentIP, backendIP, 8080), verdict: VerdictUnexplained},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testStore(t, c.policies...)
			e := s.Explain(Observation{Flow: c.flow})
			if e.Verdict != c.verdict {
				t.Fatalf("verdict %s, want %s: %s", e.Verdict, c.verdict, e)
			}
			var got []string
			for _, d := range e.Denials {
				got = append(got, fmt.Sprintf("%s %s %s", d.Direction, d.Pod, d.Blame()))
			}
			if !slices.Equal(got, c.denials) {
				t.Errorf("denials %q, want %q", got, c.denials)
			}
			if c.change != "" && e.Denials[0].Change.RuleRef.String() != c.change {
				t.Errorf("change %s (%s), want %s", e.Denials[0].Change.RuleRef, e.Denials[0].Change.What(), c.change)
			}
			got = got[:0]
			for _, r := range e.AllowedBy {
				got = append(got, r.String())
			}
			if len(got) == 0 {
				got = nil
			}
			if !slices.Equal(got, c.allowedBy) {
				t.Errorf("allowed by %q, want %q", got, c.allowedBy)
			}
			allowed, synced := s.Allowed(c.flow)
			if !synced || allowed != (c.verdict == VerdictUnexplained) {
				t.Errorf("Allowed = %v (synced %v), want %v", allowed, synced, c.verdict == VerdictUnexplained)
			}
		})
	}
}

// Protocol is a string for the table's brevity.
type Protocol string

func ps(p ...*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy { return p }
