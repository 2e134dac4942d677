package labtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/layerscope/layerscope/internal/labk8s"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// TestKubectlLayerscopeCaptureInLabCluster installs the chart with the
// capture API behind basic auth and runs kubectl-layerscope capture --node
// node-2 from the root namespace with only the lab's kubeconfig (and the
// agents' credentials) while pod-a calls the Service: the pcap opens in
// tshark, every packet matches the filter, and there are packets.
func TestKubectlLayerscopeCaptureInLabCluster(t *testing.T) {
	testns.Tool{Name: "tshark"}.Path(t)
	bin := kubectlLayerscope(t)
	l := labk8s.KubeletLab(t, lab.KubeProxyModes[0], "p")
	kubeconfig, c := labk8s.Admin(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const user, pass = "ops", "capture-secret"
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: chartNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-config", Namespace: chartNamespace},
		StringData: map[string]string{"web-config.yml": fmt.Sprintf("basic_auth_users:\n  %s: %s\n", user, hash)}}
	if _, err := c.CoreV1().Secrets(chartNamespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labk8s.HelmInstall(t, l, "captureAPI.enabled=true", "webConfig.secretName=web-config", "rbac.operator.create=true",
		"rbac.operator.subjects[0].kind=User", "rbac.operator.subjects[0].apiGroup=rbac.authorization.k8s.io", "rbac.operator.subjects[0].name="+operatorUser)
	labk8s.WaitDaemonSet(t, c, 90*time.Second)

	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The operator as the admin impersonating them: the chart's roles do
	// not grant pods/portforward, so the admin's own rights carry the
	// forward here.
	captureDuringTraffic(ctx, t, l, bin, "--kubeconfig", kubeconfig, "--agent-namespace", chartNamespace,
		"--agent-user", user, "--agent-password-file", pwFile)

	// Without the agents' credentials, through the pod proxy: the agent
	// refuses the capture.
	_, errOut, code := clientRun(t, bin, kubeconfig, operatorUser, "capture", "--node", lab.Node2, "--duration", "1s", "-w", filepath.Join(t.TempDir(), "x.pcap"))
	if code == 0 || !strings.Contains(errOut, "401") {
		t.Errorf("capture without the agents' credentials: exit %d %q, want the agent's 401", code, errOut)
	}
}

// captureDuringTraffic runs kubectl-layerscope with args and then capture
// --node node-2 of pod-c's port 8080 for 4 s while pod-a calls the
// Service: the pcap opens in tshark, every packet matches the filter, and
// there are packets.
func captureDuringTraffic(ctx context.Context, t *testing.T, l *lab.Lab, bin string, args ...string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "node-2.pcap")
	cmd := exec.CommandContext(ctx, bin, append(args, "capture", "--node", lab.Node2, "--filter", "host 10.244.1.8 and tcp port 8080", "--duration", "4s", "-w", file)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "capturing on "+lab.Node2+": ") {
		_ = cmd.Process.Kill()
		var rest []string
		for sc.Scan() {
			rest = append(rest, sc.Text())
		}
		_ = cmd.Wait()
		t.Fatalf("capture did not start: %q %s", sc.Text(), strings.Join(rest, "\n"))
	}
	t.Log(sc.Text())
	rep, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{Count: 6})
	if err != nil {
		t.Fatal(err)
	}
	var rest []string
	for sc.Scan() {
		rest = append(rest, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("capture: %v\n%s", err, strings.Join(rest, "\n"))
	}
	summary := strings.Join(rest, "\n")
	t.Log(summary)
	if !strings.Contains(summary, "stopped by duration") {
		t.Errorf("summary %q: want a capture stopped by its duration", summary)
	}
	total, matching := testns.TsharkCount(t, file, ""), testns.TsharkCount(t, file, "ip.addr#1 == 10.244.1.8 && tcp.port#1 == 8080")
	if total == 0 || matching != total {
		t.Errorf("%d packets, %d matching; want all and more than 0 (%d requests reached pod-c)", total, matching, rep.Backends[lab.PodC])
	}
}

