// Package labk8s holds what the tests that run the agent as a DaemonSet
// in the Kubernetes lab share: the lab with kubelets, installing the Helm
// chart as a user would, waiting for its DaemonSet, and a proxy through
// which processes on the host reach the agents at their nodes' addresses
// without any route out of the lab.
package labk8s

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// The chart's release as the tests install it.
const (
	Namespace = "layerscope"
	Release   = "layerscope"
	// MetricsPort is the agents' metrics and API port on their nodes.
	MetricsPort = 9431
)

// Root is the module's directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// KubeletLab builds a Kubernetes lab in kube-proxy mode whose nodes run
// containerd and a kubelet, with the agent's image imported, and removes
// it when the test ends. prefix is the first letter of its namespaces'
// names. Without root the test is skipped; without containerd it fails
// unless LAYERSCOPE_NO_KUBERNETES=1.
func KubeletLab(t *testing.T, mode lab.KubeProxyMode, prefix string) *lab.Lab {
	t.Helper()
	k8sBin := testns.K8sBin(t)
	if _, err := exec.LookPath("containerd"); err != nil {
		if os.Getenv("LAYERSCOPE_NO_KUBERNETES") == "1" {
			t.Skip("containerd not installed and LAYERSCOPE_NO_KUBERNETES=1")
		}
		t.Fatal("containerd not installed: run .ci/packages.sh (or set LAYERSCOPE_NO_KUBERNETES=1 to skip)")
	}
	return newLab(t, &lab.Config{Kubernetes: true, KubeProxyMode: mode, K8sBin: k8sBin, Kubelets: true,
		LayerscopeBinary: testns.LayerscopeBinary(t)}, prefix, "kubernetes lab with kubelets")
}

// APILab builds a Kubernetes lab without kubelets (its real control plane
// and kube-proxies, the pods as the lab's namespaces) and removes it when
// the test ends; prefix is as KubeletLab's. Without root the test is
// skipped.
func APILab(t *testing.T, mode lab.KubeProxyMode, prefix string) *lab.Lab {
	t.Helper()
	return newLab(t, &lab.Config{Kubernetes: true, KubeProxyMode: mode, K8sBin: testns.K8sBin(t)}, prefix, "kubernetes lab")
}

// newLab builds the lab of cfg under a random prefix starting with prefix.
func newLab(t *testing.T, cfg *lab.Config, prefix, what string) *lab.Lab {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	cfg.Prefix, cfg.StateDir = prefix+hex.EncodeToString(b[:])+"-", t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := lab.New(ctx, cfg)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s (%s) up in %v", what, cfg.KubeProxyMode, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	return l
}

// Admin returns the path of the lab cluster's admin kubeconfig and a
// client with its credentials.
func Admin(t *testing.T, l *lab.Lab) (kubeconfig string, c kubernetes.Interface) {
	t.Helper()
	kubeconfig, err := l.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	if c, err = l.KubeClient(); err != nil {
		t.Fatal(err)
	}
	return kubeconfig, c
}

// HelmInstall installs deploy/helm/layerscope into the lab's cluster as a
// user would, with the lab's image and the extra --set values.
func HelmInstall(t *testing.T, l *lab.Lab, set ...string) {
	t.Helper()
	kubeconfig, err := l.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	helm := testns.Tool{Name: "helm", Version: "v3.22.0", Env: "LAYERSCOPE_HELM", Script: ".ci/k8stools.sh", Skip: "LAYERSCOPE_NO_K8STOOLS"}.Path(t)
	home := t.TempDir()
	args := []string{"install", Release, filepath.Join(Root(), "deploy", "helm", "layerscope"), "--namespace", Namespace, "--create-namespace",
		"--kubeconfig", kubeconfig,
		"--set", "image.registry=layerscope.local", "--set", "image.repository=layerscope", "--set", "image.tag=lab", "--set", "image.pullPolicy=Never"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// WaitDaemonSet waits until the DaemonSet Release runs a Ready agent on
// both nodes, and fails the test with the pods' states if it does not
// within timeout.
func WaitDaemonSet(t *testing.T, c kubernetes.Interface, timeout time.Duration) *appsv1.DaemonSet {
	t.Helper()
	return WaitDaemonSetNamed(t, c, Release, timeout)
}

// WaitDaemonSetNamed is WaitDaemonSet for the DaemonSet name of Namespace.
func WaitDaemonSetNamed(t *testing.T, c kubernetes.Interface, name string, timeout time.Duration) *appsv1.DaemonSet {
	t.Helper()
	var ds *appsv1.DaemonSet
	var err error
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		ds, err = c.AppsV1().DaemonSets(Namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && ds.Status.DesiredNumberScheduled == 2 && ds.Status.NumberReady == 2 && ds.Status.UpdatedNumberScheduled == 2 {
			return ds
		}
		if time.Now().After(deadline) {
			break
		}
	}
	pods, _ := c.CoreV1().Pods(Namespace).List(context.Background(), metav1.ListOptions{})
	var st []string
	if pods != nil {
		for _, p := range pods.Items {
			st = append(st, fmt.Sprintf("%s on %s: %s %+v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.ContainerStatuses))
		}
	}
	var status appsv1.DaemonSetStatus
	if ds != nil {
		status = ds.Status
	}
	t.Fatalf("the DaemonSet is not Ready on both nodes within %v (%v; status %+v)\npods: %s", timeout, err, status, strings.Join(st, "\n"))
	return nil
}

// Proxy serves an HTTP proxy on the host's loopback until the test ends,
// through which Prometheus or a layerscope client reaches the in-pod
// agents at their nodes' addresses: it dials from the control plane's
// namespace (which has no route out of the lab) and refuses any host but
// the lab's nodes. It returns the proxy's URL.
func Proxy(t *testing.T, l *lab.Lab) string {
	t.Helper()
	rc, err := l.KubeRESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, n := range l.Nodes() {
		nodes[n.IP.String()] = true
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || !nodes[host] {
			return nil, fmt.Errorf("%s is not a lab node", addr)
		}
		return rc.Dial(ctx, network, addr)
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Host == "" {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		out := r.Clone(r.Context())
		out.RequestURI = ""
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		maps.Copy(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
			if err == io.EOF || err != nil {
				return
			}
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return srv.URL
}

// AgentURLs are the in-pod agents' API URLs, node-1 first.
func AgentURLs(l *lab.Lab) []string {
	var out []string
	for _, n := range l.Nodes() {
		out = append(out, fmt.Sprintf("http://%s", net.JoinHostPort(n.IP.String(), fmt.Sprint(MetricsPort))))
	}
	return out
}
