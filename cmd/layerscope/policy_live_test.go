package main

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/layerscope/layerscope/agent/diagnose"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// TestLiveDiagnoseNetworkPolicy runs the lab cluster with the
// kube-network-policies enforcer on both nodes and agents fed by its API
// server, in both kube-proxy modes, and checks `layerscope diagnose`
// against what the enforcer does: a default deny in the backends'
// namespace with an allow for another app is named (ingress, the
// default-deny policy) within 5 s; letting the client in turns the verdict
// healthy; an egress policy on the client is told apart from the backends'
// ingress; and a drop no policy explains (an iptables DROP on the client's
// node, no policy) is not blamed on one.
func TestLiveDiagnoseNetworkPolicy(t *testing.T) {
	testns.RequireRoot(t)
	bin := os.Getenv(lab.KubeNetworkPoliciesEnv)
	if bin == "" {
		t.Skipf("skipped: $%s is not set (.ci/kube-network-policies.sh --env)", lab.KubeNetworkPoliciesEnv)
	}
	for _, mode := range lab.KubeProxyModes {
		t.Run(string(mode), func(t *testing.T) {
			cfg := &lab.Config{Kubernetes: true, KubeProxyMode: mode, K8sBin: testns.K8sBin(t)}
			l, urls := labAgentsIn(t, cfg, "np", nil, lab.Node1, lab.Node2)
			testDiagnoseNetworkPolicy(t, l, urls, bin)
		})
	}
}

// dialLoop has pod-a open a connection to target every 250 ms (each given
// 3 s, so that an unanswered SYN is retransmitted) until the returned stop
// is called.
func dialLoop(ctx context.Context, l *lab.Lab, target netip.AddrPort) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			wg.Go(func() {
				if c, err := l.DialTCP(ctx, lab.PodA, target, 3*time.Second); err == nil {
					_ = c.Close()
				}
			})
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

