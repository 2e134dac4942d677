package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerscope/layerscope/internal/testns"
)

// newKubeletLab builds a Kubernetes lab whose nodes run containerd and a
// kubelet.
func newKubeletLab(t *testing.T, mode KubeProxyMode) *Lab {
	t.Helper()
	bin := testns.K8sBin(t)
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Skip("containerd not installed (.ci/packages.sh installs it)")
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	prefix := "q" + hex.EncodeToString(b[:]) + "-"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := New(ctx, &Config{Prefix: prefix, StateDir: t.TempDir(), Kubernetes: true, KubeProxyMode: mode, K8sBin: bin,
		Kubelets: true, LayerscopeBinary: testns.LayerscopeBinary(t)})
	require.NoError(t, err)
	t.Logf("kubernetes lab with kubelets (%s) up in %s", mode, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		require.NoError(t, l.Close())
		requireGone(t, prefix)
		for _, n := range l.nodes {
			for _, h := range []string{"pids", "memory", "unified"} {
				_, err := os.Stat("/sys/fs/cgroup/" + h + "/layerscope-lab-" + prefix + n.Name)
				require.ErrorIs(t, err, os.ErrNotExist, "cgroup of %s left behind", n.Name)
			}
			_, err := os.Stat("/run/layerscope/kubelet-" + prefix + n.Name)
			require.ErrorIs(t, err, os.ErrNotExist, "containerd's directory of %s left behind", n.Name)
		}
	})
	return l
}

// TestKubeletsRunTheLab: the kubelets register the nodes and run the
// lab's pods, which get the lab's addresses; a pod deleted through the
// API leaves the Service's endpoints and comes back.
func TestKubeletsRunTheLab(t *testing.T) {
	l := newKubeletLab(t, KubeProxyIPTables)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := l.KubeClient()
	require.NoError(t, err)
	for _, n := range l.Nodes() {
		node, err := c.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, "v1.37.2", node.Status.NodeInfo.KubeletVersion, "node %s not registered by its kubelet", n.Name)
		require.Contains(t, node.Status.NodeInfo.ContainerRuntimeVersion, "containerd://")
		require.True(t, nodeReady(node))
	}
	for _, p := range l.Pods() {
		ns := Namespace
		if p.Name == PodDNS {
			ns = SystemNamespace
		}
		pod, err := c.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, corev1.PodRunning, pod.Status.Phase, "pod %s", p.Name)
		require.Equal(t, p.IP.String(), pod.Status.PodIP, "pod %s's address as its kubelet reports it", p.Name)
		require.Len(t, pod.Status.ContainerStatuses, 1)
		require.NotNil(t, pod.Status.ContainerStatuses[0].State.Running, "pod %s's container", p.Name)
		require.Contains(t, pod.Status.ContainerStatuses[0].ContainerID, "containerd://")
	}
	eps, err := l.Endpoints(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{PodA, PodB, PodC}, eps)

	require.NoError(t, l.DeletePod(ctx, PodB))
	require.NoError(t, l.WaitKubeProxy(ctx, PodA, PodC))
	require.NoError(t, l.RestorePod(ctx, PodB))
	require.NoError(t, l.WaitKubeProxy(ctx, PodA, PodB, PodC))
}

// TestKubeletsConfigErrors: what Config.Kubelets needs is checked before
// anything is built, with errors that name what is wrong.
func TestKubeletsConfigErrors(t *testing.T) {
	_, err := New(context.Background(), &Config{Prefix: "kx-", Kubelets: true})
	require.ErrorIs(t, err, ErrNoKubelet)
	require.ErrorContains(t, err, "Config.Kubernetes")
	dynamic := filepath.Join(t.TempDir(), "dynamic")
	cmd := exec.Command("go", "build", "-o", dynamic, "./testdata/dynamic")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build a dynamic binary: %v %s", err, out)
	}
	err = checkStatic(dynamic)
	require.ErrorIs(t, err, ErrNoKubelet)
	require.ErrorContains(t, err, "CGO_ENABLED=0")
	require.NoError(t, checkStatic(testns.LayerscopeBinary(t)))
}
