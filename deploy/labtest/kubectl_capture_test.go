package labtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	file := filepath.Join(t.TempDir(), "node-2.pcap")
	// The operator as the admin impersonating them: the chart's roles do
	// not grant pods/portforward, so the admin's own rights carry the
	// forward here.
	cmd := exec.CommandContext(ctx, bin, "--kubeconfig", kubeconfig, "--agent-namespace", chartNamespace,
		"--agent-user", user, "--agent-password-file", pwFile,
		"capture", "--node", lab.Node2, "--filter", "host 10.244.1.8 and tcp port 8080", "--duration", "4s", "-w", file)
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

	// Without the agents' credentials, through the pod proxy: the agent
	// refuses the capture.
	_, errOut, code := clientRun(t, bin, kubeconfig, operatorUser, "capture", "--node", lab.Node2, "--duration", "1s", "-w", filepath.Join(t.TempDir(), "x.pcap"))
	if code == 0 || !strings.Contains(errOut, "401") {
		t.Errorf("capture without the agents' credentials: exit %d %q, want the agent's 401", code, errOut)
	}
}
