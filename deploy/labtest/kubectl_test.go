package labtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/diagnose"
	"github.com/layerscope/layerscope/internal/fleet"
	"github.com/layerscope/layerscope/internal/labk8s"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// operatorUser is bound to the chart's operator roles; viewerUser may only
// list the agents' pods, not use the pod proxy.
const (
	operatorUser = "ops@example.test"
	viewerUser   = "viewer@example.test"
	// forwarderUser may port-forward to the agents' pods, not proxy.
	forwarderUser = "forwarder@example.test"
)

// kubectlLayerscope builds the operator's client.
func kubectlLayerscope(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kubectl-layerscope")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/layerscope/layerscope/cmd/kubectl-layerscope")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kubectl-layerscope: %v\n%s", err, out)
	}
	return bin
}

// clientRun runs the client as user with only the lab's kubeconfig (and
// kubectl's --as, the admin impersonating user) and returns its stdout,
// stderr and exit code.
func clientRun(t *testing.T, bin, kubeconfig, user string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig, "--as", user, "--agent-namespace", chartNamespace}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "NO_COLOR=1"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// TestKubectlLayerscopeInLabCluster runs kubectl-layerscope from the root
// namespace with only the lab's kubeconfig against the in-pod agents of
// the lab's real cluster: it finds them through the API and reaches them
// through the API server's pod proxy, as an operator bound to the chart's
// operator roles; its diagnoses (pod/pod-a → svc/my-service healthy and
// with a dead backend, pod/pod-a → a wrong DNS name, pod/pod-b → pod/pod-c
// over a path with a smaller MTU) match the node-level command's (the
// same verdict, summary, evidence and hops, read from the agents
// directly); a user without get on pods/proxy is refused naming it.
func TestKubectlLayerscopeInLabCluster(t *testing.T) {
	mode := lab.KubeProxyModes[0]
	bin := kubectlLayerscope(t)
	l := labk8s.KubeletLab(t, mode, "o")
	kubeconfig, c := labk8s.Admin(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	labk8s.HelmInstall(t, l, "rbac.operator.create=true", "rbac.operator.subjects[0].kind=User",
		"rbac.operator.subjects[0].apiGroup=rbac.authorization.k8s.io", "rbac.operator.subjects[0].name="+operatorUser)
	labk8s.WaitDaemonSet(t, c, 90*time.Second)

	// A viewer may list the agents' pods but not proxy to them.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "viewer", Namespace: chartNamespace},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}}}
	if _, err := c.RbacV1().Roles(chartNamespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "viewer", Namespace: chartNamespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "viewer"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: viewerUser}}}
	if _, err := c.RbacV1().RoleBindings(chartNamespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A forwarder may port-forward to the agents, not use the pod proxy.
	fwRole := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "forwarder", Namespace: chartNamespace},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"create", "get"}}}}
	if _, err := c.RbacV1().Roles(chartNamespace).Create(ctx, fwRole, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fwb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "forwarder", Namespace: chartNamespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "forwarder"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: forwarderUser}}}
	if _, err := c.RbacV1().RoleBindings(chartNamespace).Create(ctx, fwb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, string, int) {
		return clientRun(t, bin, kubeconfig, operatorUser, args...)
	}

	t.Run("status --all-nodes", func(t *testing.T) {
		out, stderr, code := run("status", "--all-nodes", "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var lines []fleet.NodeStatus
		if err := json.Unmarshal([]byte(out), &lines); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var nodes []string
		for _, n := range lines {
			if n.Error != "" || !n.Ready {
				t.Errorf("node %s: ready %v, error %q", n.Node, n.Ready, n.Error)
			}
			nodes = append(nodes, n.Node)
		}
		slices.Sort(nodes)
		if !slices.Equal(nodes, []string{lab.Node1, lab.Node2}) {
			t.Errorf("status --all-nodes lists %v, want both nodes", nodes)
		}
		table, stderr, code := run("status", "--all-nodes")
		if code != 0 || !strings.Contains(table, lab.Node1) || !strings.Contains(table, lab.Node2) {
			t.Errorf("table: exit %d %s\n%s", code, stderr, table)
		}
		t.Logf("status --all-nodes:\n%s", table)
	})

	// The node-level command's diagnosis, from the agents themselves
	// (reached at their nodes' addresses through the lab's proxy).
	proxy, err := url.Parse(labk8s.Proxy(t, l))
	if err != nil {
		t.Fatal(err)
	}
	var direct []*api.Client
	for _, u := range labk8s.AgentURLs(l) {
		cl, err := api.NewClient(api.ClientConfig{URL: u, HTTPClient: &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}})
		if err != nil {
			t.Fatal(err)
		}
		direct = append(direct, cl)
	}
	// compare runs kubectl layerscope diagnose FROM TO and the node-level
	// diagnosis of nodeFrom nodeTo (the names the agents' events carry)
	// over the same window.
	compare := func(t *testing.T, start time.Time, from, to, nodeFrom, nodeTo string, want diagnose.Class, nodes ...string) {
		t.Helper()
		var got, node diagnose.Verdict
		deadline := time.Now().Add(20 * time.Second)
		for {
			since := time.Since(start).Truncate(time.Second) + 2*time.Second
			out, stderr, code := run("diagnose", from, to, "-n", "default", "--since", since.String(), "-o", "json")
			got = diagnose.Verdict{}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("diagnose: exit %d, %v: %s %s", code, err, out, stderr)
			}
			if code != got.ExitCode {
				t.Errorf("exit code %d, verdict's %d", code, got.ExitCode)
			}
			if node, err = fleet.Diagnose(ctx, direct, nodeFrom, nodeTo, since); err != nil {
				t.Fatal(err)
			}
			if got.Class == want && node.Class == want && slices.Equal(steady(got.Evidence), steady(node.Evidence)) || time.Now().After(deadline) {
				t.Logf("kubectl layerscope diagnose (%s): %s", strings.TrimSpace(stderr), got.Summary)
				break
			}
			time.Sleep(time.Second)
		}
		if got.Class != want || node.Class != want {
			t.Errorf("verdict %s (node-level %s), want %s", got.Class, node.Class, want)
		}
		if got.Summary != node.Summary || !slices.Equal(steady(got.Evidence), steady(node.Evidence)) || !slices.Equal(got.Hops, node.Hops) {
			t.Errorf("kubectl layerscope's verdict differs from the node-level one:\n%s\n%q\n%q\nnode-level:\n%s\n%q\n%q",
				got.Summary, got.Evidence, got.Hops, node.Summary, node.Evidence, node.Hops)
		}
		var asked []string
		for _, s := range got.Sources {
			asked = append(asked, s.Node)
		}
		slices.Sort(asked)
		if !slices.Equal(asked, nodes) {
			t.Errorf("asked the agents of %v, want those of the nodes involved %v", asked, nodes)
		}
	}

	t.Run("healthy", func(t *testing.T) {
		start := time.Now()
		if _, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{Count: 15}); err != nil {
			t.Fatal(err)
		}
		compare(t, start, "pod/"+lab.PodA, "svc/my-service", "default/"+lab.PodA, "default/my-service", diagnose.Healthy, lab.Node1, lab.Node2)

		// Each agent records a connection's events within about a second.
		var seen map[string]int
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Second) {
			out, stderr, code := run("observe", "--all-nodes", "--to-service", "my-service", "-n", "default", "-o", "json")
			if code != 0 {
				t.Fatalf("observe: exit %d: %s", code, stderr)
			}
			seen = map[string]int{}
			var last time.Time
			for line := range strings.Lines(out) {
				var e api.Connection
				if err := json.Unmarshal([]byte(line), &e); err != nil {
					t.Fatalf("%v: %s", err, line)
				}
				seen[e.Node]++
				if e.Time.Before(last) {
					t.Errorf("event of %s at %v after one at %v: not merged in time order", e.Node, e.Time, last)
				}
				last = e.Time
			}
			if seen[lab.Node1] > 0 && seen[lab.Node2] > 0 || time.Now().After(deadline) {
				break
			}
		}
		if seen[lab.Node1] == 0 || seen[lab.Node2] == 0 {
			t.Errorf("observe --all-nodes --to-service my-service: events per node %v, want both nodes", seen)
		}
		table, _, _ := run("observe", "--all-nodes", "--to-service", "my-service", "-n", "default", "--latest")
		lines := map[string]int{}
		for line := range strings.Lines(table) {
			if f := strings.Fields(line); len(f) > 2 {
				lines[f[1]]++
			}
		}
		if lines[lab.Node1] == 0 || lines[lab.Node2] == 0 {
			t.Errorf("observe's lines per node %v, want lines naming both nodes:\n%s", lines, table)
		}
		fromA, _, _ := run("observe", "--all-nodes", "--from-pod", lab.PodA, "-n", "default", "-o", "wide")
		n := 0
		for line := range strings.Lines(fromA) {
			if f := strings.Fields(line); len(f) > 2 {
				n++
				if f[2] != "default/"+lab.PodA {
					t.Errorf("--from-pod %s printed a connection from %s", lab.PodA, f[2])
				}
			}
		}
		if n == 0 {
			t.Errorf("--from-pod %s printed nothing", lab.PodA)
		}
		t.Logf("observe --all-nodes --to-service my-service: events per node %v; --latest table lines per node %v", seen, lines)
	})

	t.Run("observe --follow --all-nodes", func(t *testing.T) {
		fctx, stop := context.WithTimeout(ctx, time.Minute)
		defer stop()
		// Each event held 2 s rather than the default 0.5 s: under load (the
		// package's labs at once beside other test runs) an agent's event
		// reached the client up to 0.8 s after a later one of the other
		// node; the order checked below stays exact.
		cmd := exec.CommandContext(fctx, bin, "--kubeconfig", kubeconfig, "--as", operatorUser, "--agent-namespace", chartNamespace,
			"observe", "--all-nodes", "--follow", "--reorder", "2s", "--to-service", "my-service", "-n", "default")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "NO_COLOR=1"}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// The streams are open once the agents answered the follow
		// request: traffic from then on is new to them.
		time.Sleep(2 * time.Second)
		start := time.Now()
		traffic := make(chan error, 1)
		go func() {
			_, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{Count: 15})
			traffic <- err
		}()
		seen := map[string]int{}
		var last time.Time
		var both time.Duration
		timeout := time.After(30 * time.Second)
		// Every line until 3 s after the traffic ended, or 30 s.
		var settled <-chan time.Time
	read:
		for {
			select {
			case err := <-traffic:
				if err != nil {
					t.Fatal(err)
				}
				settled = time.After(3 * time.Second)
			case <-settled:
				break read
			case line, ok := <-lines:
				if !ok {
					break read
				}
				f := strings.Fields(line)
				if len(f) < 3 {
					continue
				}
				ts, err := time.Parse(time.RFC3339Nano, f[0])
				if err != nil {
					t.Errorf("line %q: no time first (%v)", line, err)
					continue
				}
				if f[1] != lab.Node1 && f[1] != lab.Node2 {
					t.Errorf("line %q: no node second", line)
				}
				seen[f[1]]++
				if ts.Before(last) {
					t.Errorf("line %q at %v after one at %v: the streams are not merged in time order", line, ts, last)
				}
				last = ts
				if both == 0 && seen[lab.Node1] > 0 && seen[lab.Node2] > 0 {
					both = time.Since(start)
				}
			case <-timeout:
				break read
			}
		}
		// Interrupted, as an operator ends it: exit 0.
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		go func() {
			for range lines {
			}
		}()
		if err := cmd.Wait(); err != nil {
			t.Errorf("observe --follow after an interrupt: %v %s", err, stderr.String())
		}
		if seen[lab.Node1] == 0 || seen[lab.Node2] == 0 {
			t.Errorf("observe --follow --all-nodes: lines per node %v within 30 s of the traffic, want both nodes (%s)", seen, stderr.String())
		}
		t.Logf("observe --follow --all-nodes: lines per node %v, both nodes %v after the traffic started", seen, both.Round(time.Millisecond))
	})

	t.Run("completion from the API", func(t *testing.T) {
		complete := func(args ...string) []string {
			t.Helper()
			out, stderr, code := run(append([]string{"__complete"}, args...)...)
			if code != 0 {
				t.Fatalf("__complete %q: exit %d %s", args, code, stderr)
			}
			return completions(t, out)
		}
		if got := complete("status", "--node", ""); !slices.Equal(got, []string{lab.Node1, lab.Node2}) {
			t.Errorf("--node completes %q, want the agents' nodes", got)
		}
		if got := complete("observe", "-n", "default", "--from-pod", ""); !containsAll(got, lab.PodA, lab.PodB, lab.PodC) {
			t.Errorf("--from-pod in default completes %q, want the lab's pods", got)
		}
		if got := complete("diagnose", "-n", "default", "pod/"); !containsAll(got, "pod/"+lab.PodA, "pod/"+lab.PodC) {
			t.Errorf("diagnose pod/ completes %q, want pod/NAME of the lab's pods", got)
		}
		if got := complete("diagnose", "-n", "default", "pod/"+lab.PodA, "svc/"); !slices.Contains(got, "svc/my-service") {
			t.Errorf("diagnose's TO svc/ completes %q, want svc/my-service", got)
		}

		// kubectl's own plugin completion: kubectl layerscope <TAB> runs
		// kubectl_complete-layerscope from PATH beside the plugin.
		dir := filepath.Dir(bin)
		script := filepath.Join(dir, "kubectl_complete-layerscope")
		b, err := os.ReadFile(filepath.Join(labk8s.Root(), "cmd", "kubectl-layerscope", "kubectl_complete-layerscope"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(script, b, 0o755); err != nil {
			t.Fatal(err)
		}
		kubectl := filepath.Join(testns.K8sBin(t), "kubectl")
		cmd := exec.CommandContext(ctx, kubectl, "__complete", "layerscope", "status", "--node", "")
		cmd.Env = []string{"PATH=" + dir + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "KUBECONFIG=" + kubeconfig}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl __complete layerscope status --node: %v", err)
		}
		if got := completions(t, string(out)); !slices.Equal(got, []string{lab.Node1, lab.Node2}) {
			t.Errorf("kubectl layerscope status --node <TAB> completes %q, want the agents' nodes:\n%s", got, out)
		}
		cmd = exec.CommandContext(ctx, kubectl, "__complete", "layerscope", "diagnose", "-n", "default", "pod/")
		cmd.Env = []string{"PATH=" + dir + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "KUBECONFIG=" + kubeconfig}
		if out, err = cmd.Output(); err != nil {
			t.Fatalf("kubectl __complete layerscope diagnose: %v", err)
		}
		if got := completions(t, string(out)); !containsAll(got, "pod/"+lab.PodA, "pod/"+lab.PodC) {
			t.Errorf("kubectl layerscope diagnose pod/<TAB> completes %q:\n%s", got, out)
		}
	})

	t.Run("dead backend", func(t *testing.T) {
		time.Sleep(2 * time.Second) // out of the healthy case's window
		start := time.Now()
		if _, err := l.Traffic(ctx, lab.ScenarioDeadBackend, lab.TrafficOptions{Count: 30}); err != nil {
			t.Fatal(err)
		}
		compare(t, start, "pod/"+lab.PodA, "svc/my-service", "default/"+lab.PodA, "default/my-service", diagnose.Backend, lab.Node1, lab.Node2)
	})

	t.Run("dns", func(t *testing.T) {
		time.Sleep(2 * time.Second)
		start := time.Now()
		if _, err := l.Traffic(ctx, lab.ScenarioDNS, lab.TrafficOptions{DNSMix: [3]int{3, 3, 0}}); err != nil {
			t.Fatal(err)
		}
		// A DNS name names no node: every node's agent is asked.
		compare(t, start, "pod/"+lab.PodA, "no-such-svc-1", "default/"+lab.PodA, "no-such-svc-1", diagnose.DNSNXDomain, lab.Node1, lab.Node2)
	})

	t.Run("mtu", func(t *testing.T) {
		time.Sleep(2 * time.Second)
		start := time.Now()
		if _, err := l.Traffic(ctx, lab.ScenarioMTU, lab.TrafficOptions{}); err != nil {
			t.Fatal(err)
		}
		compare(t, start, "pod/"+lab.PodB, "pod/"+lab.PodC, "default/"+lab.PodB, "default/"+lab.PodC, diagnose.MTU, lab.Node1, lab.Node2)
	})

	t.Run("conntrack full", func(t *testing.T) {
		time.Sleep(2 * time.Second)
		// The global limit just above the fuller node's table, lowered
		// under the machine-wide lock and restored by the scenario, also
		// when it fails (and by the lab's Close after a crash).
		limit := max(conntrackCount(t, l, lab.Node1), conntrackCount(t, l, lab.Node2)) + 100
		start := time.Now()
		r, err := l.Traffic(ctx, lab.ScenarioConntrackFlood, lab.TrafficOptions{ConntrackMax: limit, Count: 600})
		if err != nil {
			t.Fatal(err)
		}
		if f := r.Flood; f == nil || !f.Restored || f.Failed == 0 {
			t.Fatalf("the flood did not fill the table or restore the limit: %+v", r.Flood)
		}
		t.Logf("flood: limit %d (from %d), %d of %d connections failed", r.Flood.ConntrackMax, r.Flood.OriginalMax, r.Flood.Failed, r.Flood.Attempted)
		compare(t, start, "pod/"+lab.PodA, "svc/my-service", "default/"+lab.PodA, "default/my-service", diagnose.Conntrack, lab.Node1, lab.Node2)
	})

	t.Run("port-forward where the proxy is refused", func(t *testing.T) {
		out, stderr, code := clientRun(t, bin, kubeconfig, forwarderUser, "status", "--all-nodes", "-o", "json")
		var lines []fleet.NodeStatus
		if err := json.Unmarshal([]byte(out), &lines); err != nil || code != 0 {
			t.Fatalf("as %s (pods/portforward, no pods/proxy): exit %d %v %s\n%s", forwarderUser, code, err, stderr, out)
		}
		var nodes []string
		for _, n := range lines {
			if n.Error != "" || !n.Ready {
				t.Errorf("through a port-forward, node %s: %q", n.Node, n.Error)
			}
			nodes = append(nodes, n.Node)
		}
		slices.Sort(nodes)
		if !slices.Equal(nodes, []string{lab.Node1, lab.Node2}) {
			t.Errorf("through port-forwards: nodes %v", nodes)
		}
	})

	t.Run("forbidden without pods/proxy", func(t *testing.T) {
		_, stderr, code := clientRun(t, bin, kubeconfig, viewerUser, "status", "--all-nodes")
		if code != 20 || !strings.Contains(stderr, "forbidden") || !strings.Contains(stderr, "pods/proxy") {
			t.Errorf("as %s: exit %d, %q; want 20 and a forbidden naming pods/proxy", viewerUser, code, stderr)
		}
		t.Logf("as %s: %s", viewerUser, strings.TrimSpace(stderr))
		_, stderr, code = clientRun(t, bin, kubeconfig, "nobody@example.test", "status", "--all-nodes")
		if code != 20 || !strings.Contains(stderr, "forbidden: you may not list pods in namespace "+chartNamespace) {
			t.Errorf("as nobody: exit %d, %q; want 20 and a forbidden naming list pods", code, stderr)
		}
		t.Logf("as nobody: %s", strings.TrimSpace(stderr))
	})
}

