package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The NetworkPolicy enforcer of a Kubernetes lab is
// sigs.k8s.io/kube-network-policies (built by .ci/kube-network-policies.sh),
// one per node namespace. It evaluates the first packet of each connection
// in user space, received through an nfqueue, against the NetworkPolicies,
// Namespaces and Pods of the API server, and accepts or drops it.
//
// It cannot queue packets by itself on these kernels: it writes its rules
// with the nftables "queue" statement, and CONFIG_NFT_QUEUE is not set
// (its batch fails with "No such file or directory" and is left out whole;
// it then opens its queue all the same). The lab writes the equivalent
// rules with the xtables NFQUEUE target through iptables-nft
// (CONFIG_NETFILTER_XT_TARGET_NFQUEUE, CONFIG_NFT_COMPAT): the first
// packet of a connection to or from the pod network, in the node's mangle
// POSTROUTING hook (before any SNAT, as the enforcer's own postrouting
// chain). The rules bypass the queue while the enforcer has not bound it,
// so that starting it never blackholes the lab.
const (
	// KubeNetworkPoliciesEnv names the enforcer binary when
	// StartNetworkPolicies is given none.
	KubeNetworkPoliciesEnv = "LAYERSCOPE_KUBE_NETWORK_POLICIES"
	// NetworkPolicyQueue is the nfqueue number the enforcer reads.
	NetworkPolicyQueue = 100
	// NetworkPolicyMetricsPort is the enforcer's metrics port on
	// 127.0.0.1 of each node.
	NetworkPolicyMetricsPort = 9080

	netpolName  = "kube-network-policies"
	netpolChain = "LAYERSCOPE-NETPOL"
)

// ErrNoEnforcer: StartNetworkPolicies has no enforcer binary to run.
var ErrNoEnforcer = errors.New("no NetworkPolicy enforcer binary")

// StartNetworkPolicies starts the NetworkPolicy enforcer bin (empty: the
// path in $LAYERSCOPE_KUBE_NETWORK_POLICIES) in every node of a Kubernetes
// lab, as the service account kube-system/kube-network-policies with the
// enforcer's RBAC, and queues the nodes' pod traffic to it. It returns once
// every enforcer has bound its queue. The enforcers stop with the lab.
func (l *Lab) StartNetworkPolicies(ctx context.Context, bin string) error {
	k := l.kube
	if k == nil {
		return ErrNoKubernetes
	}
	if bin == "" {
		bin = os.Getenv(KubeNetworkPoliciesEnv)
	}
	if bin == "" {
		return fmt.Errorf("%w (set $%s or --kube-network-policies; build it with .ci/kube-network-policies.sh)", ErrNoEnforcer, KubeNetworkPoliciesEnv)
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%w: %w", ErrNoEnforcer, err)
	}
	secrets, err := k.netpolServiceAccount(ctx)
	if err != nil {
		return err
	}
	for _, n := range l.nodes {
		// kube-network-policies only reads the in-cluster configuration:
		// give it one in a mount namespace of its own, whose /run holds
		// nothing but the service account's token and CA.
		script := `set -e
tok=$(cat "$1/token"); ca=$(cat "$1/ca.crt"); shift
mount -t tmpfs -o mode=0755 tmpfs /run
d=/run/secrets/kubernetes.io/serviceaccount
mkdir -p "$d"
printf '%s' "$tok" >"$d/token"
printf '%s\n' "$ca" >"$d/ca.crt"
exec "$@"`
		if err := k.start(netpolName+"-"+n.Name, n.NetNS, "/usr/bin/unshare",
			"--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", secrets,
			"/usr/bin/env", "KUBERNETES_SERVICE_HOST="+ControlPlaneIP.String(), "KUBERNETES_SERVICE_PORT="+strconv.Itoa(APIServerPort),
			bin, "--hostname-override="+n.Name, "--disable-nri", "--netfilter-bug-1766-fix=false",
			fmt.Sprintf("--nfqueue-id=%d", NetworkPolicyQueue),
			fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", NetworkPolicyMetricsPort), "--v=2"); err != nil {
			return err
		}
	}
	for _, n := range l.nodes {
		if err := k.poll(ctx, "the network policy enforcer of "+n.Name, func() error {
			bound, err := queueBound(ctx, n.NetNS, NetworkPolicyQueue)
			if err == nil && !bound {
				err = fmt.Errorf("nfqueue %d not bound", NetworkPolicyQueue)
			}
			return err
		}); err != nil {
			return err
		}
		if err := queueRules(ctx, n.NetNS); err != nil {
			return err
		}
	}
	l.log.Info("network policy enforcer up", "enforcer", bin)
	return nil
}

