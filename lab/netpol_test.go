package lab

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/layerscope/layerscope/agent/policy"
)

// knpBin returns the kube-network-policies binary: $LAYERSCOPE_KUBE_NETWORK_POLICIES
// or the tool cache's. The test is skipped without it.
func knpBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(KubeNetworkPoliciesEnv)
	if bin == "" {
		home, err := os.UserHomeDir()
		require.NoError(t, err)
		bin = filepath.Join(home, ".cache", "layerscope", "tools", "kube-network-policies-v0.8.0", "kube-network-policies")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("skipped: no kube-network-policies (%v); build it with .ci/kube-network-policies.sh", err)
	}
	return bin
}

func TestStartNetworkPoliciesWithoutKubernetes(t *testing.T) {
	require.ErrorIs(t, (&Lab{}).StartNetworkPolicies(context.Background(), "/nonexistent"), ErrNoKubernetes)
}

// TestNetworkPolicyEnforcer runs kube-network-policies on both nodes and
// checks, through the API server, that a default-deny ingress policy makes
// it drop pod-a's SYNs to pod-c (on node-1, where they are routed, counted
// by its nfqueue), that an allow for pod-a restores them and an egress
// policy on pod-a drops them again; and that the policy store of the
// agent, fed by the same API server, names the policy and the direction
// each time.
func TestNetworkPolicyEnforcer(t *testing.T) {
	bin := knpBin(t)
	for _, mode := range KubeProxyModes {
		t.Run(string(mode), func(t *testing.T) { testNetworkPolicyEnforcer(t, bin, mode) })
	}
}

func testNetworkPolicyEnforcer(t *testing.T, bin string, mode KubeProxyMode) {
	l := newKubeLab(t, mode)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, l.StartNetworkPolicies(ctx, bin))
	c, err := l.KubeClient()
	require.NoError(t, err)
	store := policy.NewStore()
	policy.Watch(ctx, c, store, 0, nil, func(np *networkingv1.NetworkPolicy, err error) { t.Errorf("policy %s: %v", np.Name, err) })

	a, _ := l.Pod(PodA)
	pc, _ := l.Pod(PodC)
	target := netip.AddrPortFrom(pc.IP, ServicePort)
	flow := policy.Flow{Src: a.IP, Dst: pc.IP, Port: ServicePort}
	dial := func(timeout time.Duration) error {
		conn, err := l.DialTCP(ctx, PodA, target, timeout)
		if err == nil {
			_ = conn.Close()
		}
		return err
	}
	// viaService reports whether pod-a connects to the Service (whichever
	// backend kube-proxy picks: every one is in the default namespace)
	// within timeout; beyond 1 s the SYN is retransmitted once.
	viaService := func(timeout time.Duration) bool {
		conn, err := l.DialTCP(ctx, PodA, ServiceAddr, timeout)
		if err == nil {
			_ = conn.Close()
		} else {
			t.Logf("pod-a -> %s: %v", ServiceAddr, err)
		}
		return err == nil
	}
	// connects dials until a connection succeeds (want true) or times out
	// (want false: the SYN is dropped, not refused), within 5 s.
	connects := func(want bool) time.Duration {
		t.Helper()
		start := time.Now()
		var last error
		for time.Since(start) < 5*time.Second {
			last = dial(700 * time.Millisecond)
			var ne net.Error
			if want && last == nil || !want && errors.As(last, &ne) && ne.Timeout() {
				return time.Since(start)
			}
		}
		t.Fatalf("pod-a -> %s: connects %v never held within 5 s (last: %v)", target, want, last)
		return 0
	}
	explain := func(want policy.Verdict) policy.Explanation {
		t.Helper()
		var e policy.Explanation
		require.Eventually(t, func() bool {
			e = store.Explain(policy.Observation{Flow: flow})
			return e.Verdict == want
		}, 5*time.Second, 50*time.Millisecond, "verdict %s, want %s", e.Verdict, want)
		return e
	}

	connects(true)
	q0, _, err := l.NetworkPolicyQueueStats(ctx, Node1)
	require.NoError(t, err)
	require.NotZero(t, q0, "node-1's enforcer saw no packet of the allowed connection")
	e := explain(policy.VerdictUnexplained)
	require.Empty(t, e.AllowedBy, "no policy yet")

	nps := c.NetworkingV1().NetworkPolicies(Namespace)
	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	_, err = nps.Create(ctx, deny, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Logf("default-deny enforced after %s", connects(false).Round(time.Millisecond))
	require.False(t, viaService(700*time.Millisecond), "pod-a reached the Service through a default deny")
	q1, _, err := l.NetworkPolicyQueueStats(ctx, Node1)
	require.NoError(t, err)
	require.Greater(t, q1, q0, "the dropped SYNs went through node-1's enforcer")
	enforcerLog, err := os.ReadFile(filepath.Join(l.kube.dir, netpolName+"-"+Node1+".log"))
	require.NoError(t, err)
	require.Contains(t, string(enforcerLog), `verdict="drop"`, "node-1's enforcer dropped no packet")
	require.True(t, strings.Contains(string(enforcerLog), `"Ingress NetworkPolicies"`) && strings.Contains(string(enforcerLog), "allowed=false"))
	e = explain(policy.VerdictPolicy)
	require.Len(t, e.Denials, 1)
	require.Equal(t, policy.Ingress, e.Denials[0].Direction)
	require.Equal(t, policy.Ref{Namespace: Namespace, Name: "default-deny"}, e.Denials[0].Blame())
	require.Equal(t, policy.Ref{Namespace: Namespace, Name: PodC}, e.Denials[0].Pod)

	// Allow pod-a, by a label of its own, on the named port "http".
	_, err = c.CoreV1().Pods(Namespace).Patch(ctx, PodA, types.MergePatchType, []byte(`{"metadata":{"labels":{"role":"client"}}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	http := intstr.FromString("http")
	allow := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-client"},
		Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &http}},
			}},
		},
	}
	_, err = nps.Create(ctx, allow, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Logf("allow enforced after %s", connects(true).Round(time.Millisecond))
	for range 6 {
		require.True(t, viaService(3*time.Second), "pod-a, allowed, did not reach the Service")
	}
	e = explain(policy.VerdictUnexplained)
	require.Equal(t, []policy.RuleRef{{Policy: policy.Ref{Namespace: Namespace, Name: "allow-client"}, Direction: policy.Ingress}}, e.AllowedBy)

	// An egress policy on the client is told apart from an ingress one.
	egress := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "client-no-egress"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		},
	}
	_, err = nps.Create(ctx, egress, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Logf("egress deny enforced after %s", connects(false).Round(time.Millisecond))
	e = explain(policy.VerdictPolicy)
	require.Len(t, e.Denials, 1)
	require.Equal(t, policy.Egress, e.Denials[0].Direction)
	require.Equal(t, policy.Ref{Namespace: Namespace, Name: "client-no-egress"}, e.Denials[0].Blame())
	require.Equal(t, policy.Ref{Namespace: Namespace, Name: PodA}, e.Denials[0].Pod)

	require.NoError(t, nps.Delete(ctx, egress.Name, metav1.DeleteOptions{}))
	connects(true)
	explain(policy.VerdictUnexplained)
}
