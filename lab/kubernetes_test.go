package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerscope/layerscope/internal/testns"
)

// newKubeLab builds a lab with the real control plane and kube-proxy in
// the given mode, removed when the test ends.
func newKubeLab(t *testing.T, mode KubeProxyMode) *Lab {
	t.Helper()
	bin := testns.K8sBin(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	prefix := "k" + hex.EncodeToString(b[:]) + "-"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	l, err := New(ctx, &Config{Prefix: prefix, StateDir: t.TempDir(), Kubernetes: true, KubeProxyMode: mode, K8sBin: bin})
	require.NoError(t, err)
	t.Logf("kubernetes lab (%s) up in %s", mode, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		require.NoError(t, l.Close())
		requireGone(t, prefix)
		_, err := os.Stat("/run/netns/" + ControlPlaneNetNS(prefix))
		require.ErrorIs(t, err, os.ErrNotExist, "control plane namespace left behind")
	})
	return l
}

func TestKubernetesConfigErrors(t *testing.T) {
	_, err := New(context.Background(), &Config{Prefix: "kx-", Kubernetes: true, KubeProxyMode: "ipvs", K8sBin: t.TempDir()})
	require.ErrorIs(t, err, ErrBadKubeProxyMode)
	_, err = New(context.Background(), &Config{Prefix: "kx-", Kubernetes: true, K8sBin: t.TempDir()})
	require.ErrorIs(t, err, ErrNoK8sBin)
	l := &Lab{}
	_, err = l.KubeClient()
	require.ErrorIs(t, err, ErrNoKubernetes)
	require.ErrorIs(t, l.SetBackends(context.Background()), ErrNoKubernetes)
}

// TestDNATTargetsOfBothModes reads the DNAT targets of the Service from
// rules as each kube-proxy mode writes them.
func TestDNATTargetsOfBothModes(t *testing.T) {
	l := &Lab{}
	l.nodes, l.pods = topology("x-")
	want := []netip.Addr{netip.MustParseAddr("10.244.0.5"), netip.MustParseAddr("10.244.0.8"), netip.MustParseAddr("10.244.1.8")}
	got := iptablesDNATTargets(l.KubeProxyRules(), ServiceAddr)
	slices.SortFunc(got, netip.Addr.Compare)
	require.Equal(t, want, got)
	table := `table ip kube-proxy {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.96.0.42 . tcp . 8080 : goto service-ULMVA6XW-default/my-service/tcp/http,
			     10.96.0.42 . udp . 8080 : goto service-AAAAAAAA-default/my-service/udp/udp,
			     10.96.0.1 . tcp . 443 : goto service-2QRHZV4L-default/kubernetes/tcp/https }
	}
	chain service-AAAAAAAA-default/my-service/udp/udp {
		meta l4proto udp dnat ip to numgen random mod 1 map { 0 : 10.244.9.9 . 8080 }
	}
	chain service-ULMVA6XW-default/my-service/tcp/http {
		ip daddr 10.96.0.42 tcp dport 8080 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		meta l4proto tcp dnat ip to numgen random mod 3 map { 0 : 10.244.0.5 . 8080, 1 : 10.244.0.8 . 8080, 2 : 10.244.1.8 . 8080 }
	}
}
`
	require.Equal(t, want, nftDNATTargets(table, ServiceAddr))
	require.Equal(t, map[string]int{
		"service-AAAAAAAA-default/my-service/udp/udp":  1,
		"service-ULMVA6XW-default/my-service/tcp/http": 2,
	}, nftChains(table))
	require.Empty(t, nftDNATTargets("table ip kube-proxy {\n}\n", ServiceAddr))
	one := `table ip kube-proxy {
	map service-ips {
		elements = { 10.96.0.42 . tcp . 8080 : goto service-6NGMIUMF-default/my-service/tcp/http }
	}
	chain service-6NGMIUMF-default/my-service/tcp/http {
		meta l4proto tcp dnat to 10.244.1.8:8080
	}
}
`
	require.Equal(t, []netip.Addr{netip.MustParseAddr("10.244.1.8")}, nftDNATTargets(one, ServiceAddr), "one endpoint")
}