// netpolServiceAccount makes the enforcer's service account and RBAC (as
// kube-network-policies' own install manifest grants: list and watch pods,
// namespaces, nodes and networkpolicies), requests a token for it and
// writes the token and the cluster CA in a directory, returned.
func (k *kubeCluster) netpolServiceAccount(ctx context.Context) (string, error) {
	c := k.client
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: netpolName, Namespace: SystemNamespace}}
	if _, err := c.CoreV1().ServiceAccounts(SystemNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("service account %s: %w", netpolName, err)
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: netpolName},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "nodes"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"list", "watch"}},
		},
	}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("cluster role %s: %w", netpolName, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: netpolName},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: netpolName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: netpolName, Namespace: SystemNamespace}},
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("cluster role binding %s: %w", netpolName, err)
	}
	ttl := int64((48 * time.Hour).Seconds())
	tr, err := c.CoreV1().ServiceAccounts(SystemNamespace).CreateToken(ctx, netpolName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token of %s: %w", netpolName, err)
	}
	dir := filepath.Join(k.dir, netpolName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("network policy enforcer: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tr.Status.Token), 0o600); err != nil {
		return "", fmt.Errorf("network policy enforcer: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), k.pki.caPEM, 0o644); err != nil {
		return "", fmt.Errorf("network policy enforcer: %w", err)
	}
	return dir, nil
}

// queueRules queues the first packet of every connection to or from the
// pod network to the enforcer, in a chain of the node's mangle table.
func queueRules(ctx context.Context, netns string) error {
	q := []string{"-j", "NFQUEUE", "--queue-num", strconv.Itoa(NetworkPolicyQueue), "--queue-bypass"}
	rules := [][]string{
		{"-N", netpolChain},
		{"-A", netpolChain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"},
		append([]string{"-A", netpolChain, "-s", ClusterCIDR.String()}, q...),
		append([]string{"-A", netpolChain, "-d", ClusterCIDR.String()}, q...),
		{"-A", "POSTROUTING", "-j", netpolChain},
	}
	for _, r := range rules {
		if _, err := RunInNetNS(ctx, netns, nil, "iptables-nft", append([]string{"-w", "-t", "mangle"}, r...)...); err != nil {
			return fmt.Errorf("network policy queue rules: %w", err)
		}
	}
	return nil
}

// NetworkPolicyQueueStats returns, for a node, how many packets its
// enforcer's nfqueue has received (the queue's id sequence) and how many
// the kernel dropped because the queue was full or the enforcer late
// (queue_dropped + user_dropped).
func (l *Lab) NetworkPolicyQueueStats(ctx context.Context, node string) (queued, dropped uint64, err error) {
	n, ok := l.Node(node)
	if !ok {
		return 0, 0, fmt.Errorf("%w: no node %q", ErrNotFound, node)
	}
	f, err := readQueueStats(ctx, n.NetNS, NetworkPolicyQueue)
	if err != nil {
		return 0, 0, err
	}
	if f == nil {
		return 0, 0, fmt.Errorf("nfqueue %d not bound in %s", NetworkPolicyQueue, node)
	}
	return f[7], f[5] + f[6], nil
}

func queueBound(ctx context.Context, netns string, queue int) (bool, error) {
	f, err := readQueueStats(ctx, netns, queue)
	return f != nil, err
}

// readQueueStats reads the line of queue from the namespace's
// /proc/net/netfilter/nfnetlink_queue: queue number, peer port id, queue
// total, copy mode, copy range, queue dropped, user dropped, id sequence.
// Nil when the queue is not bound.
func readQueueStats(ctx context.Context, netns string, queue int) ([]uint64, error) {
	out, err := RunInNetNS(ctx, netns, nil, "cat", "/proc/net/netfilter/nfnetlink_queue")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		var f [9]uint64
		if _, err := fmt.Sscan(line, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8]); err != nil {
			continue
		}
		if f[0] == uint64(queue) {
			return f[:], nil
		}
	}
	return nil, nil
}
