package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

func TestUnknownUntilSynced(t *testing.T) {
	s := NewStore()
	s.SetPod(pod("prod", "backend", backendIP, nil))
	_ = s.SetPolicy(np("deny-all", "", ingressOnly, nil, nil))
	f := flow(prodCliIP, backendIP, 80)
	e := s.Explain(Observation{Flow: f, Evidence: Evidence{Attempts: 3}})
	if e.Verdict != VerdictUnknown || e.Evidence.Attempts != 3 {
		t.Fatalf("not synced: %+v", e)
	}
	if allowed, synced := s.Allowed(f); !allowed || synced {
		t.Fatalf("Allowed = %v, %v before sync", allowed, synced)
	}
}

func TestInvalidPolicyCounted(t *testing.T) {
	s := testStore(t, np("deny-all", "", ingressOnly, nil, nil))
	bad := np("deny-all", "", ingressOnly, from(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/33"}}), nil)
	if err := s.SetPolicy(bad); err == nil {
		t.Fatal("bad CIDR accepted")
	}
	badSel := np("bad-selector", "", nil, nil, nil)
	badSel.Spec.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}
	if err := s.SetPolicy(badSel); err == nil {
		t.Fatal("bad selector accepted")
	}
	if st := s.Stats(); st.Invalid != 2 || st.Policies != 0 {
		t.Fatalf("stats %+v, want 2 invalid, none kept (the replaced deny-all is gone)", st)
	}
	if e := s.Explain(Observation{Flow: flow(prodCliIP, backendIP, 80)}); e.Verdict != VerdictUnexplained {
		t.Fatalf("an invalid policy denies: %s", e)
	}
	s.DeletePolicy("prod", "deny-all")
	if st := s.Stats(); st.Invalid != 1 {
		t.Fatalf("stats %+v after delete", st)
	}
}

// TestPropertiesOfRandomPolicies checks, over random clusters and
// policies: Explain and Allowed agree; a denial names only policies that
// select its pod; and allows add up: adding a policy never turns an
// allowed flow into a denied one unless it newly isolates a pod.
func TestPropertiesOfRandomPolicies(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	apps := []string{"a", "b", "c"}
	for round := range 200 {
		s := NewStore()
		var addrs []netip.Addr
		for n, ns := range []string{"x", "y"} {
			s.SetNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": apps[n]}}})
			for i, a := range apps {
				ip := netip.AddrFrom4([4]byte{10, 244, byte(n), byte(i + 1)})
				addrs = append(addrs, ip)
				s.SetPod(pod(ns, a, ip.String(), map[string]string{"app": a}, corev1.ContainerPort{Name: "p", ContainerPort: 80}))
			}
		}
		addrs = append(addrs, netip.MustParseAddr(externalIP))
		s.MarkSynced()
		randSel := func() *metav1.LabelSelector {
			if r.IntN(4) == 0 {
				return &metav1.LabelSelector{}
			}
			return app(apps[r.IntN(3)])
		}
		randPolicy := func(i int) *networkingv1.NetworkPolicy {
			p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: []string{"x", "y"}[r.IntN(2)], Name: fmt.Sprintf("p%d", i)}}
			p.Spec.PodSelector = *randSel()
			for range r.IntN(3) {
				var rule networkingv1.NetworkPolicyIngressRule
				for range r.IntN(3) {
					var peer networkingv1.NetworkPolicyPeer
					switch r.IntN(4) {
					case 0:
						peer.PodSelector = randSel()
					case 1:
						peer.NamespaceSelector = team(apps[r.IntN(3)])
					case 2:
						peer.PodSelector, peer.NamespaceSelector = randSel(), randSel()
					default:
						peer.IPBlock = &networkingv1.IPBlock{CIDR: "10.244.0.0/16", Except: []string{"10.244.1.0/24"}}
					}
					rule.From = append(rule.From, peer)
				}
				switch r.IntN(3) {
				case 0:
					rule.Ports = ports(named("p"))
				case 1:
					rule.Ports = ports(tcp(80 + r.IntN(2)))
				}
				p.Spec.Ingress = append(p.Spec.Ingress, rule)
			}
			if r.IntN(2) == 0 {
				p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: randSel()}}}}
			}
			return p
		}
		for i := range r.IntN(4) {
			if err := s.SetPolicy(randPolicy(i)); err != nil {
				t.Fatal(err)
			}
		}
		type key struct{ src, dst netip.Addr }
		before := map[key]Explanation{}
		for _, src := range addrs {
			for _, dst := range addrs[:6] {
				f := Flow{Src: src, Dst: dst, Port: 80}
				e := s.Explain(Observation{Flow: f})
				allowed, _ := s.Allowed(f)
				if allowed != (e.Verdict == VerdictUnexplained) {
					t.Fatalf("round %d %s: Allowed %v, Explain %s", round, f, allowed, e)
				}
				for _, d := range e.Denials {
					if len(d.Policies) == 0 || len(d.Rules) == 0 && len(d.Isolating) == 0 {
						t.Fatalf("round %d %s: empty denial %+v", round, f, d)
					}
				}
				before[key{src, dst}] = e
			}
		}
		extra := randPolicy(9)
		if err := s.SetPolicy(extra); err != nil {
			t.Fatal(err)
		}
		for k, was := range before {
			now := s.Explain(Observation{Flow: Flow{Src: k.src, Dst: k.dst, Port: 80}})
			if was.Verdict == VerdictPolicy && now.Verdict != VerdictPolicy {
				continue // the new policy allowed it
			}
			if was.Verdict == VerdictUnexplained && now.Verdict == VerdictPolicy {
				for _, d := range now.Denials {
					isolatedBefore := false
					for _, a := range was.AllowedBy {
						isolatedBefore = isolatedBefore || a.Direction == d.Direction
					}
					if isolatedBefore {
						t.Fatalf("round %d: adding %s denied %s, which was allowed by %v: %s", round, extra.Name, now.Flow, was.AllowedBy, now)
					}
				}
			}
		}
	}
}