// TestKubectlLayerscopeCaptureKubeAuthInLabCluster installs the chart with
// the capture API behind Kubernetes authentication (captureAPI.kubernetesAuth)
// and the operator's capture permission bound to a ServiceAccount, and runs
// kubectl-layerscope capture from the root namespace with kubeconfigs
// holding only ServiceAccount tokens from the real API server: the
// operator's pcap opens in tshark; a user who may port-forward but lacks
// the capture permission gets the agent's forbidden naming it (exit 20);
// one who may not port-forward gets the client's; the admin, whose
// kubeconfig holds a client certificate, the agent's 401 explained
// (exit 1); a request without a
// token gets 401, with an invalid one 401; /metrics, the API and the
// probes answer as before, without credentials.
func TestKubectlLayerscopeCaptureKubeAuthInLabCluster(t *testing.T) {
	testns.Tool{Name: "tshark"}.Path(t)
	bin := kubectlLayerscope(t)
	l := labk8s.KubeletLab(t, lab.KubeProxyModes[0], "q")
	adminKC, c := labk8s.Admin(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const opsNS = "ops"
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: opsNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labk8s.HelmInstall(t, l, "captureAPI.enabled=true", "captureAPI.kubernetesAuth=true", "rbac.operator.create=true", "rbac.operator.capture=true",
		"rbac.operator.subjects[0].kind=ServiceAccount", "rbac.operator.subjects[0].name=operator", "rbac.operator.subjects[0].namespace="+opsNS)
	labk8s.WaitDaemonSet(t, c, 90*time.Second)

	// forwarder may list the agents and port-forward to them, not
	// capture; lister may only list them.
	role := func(name string, rules ...rbacv1.PolicyRule) {
		t.Helper()
		r := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: chartNamespace}, Rules: rules}
		if _, err := c.RbacV1().Roles(chartNamespace).Create(ctx, r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: chartNamespace},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: opsNS}}}
		if _, err := c.RbacV1().RoleBindings(chartNamespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	listPods := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}
	role("forwarder", listPods, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"create"}})
	role("lister", listPods)
	kubeconfigs := map[string]string{}
	for _, sa := range []string{"operator", "forwarder", "lister"} {
		kubeconfigs[sa] = tokenKubeconfig(ctx, t, c, adminKC, opsNS, sa)
	}

	captureDuringTraffic(ctx, t, l, bin, "--kubeconfig", kubeconfigs["operator"], "--agent-namespace", chartNamespace)

	run := func(kc string) (string, int) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, "--kubeconfig", kc, "--agent-namespace", chartNamespace,
			"capture", "--node", lab.Node2, "--duration", "1s", "-w", filepath.Join(t.TempDir(), "x.pcap"))
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out)), code
	}
	out, code := run(kubeconfigs["forwarder"])
	if code != 20 || !strings.Contains(out, "system:serviceaccount:ops:forwarder") ||
		!strings.Contains(out, `create on captures.layerscope.io "node-2" in namespace `+chartNamespace) {
		t.Errorf("capture as forwarder (pods/portforward, not captures): exit %d %q; want 20 and the agent's forbidden naming the permission", code, out)
	}
	t.Logf("as forwarder: %s", out)
	out, code = run(kubeconfigs["lister"])
	if code != 20 || !strings.Contains(out, "forbidden: you may not create pods/portforward") || !strings.Contains(out, "rbac.operator.capture=true") {
		t.Errorf("capture as lister (no pods/portforward): exit %d %q; want 20 and a forbidden naming pods/portforward", code, out)
	}
	t.Logf("as lister: %s", out)
	// The admin's kubeconfig authenticates with a client certificate: no
	// token to send, the agent's 401 says what it takes.
	out, code = run(adminKC)
	if code != 1 || !strings.Contains(out, "401") || !strings.Contains(out, "--token") {
		t.Errorf("capture with a client certificate: exit %d %q; want 1 and the agent's 401 explained", code, out)
	}
	t.Logf("with a client certificate: %s", out)

	// Straight to node-2's agent: no token, an invalid one; the rest of
	// its endpoints as before.
	proxy, err := url.Parse(labk8s.Proxy(t, l))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}, Timeout: 20 * time.Second}
	agent := labk8s.AgentURLs(l)[1]
	get := func(u, token string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, resp.Header, string(b)
	}
	code, hdr, body := get(agent+"/api/v1/capture?duration=1s", "")
	if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("capture without a token: %d %q %q, want 401 with a Bearer challenge", code, hdr.Get("WWW-Authenticate"), body)
	}
	if code, _, body = get(agent+"/api/v1/capture?duration=1s", "not-a-token"); code != http.StatusUnauthorized {
		t.Errorf("capture with an invalid token: %d %q, want 401", code, body)
	}
	if code, _, body = get(agent+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "layerscope_build_info") {
		t.Errorf("/metrics without credentials: %d, want 200 with the agent's metrics", code)
	}
	if code, _, body = get(agent+"/api/v1/status", ""); code != http.StatusOK || !strings.Contains(body, lab.Node2) {
		t.Errorf("/api/v1/status without credentials: %d %.200q, want 200", code, body)
	}
	health := strings.Replace(agent, fmt.Sprint(labk8s.MetricsPort), "9432", 1)
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _, body = get(health+p, ""); code != http.StatusOK {
			t.Errorf("%s on the health port: %d %q, want 200", p, code, body)
		}
	}
}

// tokenKubeconfig writes a kubeconfig of the lab's API server (its cluster
// entry from adminKC) whose only credential is a token of ServiceAccount
// ns/name, which it creates.
func tokenKubeconfig(ctx context.Context, t *testing.T, c kubernetes.Interface, adminKC, ns, name string) string {
	t.Helper()
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := clientcmd.LoadFromFile(adminKC)
	if err != nil {
		t.Fatal(err)
	}
	cluster := admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	kc := clientcmdapi.NewConfig()
	kc.Clusters["lab"] = cluster
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: name, Namespace: "default"}
	kc.CurrentContext = name
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