// liveFill is the part of a conntrack evidence line that reads the table
// as it is at the moment of the request (its entries, and so its fill):
// two diagnoses a moment apart read different numbers.
var liveFill = regexp.MustCompile(`conntrack \d+ of (\d+) entries \(\d+%\)`)

// steady is evidence without the table's live fill; the counts of drops,
// connections and failures stay.
func steady(evidence []string) []string {
	out := make([]string, len(evidence))
	for i, e := range evidence {
		out[i] = liveFill.ReplaceAllString(e, "conntrack _ of $1 entries")
	}
	return out
}

// conntrackCount reads a lab node's conntrack entries.
func conntrackCount(t *testing.T, l *lab.Lab, node string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.NetNS(node), "cat", "/proc/sys/net/netfilter/nf_conntrack_count").Output()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// completions are the candidates of cobra's __complete output: a line
// each, descriptions after a tab dropped, and the directive line last
// (":N"), which must be there.
func completions(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	directive := false
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		if strings.HasPrefix(line, ":") {
			directive = true
			continue
		}
		c, _, _ := strings.Cut(line, "\t")
		if c != "" {
			got = append(got, c)
		}
	}
	if !directive {
		t.Errorf("completion output without its directive line:\n%s", out)
	}
	return got
}

func containsAll(got []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}