// TestWatch feeds a store through the informers (over client-go's fake
// clientset) and follows creates, updates and deletes.
func TestWatch(t *testing.T) {
	cs := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod"}},
		pod("prod", "backend", backendIP, map[string]string{"app": "backend"}),
		pod("prod", "client", prodCliIP, map[string]string{"app": "client"}),
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := NewStore()
	var errs []error
	Watch(ctx, cs, s, 0, nil, func(_ *networkingv1.NetworkPolicy, err error) { errs = append(errs, err) })
	f := flow(prodCliIP, backendIP, 8080)
	waitFor := func(what string, ok func(Explanation) bool) Explanation {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			e := s.Explain(Observation{Flow: f})
			if ok(e) {
				return e
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never, last %s: %s", what, e.Verdict, e)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait := func(want Verdict) Explanation {
		t.Helper()
		return waitFor("verdict "+string(want), func(e Explanation) bool { return e.Verdict == want })
	}
	wait(VerdictUnexplained)
	nps := cs.NetworkingV1().NetworkPolicies("prod")
	if _, err := nps.Create(ctx, np("deny-all", "", ingressOnly, nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if e := wait(VerdictPolicy); e.Denials[0].Blame() != (Ref{"prod", "deny-all"}) {
		t.Fatalf("blames %s", e.Denials[0].Blame())
	}
	// The client moves to another namespace's label set: an allow by
	// namespace label then applies once the namespace is labelled.
	allow := np("from-team-a", "backend", nil, from(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: team("a")}), nil)
	if _, err := nps.Create(ctx, allow, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Update(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"team": "a"}}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait(VerdictUnexplained)
	if err := cs.CoreV1().Pods("prod").Delete(ctx, "backend", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("backend forgotten", func(e Explanation) bool {
		return e.Verdict == VerdictUnexplained && e.Dst == (Ref{}) && len(e.AllowedBy) == 0
	})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
}

func TestDeniedCounts(t *testing.T) {
	s := testStore(t, np("client-deny-egress", "client", egressOnly, nil, nil), np("deny-all", "", ingressOnly, nil, nil))
	var d, byPod Denied
	byPod.ByPod = true
	for _, f := range []Flow{flow(prodCliIP, backendIP, 8080), flow(webIP, backendIP, 8080), flow(devCliIP, webIP, 80)} {
		e := s.Explain(Observation{Flow: f})
		d.Observe(e)
		byPod.Observe(e)
	}
	d.Observe(s.Explain(Observation{Flow: flow(devCliIP, devToolIP, 80)})) // unexplained: not counted
	got := fmt.Sprint(d.Snapshot())
	want := "[{{prod client-deny-egress egress } 1} {{prod deny-all ingress } 3}]"
	if got != want {
		t.Errorf("counts %s, want %s", got, want)
	}
	got = fmt.Sprint(byPod.Snapshot())
	want = "[{{prod client-deny-egress egress client} 1} {{prod deny-all ingress backend} 2} {{prod deny-all ingress web} 1}]"
	if got != want {
		t.Errorf("counts by pod %s, want %s", got, want)
	}
}

// TestReplace makes the store hold exactly a metadata file's policies,
// namespaces and pods, twice: what the second content drops is gone.
func TestReplace(t *testing.T) {
	s := NewStore()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod"}}
	deny := np("deny", "backend", []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, nil, nil)
	bad := np("bad", "", nil, nil, nil)
	bad.Spec.PodSelector.MatchLabels = map[string]string{"a b": "c"}
	be, cli := pod("prod", "backend", backendIP, map[string]string{"app": "backend"}), pod("prod", "client", prodCliIP, nil)
	if errs := s.Replace([]runtime.Object{ns, deny, bad, be, cli}); len(errs) != 1 || errs[Ref{"prod", "bad"}] == nil {
		t.Errorf("errors %v, want the bad policy's", errs)
	}
	f := flow(prodCliIP, backendIP, 8080)
	if e := s.Explain(Observation{Flow: f}); e.Verdict != VerdictPolicy || e.Denials[0].Blame().Name != "deny" {
		t.Fatalf("%s", e)
	}
	if st := s.Stats(); st != (Stats{Policies: 1, Namespaces: 1, Pods: 2, Invalid: 1}) {
		t.Errorf("stats %+v", st)
	}
	s.Replace([]runtime.Object{ns, be, cli})
	if e := s.Explain(Observation{Flow: f}); e.Verdict != VerdictUnexplained {
		t.Errorf("after the policy left the file: %s", e)
	}
	s.Replace(nil)
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("stats %+v after an empty file", st)
	}
}