// TestKubernetesLab runs the Service checks against the real kube-proxy in
// both modes: the API objects, per-backend DNAT equal to the backend that
// answered, NodePorts, a dead backend still in the endpoints, a pod deleted
// through the API (its conntrack entries stay: stale DNAT; no new
// connection reaches it) and a Service left without endpoints (refused).
func TestKubernetesLab(t *testing.T) {
	for _, mode := range KubeProxyModes {
		t.Run(string(mode), func(t *testing.T) {
			l := newKubeLab(t, mode)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			got, ok := l.Kubernetes()
			require.True(t, ok)
			require.Equal(t, mode, got)

			c, err := l.KubeClient()
			require.NoError(t, err)
			nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			require.NoError(t, err)
			require.Len(t, nodes.Items, 2)
			pods, err := c.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{})
			require.NoError(t, err)
			require.Len(t, pods.Items, 3)
			eps, err := l.Endpoints(ctx)
			require.NoError(t, err)
			require.ElementsMatch(t, []string{PodA, PodB, PodC}, eps)
			if mode == KubeProxyNFTables {
				_, err := RunInNetNS(ctx, l.NetNS(Node1), nil, "nft", "list", "table", "ip", "kube-proxy")
				require.NoError(t, err, "kube-proxy's nftables table")
			} else {
				out, err := RunInNetNS(ctx, l.NetNS(Node1), nil, "iptables-save", "-t", "nat")
				require.NoError(t, err)
				require.Contains(t, string(out), ServiceChain(), "kube-proxy's chain names are the lab's")
			}

			// Service traffic: every request answered by the backend the
			// node's conntrack DNATed it to.
			r, err := l.Traffic(ctx, ScenarioService, TrafficOptions{Count: 8})
			require.NoError(t, err)
			require.Equal(t, 5*8, r.Attempted)
			require.Zero(t, r.Failed, "%v", r)
			for _, q := range r.Requests {
				require.Equal(t, q.Backend, q.DNATBackend, "%+v", q)
			}
			require.Len(t, r.Backends, 3, "every backend reached: %v", r.Backends)

			// NodePort on both nodes, from node-2.
			for _, n := range l.Nodes() {
				q := l.request(ctx, Node2, netip.AddrPortFrom(n.IP, NodePort), "/", nil, 2*time.Second)
				require.True(t, q.OK(), "node-2 → %s:%d: %s", n.IP, NodePort, q.Err)
			}

			// A dead backend still listed: only requests DNATed to it fail.
			r, err = l.Traffic(ctx, ScenarioDeadBackend, TrafficOptions{Count: 10})
			require.NoError(t, err)
			require.NotZero(t, r.Failed)
			for _, q := range r.Requests {
				if !q.OK() {
					require.Equal(t, PodC, q.DNATBackend, "%+v", q)
					require.True(t, q.Refused, "%+v", q)
				}
			}

			// pod-c deleted through the API: kube-proxy drops it, the
			// connections DNATed to it stay in conntrack (stale), new ones
			// never reach it.
			before := dnatEntriesTo(t, l, PodC)
			require.NotZero(t, before, "earlier connections were DNATed to pod-c")
			require.NoError(t, l.DeletePod(ctx, PodC))
			require.NoError(t, l.WaitKubeProxy(ctx, PodA, PodB))
			require.NotZero(t, dnatEntriesTo(t, l, PodC), "stale DNAT entries to pod-c")
			r, err = l.Traffic(ctx, ScenarioService, TrafficOptions{Count: 6})
			require.NoError(t, err)
			require.Zero(t, r.Failed, "%v", r)
			require.Zero(t, r.Backends[PodC], "pod-c reached after its deletion: %v", r.Backends)
			require.NoError(t, l.RestorePod(ctx, PodC))
			require.NoError(t, l.WaitKubeProxy(ctx, PodA, PodB, PodC))

			// A Service without endpoints rejects connections: kube-proxy
			// answers the SYN with an ICMP error (the kernel reports
			// ENETUNREACH or ECONNREFUSED).
			require.NoError(t, l.SetBackends(ctx))
			require.NoError(t, l.WaitKubeProxy(ctx))
			q := l.request(ctx, PodA, ServiceAddr, "/", nil, 2*time.Second)
			require.False(t, q.OK(), "no endpoints: %+v", q)
			require.True(t, q.Refused || strings.Contains(q.Err, "unreachable"), "no endpoints: rejected at once: %+v", q)
			require.Less(t, q.Duration, time.Second, "no endpoints: rejected at once: %+v", q)
			require.NoError(t, l.SetBackends(ctx, PodA, PodB, PodC))
			require.NoError(t, l.WaitKubeProxy(ctx, PodA, PodB, PodC))
			q = l.request(ctx, PodA, ServiceAddr, "/", nil, 2*time.Second)
			require.True(t, q.OK(), "endpoints back: %+v", q)
		})
	}
}

// dnatEntriesTo counts the conntrack entries of both nodes whose original
// destination is the ClusterIP or a NodePort and whose reply comes from the
// backend (read with conntrack -L, never written).
func dnatEntriesTo(t *testing.T, l *Lab, backend string) int {
	t.Helper()
	p, _ := l.Pod(backend)
	n := 0
	for _, node := range l.Nodes() {
		for _, e := range conntrackL(t, node.NetNS) {
			if e.replySrc.Addr() == p.IP && (e.origDst == ServiceAddr || e.origDst.Port() == NodePort) {
				n++
			}
		}
	}
	return n
}

// TestKubernetesComponentFailure builds a Kubernetes lab whose components
// exit at once: New names the component, and nothing is left behind (no
// process, no namespace).
func TestKubernetesComponentFailure(t *testing.T) {
	testns.RequireRoot(t)
	bin := t.TempDir()
	for _, b := range kubeBinaries {
		require.NoError(t, os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\necho \"$0: refusing to start\" >&2\nexit 3\n"), 0o755))
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	prefix := "f" + hex.EncodeToString(b[:]) + "-"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := New(ctx, &Config{Prefix: prefix, StateDir: t.TempDir(), Kubernetes: true, K8sBin: bin})
	require.ErrorIs(t, err, ErrKubeComponent)
	t.Log(err)
	require.Contains(t, err.Error(), "refusing to start")
	requireGone(t, prefix)
	_, err = os.Stat("/run/netns/" + ControlPlaneNetNS(prefix))
	require.ErrorIs(t, err, os.ErrNotExist, "control plane namespace left behind")
}
