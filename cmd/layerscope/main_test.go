package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "layerscope-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// world-readable: one test runs it as an unprivileged user
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "layerscope")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build layerscope: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestAgentCommandLifecycle runs the agent binary on a lab node: it must
// answer /healthz and /metrics (with the node's interfaces captured) and
// exit 0 on SIGTERM.
func TestAgentCommandLifecycle(t *testing.T) {
	testns.RequireRoot(t)
	l, err := lab.New(context.Background(), &lab.Config{Prefix: fmt.Sprintf("c%d-", os.Getpid()%100000)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	ns := l.NetNS(lab.Node1)
	addr := freeAddr(t)
	var stderr bytes.Buffer
	cmd := exec.Command(binary, "agent", "--netns", ns, "--metrics-addr", addr)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never answered: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// pod-a, pod-b and the DNS pod, vxlan0 and eth0, once ready.
	wants := []string{`layerscope_agent_capture_attached{role="pod"} 3`, `layerscope_agent_capture_attached{role="overlay"} 1`,
		`layerscope_agent_capture_attached{role="uplink"} 1`, "layerscope_agent_ready 1"}
	var body []byte
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("/metrics: %v %v", err, resp)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		missing := 0
		for _, w := range wants {
			if !strings.Contains(string(body), w) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks some of %q:\n%s", wants, body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("agent exited with %v after SIGTERM\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("agent did not exit within 10s of SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "agent stopped") {
		t.Errorf("no clean-stop log line:\n%s", stderr.String())
	}
}

func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return 0, string(out)
}

func TestAgentCommandErrors(t *testing.T) {
	badMeta := filepath.Join(t.TempDir(), "meta.yaml")
	if err := os.WriteFile(badMeta, []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  nodeNmae: n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown namespace", []string{binary, "agent", "--netns", "layerscope-no-such-ns", "--metrics-addr", "127.0.0.1:0"}, []string{"--netns", "layerscope-no-such-ns"}},
		{"bad address", []string{binary, "agent", "--metrics-addr", "nonsense"}, []string{"--metrics-addr"}},
		{"unknown flag", []string{binary, "agent", "--no-such-flag"}, []string{"--no-such-flag"}},
		{"bad log level", []string{binary, "--log-level", "loud", "version"}, []string{"--log-level"}},
		{"bad metadata mode", []string{binary, "agent", "--metrics-addr", "127.0.0.1:0", "--k8s-metadata", "bogus"}, []string{"--k8s-metadata", "bogus"}},
		{"missing metadata file", []string{binary, "agent", "--metrics-addr", "127.0.0.1:0", "--no-capture", "--no-conntrack", "--k8s-metadata-file", "/nonexistent/meta.yaml"}, []string{"--k8s-metadata-file", "/nonexistent/meta.yaml"}},
		{"metadata file with an unknown field", []string{binary, "agent", "--metrics-addr", "127.0.0.1:0", "--no-capture", "--no-conntrack", "--k8s-metadata-file", badMeta}, []string{"--k8s-metadata-file", badMeta, "nodeNmae"}},
		{"missing kubeconfig", []string{binary, "agent", "--metrics-addr", "127.0.0.1:0", "--no-capture", "--no-conntrack", "--k8s-metadata", "api", "--kubeconfig", "/nonexistent/kubeconfig"}, []string{"--kubeconfig", "/nonexistent/kubeconfig"}},
		{"negative history", []string{binary, "agent", "--metrics-addr", "127.0.0.1:0", "--no-capture", "--no-conntrack", "--api-history-size", "-1"}, []string{"--api-history-size"}},
		{"negative capture cap", []string{binary, "agent", "--metrics-addr", "127.0.0.1:0", "--no-capture", "--no-conntrack", "--capture-api-max-packets", "-5"}, []string{"--capture-api-max-packets"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out := run(t, tt.args...)
			if code == 0 {
				t.Fatalf("exit 0, want failure; output:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestAgentWithoutCapabilities runs the agent as an unprivileged user and
// expects it to name the capabilities it lacks.
func TestAgentWithoutCapabilities(t *testing.T) {
	testns.RequireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) not found: %v", err)
	}
	code, out := run(t, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
		binary, "agent", "--metrics-addr", "127.0.0.1:0")
	if code == 0 {
		t.Fatalf("unprivileged agent exited 0:\n%s", out)
	}
	for _, w := range []string{"CAP_NET_RAW", "CAP_NET_ADMIN"} {
		if !strings.Contains(out, w) {
			t.Errorf("error does not name %s:\n%s", w, out)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out := run(t, binary, "version")
	if code != 0 || !strings.HasPrefix(out, "layerscope ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

// TestDemoOneRound runs the README's first command for one round of
// scenarios on its own lab prefix and ports, and checks that it prints the
// scenarios' ground truth and each node agent's summary, then removes the lab.
func TestDemoOneRound(t *testing.T) {
	testns.RequireRoot(t)
	prefix := fmt.Sprintf("dm%d-", os.Getpid()%10000)
	base := freePortPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "demo", "--prefix", prefix, "--base-port", fmt.Sprint(base),
		"--rounds", "1", "--interval", "1h", "--scenarios", "service,dns,http")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"scenario service", "scenario dns", "rcodes map[NOERROR:5 NXDOMAIN:5 SERVFAIL:5]",
		"node-1:", "node-2:", "L2 ", "L7 ", "removing the lab",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat("/run/netns/" + prefix + "node-1"); err == nil {
		t.Errorf("lab namespace %snode-1 left behind", prefix)
	}
}

// freePortPair returns a port p such that p and p+1 were free.
func freePortPair(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l1.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l1.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

// TestCredentialsNeverPrinted: a password in an --agent URL is used, never
// shown, whatever the command and output format, also when the agent
// cannot be reached.
func TestCredentialsNeverPrinted(t *testing.T) {
	const secret = "s3cret-pw"
	u := "http://operator:" + secret + "@" + freeAddr(t)
	for _, args := range [][]string{
		{"status", "--agent", u},
		{"observe", "--agent", u},
		{"diagnose", "--agent", u + "," + u, "10.244.0.5", "10.96.0.42:8080"},
		{"diagnose", "--agent", u, "-o", "json", "10.244.0.5", "10.96.0.42:8080"},
		{"capture", "--agent", u, "--duration", "1s", "-w", filepath.Join(t.TempDir(), "x.pcap")},
		{"status", "--agent", "ftp://operator:" + secret + "@host"},
	} {
		code, out := run(t, append([]string{binary}, args...)...)
		if code == 0 {
			t.Errorf("%v: exit 0 against no agent", args[0])
		}
		if strings.Contains(out, secret) {
			t.Errorf("%s %v printed the password:\n%s", args[0], args[1:2], out)
		}
		if !strings.Contains(out, "127.0.0.1") && !strings.Contains(out, "--agent") {
			t.Errorf("%s: output names neither the agent nor the flag:\n%s", args[0], out)
		}
	}
}

// TestRunBounded: once its context is done, runBounded waits for run to
// return, and no longer than its bound for a run that does not.
func TestRunBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := runBounded(ctx, func(ctx context.Context) error { <-ctx.Done(); return nil }, time.Minute); err != nil {
		t.Errorf("a run that stops: %v", err)
	}
	stuck := make(chan struct{})
	defer close(stuck)
	start := time.Now()
	err := runBounded(ctx, func(context.Context) error { <-stuck; return nil }, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not stop within 100ms") {
		t.Errorf("a stuck run: %v, want the bound's error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a stuck run returned after %v, want about 100ms", took)
	}
	running, stop := context.WithCancel(context.Background())
	defer stop()
	if err := runBounded(running, func(context.Context) error { return io.EOF }, time.Minute); err != io.EOF {
		t.Errorf("a run that fails before the signal: %v, want its error", err)
	}
}
