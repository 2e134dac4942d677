package policy

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flowrec "github.com/layerscope/layerscope/agent/flow"
)

// benchStore is a cluster of nsCount namespaces (team=t0..t4), each with
// 10 apps of 10 pods and perNS policies: a default deny, then policies
// selecting app i that allow app i-1 of the namespace on the named port
// http, and app i of team t(i mod 5) namespaces on 8000-8100.
func benchStore(b *testing.B, nsCount, perNS int) *Store {
	b.Helper()
	s := NewStore()
	for n := range nsCount {
		ns := fmt.Sprintf("ns%d", n)
		s.SetNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": fmt.Sprintf("t%d", n%5)}}})
		for a := range 10 {
			for i := range 10 {
				ip := netip.AddrFrom4([4]byte{10, byte(n / 250), byte(n % 250), byte(a*10 + i + 1)})
				s.SetPod(pod(ns, fmt.Sprintf("app%d-%d", a, i), ip.String(), map[string]string{"app": fmt.Sprintf("app%d", a), "tier": "x"},
					corev1.ContainerPort{Name: "http", ContainerPort: 8080}))
			}
		}
		if err := s.SetPolicy(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default-deny"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}); err != nil {
			b.Fatal(err)
		}
		rng := tcp(8000)
		end := int32(8100)
		rng.EndPort = &end
		for p := 1; p < perNS; p++ {
			a := p % 10
			np := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("allow-%d", p)},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: *app(fmt.Sprintf("app%d", a)),
					Ingress: []networkingv1.NetworkPolicyIngressRule{
						{From: []networkingv1.NetworkPolicyPeer{{PodSelector: app(fmt.Sprintf("app%d", (a+9)%10))}}, Ports: ports(named("http"))},
						{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: team(fmt.Sprintf("t%d", p%5)), PodSelector: app(fmt.Sprintf("app%d", a))}}, Ports: ports(rng)},
					},
				},
			}
			if err := s.SetPolicy(np); err != nil {
				b.Fatal(err)
			}
		}
	}
	s.MarkSynced()
	return s
}

func benchExplain(b *testing.B, nsCount, perNS int) {
	s := benchStore(b, nsCount, perNS)
	// ns0 app0-0 -> ns0 app1-0:8080: allowed by allow-1's first rule.
	allowed := Flow{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.11"), Port: 8080}
	// ns0 app2-0 -> ns0 app1-0:8080: only the default deny and allow-1
	// (app0) select app1: denied.
	denied := Flow{Src: netip.MustParseAddr("10.0.0.21"), Dst: netip.MustParseAddr("10.0.0.11"), Port: 8080}
	if e := s.Explain(Observation{Flow: allowed}); e.Verdict != VerdictUnexplained {
		b.Fatalf("allowed flow: %s", e)
	}
	if e := s.Explain(Observation{Flow: denied}); e.Verdict != VerdictPolicy {
		b.Fatalf("denied flow: %s", e)
	}
	b.Run("allowed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Explain(Observation{Flow: allowed})
		}
	})
	b.Run("denied", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Explain(Observation{Flow: denied})
		}
	})
	b.Run("Allowed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Allowed(denied)
		}
	})
}

// BenchmarkExplain: 1,000 policies across 100 namespaces (10 each), 10,000
// pods.
func BenchmarkExplain(b *testing.B) { benchExplain(b, 100, 10) }

// BenchmarkExplainCrowded: 1,000 policies in one namespace, every one
// consulted for a pod that 100 of them select.
func BenchmarkExplainCrowded(b *testing.B) { benchExplain(b, 1, 1000) }

func BenchmarkSetPolicy(b *testing.B) {
	s := benchStore(b, 10, 10)
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns0", Name: "bench"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *app("app1"),
			Ingress:     from(ports(named("http"), tcp(9090)), networkingv1.NetworkPolicyPeer{NamespaceSelector: team("t1"), PodSelector: app("app2")}),
		},
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.SetPolicy(np); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordsFinal is the agent's cost per failed connection: the
// observation from its flow record and conntrack entry, the explanation,
// its conversion for the sinks and the count (1,000 policies across 100
// namespaces, 10,000 pods). Connections that did not fail cost nothing.
func BenchmarkRecordsFinal(b *testing.B) {
	s := benchStore(b, 100, 10)
	src, dst := netip.MustParseAddr("10.0.0.21"), netip.MustParseAddr("10.0.0.11")
	rec := &flowrec.Record{Key: flowrec.Key{Src: src, Dst: dst, SrcPort: 40000, DstPort: 8080, Proto: flowrec.ProtoTCP}, Outcome: flowrec.OutcomeTimeout}
	x := &Records{Store: s, Denied: &Denied{}}
	if p := x.Final(rec, nil); p.Verdict != "policy" {
		b.Fatalf("%+v", p)
	}
	b.ReportAllocs()
	for b.Loop() {
		x.Final(rec, nil)
	}
}