func testDiagnoseNetworkPolicy(t *testing.T, l *lab.Lab, urls []string, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := l.StartNetworkPolicies(ctx, bin); err != nil {
		t.Fatal(err)
	}
	c, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := l.Pod(lab.PodA)
	pc, _ := l.Pod(lab.PodC)
	from, podC := a.IP.String(), netip.AddrPortFrom(pc.IP, lab.ServicePort)
	nps := c.NetworkingV1().NetworkPolicies(lab.Namespace)

	// connects waits until pod-a reaches target (want true) or its SYN is
	// dropped (want false).
	connects := func(target netip.AddrPort, want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			conn, err := l.DialTCP(ctx, lab.PodA, target, 700*time.Millisecond)
			if err == nil {
				_ = conn.Close()
			}
			if (err == nil) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod-a -> %s: connects %v never held within 10 s (last: %v)", target, want, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// verdict asks diagnose, over the window since start, until ok accepts
	// its verdict or within expires; it returns the verdict, its exit code
	// and how long after start it came.
	verdict := func(to string, start time.Time, within time.Duration, ok func(code int, v *diagnose.Verdict) bool) (int, diagnose.Verdict, time.Duration) {
		t.Helper()
		var (
			code int
			v    diagnose.Verdict
		)
		for {
			code, v = diagnoseJSON(t, urls, time.Since(start)+time.Millisecond, from, to)
			if ok(code, &v) {
				return code, v, time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("diagnose %s %s: no expected verdict within %v; last %s (exit %d): %s\n%s\nnext: %s",
					from, to, within, v.Class, code, v.Summary, strings.Join(v.Evidence, "\n"), v.Next)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	policyNamed := func(dir, policy string) func(int, *diagnose.Verdict) bool {
		return func(code int, v *diagnose.Verdict) bool {
			return code == diagnose.Policy.ExitCode() && v.Class == diagnose.Policy &&
				strings.Contains(v.Summary, dir+" of "+lab.Namespace+"/") &&
				strings.Contains(v.Summary, "denied by NetworkPolicy "+lab.Namespace+"/"+policy)
		}
	}

	connects(lab.ServiceAddr, true)

	// A default deny in the backends' namespace, and an allow for another
	// app: pod-a is not it.
	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	allow := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-other"},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}}},
		}}},
	}
	for _, p := range []*networkingv1.NetworkPolicy{deny, allow} {
		if _, err := nps.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	stop := dialLoop(ctx, l, lab.ServiceAddr)
	code, v, took := verdict(lab.ServiceAddr.String(), start, 5*time.Second, policyNamed("ingress", "default-deny"))
	t.Logf("policy verdict %v after the policies were created: %s\n%s\nnext: %s", took.Round(time.Millisecond), v.Summary, strings.Join(v.Evidence, "\n"), v.Next)
	ev := strings.Join(v.Evidence, "\n")
	for _, want := range []string{"selected by allow-other, default-deny", "the rule to change: " + lab.Namespace + "/allow-other spec.ingress[0]",
		"SYN×", "node-1/veth-pod-a (pod, in)", "never on the backend's pod interface"} {
		if !strings.Contains(ev, want) {
			t.Errorf("exit %d: evidence lacks %q:\n%s", code, want, ev)
		}
	}
	if strings.Contains(v.Summary, "egress") {
		t.Errorf("summary blames an egress policy: %s", v.Summary)
	}
	// The same by name: the pod and the Service as the agents' events
	// name them.
	pod, svc := lab.Namespace+"/"+lab.PodA, lab.Namespace+"/my-service"
	if code, nv := diagnoseJSON(t, urls, time.Since(start)+time.Millisecond, pod, svc); code != diagnose.Policy.ExitCode() ||
		!strings.Contains(nv.Summary, "denied by NetworkPolicy "+lab.Namespace+"/default-deny") {
		t.Errorf("diagnose %s %s: exit %d: %s", pod, svc, code, nv.Summary)
	}
	stop()

	// Fixing the policy through the API: pod-a becomes the other app.
	if _, err := c.CoreV1().Pods(lab.Namespace).Patch(ctx, lab.PodA, types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"app":"other"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	connects(podC, true)
	time.Sleep(100 * time.Millisecond) // the window starts after the last refused SYN
	start = time.Now()
	stop = dialLoop(ctx, l, lab.ServiceAddr)
	_, v, took = verdict(lab.ServiceAddr.String(), start, 10*time.Second, func(code int, v *diagnose.Verdict) bool {
		return code == 0 && v.Class == diagnose.Healthy && v.Connections > 0
	})
	t.Logf("healthy %v after the fix: %s", took.Round(time.Millisecond), v.Summary)
	stop()

	// An egress policy on the client, not the backends' ingress.
	egress := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "client-no-egress"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		},
	}
	if _, err := nps.Create(ctx, egress, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	stop = dialLoop(ctx, l, podC)
	_, v, took = verdict(podC.String(), start, 5*time.Second, policyNamed("egress", "client-no-egress"))
	t.Logf("egress verdict %v after the policy was created: %s", took.Round(time.Millisecond), v.Summary)
	if strings.Contains(v.Summary, "ingress") || !strings.Contains(v.Summary, "egress of "+lab.Namespace+"/"+lab.PodA) {
		t.Errorf("egress on the client not told apart: %s", v.Summary)
	}
	stop()

	// No policy at all, and a DROP on the client's node: not a policy.
	for _, name := range []string{egress.Name, allow.Name, deny.Name} {
		if err := nps.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	connects(podC, true)
	n1, _ := l.Node(lab.Node1)
	// iptables -t filter OP FORWARD …: DROP pod-a's SYNs to pod-c where
	// node-1 forwards them.
	iptables := func(op string) error {
		_, err := lab.RunInNetNS(context.Background(), n1.NetNS, nil, "iptables-nft", "-w", "-t", "filter", op, "FORWARD",
			"-d", pc.IP.String(), "-p", "tcp", "--dport", "8080", "-j", "DROP")
		return err
	}
	if err := iptables("-I"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := iptables("-D"); err != nil {
			t.Errorf("removing the DROP rule: %v", err)
		}
	})
	connects(podC, false)
	start = time.Now()
	stop = dialLoop(ctx, l, podC)
	defer stop()
	_, v, took = verdict(podC.String(), start, 10*time.Second, func(code int, v *diagnose.Verdict) bool {
		if v.Class == diagnose.Policy {
			t.Fatalf("a drop no policy explains was blamed on one: %s", v.Summary)
		}
		return code != 0 && strings.Contains(strings.Join(v.Evidence, "\n"), "NetworkPolicies do not explain the drop")
	})
	t.Logf("unexplained drop, verdict %s %v after it began: %s\n%s\nnext: %s", v.Class, took.Round(time.Millisecond), v.Summary, strings.Join(v.Evidence, "\n"), v.Next)
	if !strings.Contains(v.Next, "not a NetworkPolicy") && v.Class == diagnose.Backend {
		t.Errorf("next step still points at policies: %s", v.Next)
	}
}
