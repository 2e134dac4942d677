package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/lab"
)

// labAgent builds a lab and runs an agent on node-1 in this process; it
// returns the lab and the agent's URL.
func labAgent(t *testing.T) (*lab.Lab, string) {
	t.Helper()
	l, urls := labAgents(t, "o", lab.Node1)
	return l, urls[0]
}

// observeJSON runs `layerscope observe -o json` with args and returns the
// events, each checked against the documented schema.
func observeJSON(t *testing.T, url string, args ...string) []api.Connection {
	t.Helper()
	code, out := run(t, append([]string{binary, "observe", "--agent", url, "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("observe exit %d: %s", code, out)
	}
	var cs []api.Connection
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		if err := api.ValidateConnection([]byte(line)); err != nil {
			t.Fatalf("observe -o json line against the schema: %v\n%s", err, line)
		}
		var c api.Connection
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

// byConnection counts DNATed connections by backend and outcome: one per
// conntrack ID, the pre-DNAT view's outcome when both views were seen.
func byConnection(cs []api.Connection) map[string]int {
	pick := map[string]api.Connection{}
	for _, c := range api.Latest(cs) {
		if c.NAT == nil || !c.NAT.DNAT || c.State != api.StateFinal {
			continue
		}
		if old, ok := pick[c.ID]; !ok || old.View != api.ViewPre {
			pick[c.ID] = c
		}
	}
	out := map[string]int{}
	for _, c := range pick {
		out[c.Service.Addr+" "+c.Backend.Addr+" "+c.Outcome]++
	}
	return out
}

// followed is what a `layerscope observe --follow -o json` process printed.
type followed struct {
	mu     sync.Mutex
	events []api.Connection
	at     []time.Time
	bad    []string
}

func follow(t *testing.T, url string) *followed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binary, "observe", "--agent", url, "--follow", "-o", "json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &followed{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			now := time.Now()
			var c api.Connection
			err := api.ValidateConnection(sc.Bytes())
			if err == nil {
				err = json.Unmarshal(sc.Bytes(), &c)
			}
			f.mu.Lock()
			if err != nil {
				f.bad = append(f.bad, err.Error())
			}
			f.events, f.at = append(f.events, c), append(f.at, now)
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done; _ = cmd.Wait() })
	time.Sleep(500 * time.Millisecond) // the stream is open before traffic starts
	return f
}

// TestObserveDeadBackendAndDNS runs agents' API on node-1 through the
// dead-backend and dns scenarios and compares what observe prints with the
// scenarios' ground truth; the follow stream shows each refused connection
// within seconds; the terminal output is checked in tmux.
func TestObserveDeadBackendAndDNS(t *testing.T) {
	l, url := labAgent(t)
	f := follow(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r, err := l.Traffic(ctx, lab.ScenarioDeadBackend, lab.TrafficOptions{Count: 9})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, q := range r.Requests {
		if q.NATNode != lab.Node1 {
			continue
		}
		pod, ok := l.Pod(q.DNATBackend)
		if !ok {
			t.Fatalf("request %+v: no DNAT backend", q)
		}
		outcome := "closed"
		if q.Refused {
			outcome = "refused"
		} else if !q.OK() {
			t.Fatalf("request failed other than refused: %+v", q)
		}
		want[q.Target.String()+" "+netip.AddrPortFrom(pod.IP, lab.ServicePort).String()+" "+outcome]++
	}
	podC, _ := l.Pod(lab.PodC)
	deadKey := "10.96.0.42:8080 " + netip.AddrPortFrom(podC.IP, lab.ServicePort).String() + " refused"
	if want[deadKey] == 0 {
		t.Fatalf("no refused connection to pod-c through the ClusterIP on node-1 in the ground truth: %v", want)
	}
	// Final events come after the flow table's closed timeout.
	var got map[string]int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		got = byConnection(observeJSON(t, url, "--state", "final"))
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("connections by service, backend, outcome:\n got %v\nwant %v", got, want)
	}

	// The follow stream: schema-valid lines, and each refused connection's
	// first event within 3 s of its last packet (progress every second).
	f.mu.Lock()
	if len(f.bad) > 0 {
		t.Errorf("follow stream lines against the schema: %v", f.bad[0])
	}
	first := map[string]time.Duration{}
	for i, c := range f.events {
		if c.Outcome == "refused" && c.View == api.ViewPre && c.Service != nil && c.Service.Addr == "10.96.0.42:8080" && c.Backend.IP == podC.IP.String() {
			// Names from the lab's metadata file: the Service and the
			// backend pod (on node-2: known from the EndpointSlice).
			if c.Service.Namespace != lab.Namespace || c.Service.Service != lab.ServiceObject ||
				c.Backend.Namespace != lab.Namespace || c.Backend.Pod != lab.PodC {
				t.Errorf("connection %s: service %+v backend %+v, want %s/%s and %s/%s", c.ID, *c.Service, c.Backend,
					lab.Namespace, lab.ServiceObject, lab.Namespace, lab.PodC)
			}
			if _, ok := first[c.ID]; !ok {
				first[c.ID] = f.at[i].Sub(c.Last)
			}
		}
	}
	f.mu.Unlock()
	if len(first) != want[deadKey] {
		t.Errorf("follow stream showed %d refused connections to pod-c, want %d", len(first), want[deadKey])
	}
	var slowest time.Duration
	for _, d := range first {
		slowest = max(slowest, d)
	}
	t.Logf("follow: %d refused connections, slowest shown %v after its last packet", len(first), slowest)
	if slowest > 3*time.Second {
		t.Errorf("a refused connection was streamed %v after its last packet, want within 3s", slowest)
	}

	// A real terminal: colour and the verdict; piped: no colour.
	session := "lsobs" + strings.TrimSuffix(l.NetNS(lab.Node1), "node-1")
	if code, out := run(t, "tmux", "new-session", "-d", "-x", "200", "-y", "50", "-s", session,
		binary+" observe --agent "+url+" --state final --outcome refused --limit 5; sleep 60"); code != 0 {
		t.Fatalf("tmux: %s", out)
	}
	defer run(t, "tmux", "kill-session", "-t", session)
	var pane string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, pane = run(t, "tmux", "capture-pane", "-p", "-e", "-t", session)
		if strings.Contains(pane, "SYN → RST") {
			break
		}
	}
	for _, s := range []string{"\x1b[", "SYN → RST", "DNAT 10.96.0.42:8080→" + podC.IP.String() + ":8080", "node-1", "final"} {
		if !strings.Contains(pane, s) {
			t.Errorf("terminal output lacks %q:\n%s", s, pane)
		}
	}
	code, piped := run(t, binary, "observe", "--agent", url, "--state", "final", "--outcome", "refused")
	if code != 0 || strings.Contains(piped, "\x1b[") || !strings.Contains(piped, "L4 SYN → RST · DNAT 10.96.0.42:8080→") {
		t.Errorf("piped observe (exit %d) must be plain and show the verdict:\n%s", code, piped)
	}

	// Filters by Kubernetes name: the refused connections are pod-c's
	// and my-service's, and no connection of pod-c is anything else.
	byPod := observeJSON(t, url, "--state", "final", "--pod", lab.Namespace+"/"+lab.PodC)
	refused := 0
	for _, c := range byPod {
		if c.Backend.Pod != lab.PodC && c.Client.Pod != lab.PodC {
			t.Errorf("--pod %s returned %s → %s", lab.PodC, c.Client.Name(), c.Backend.Name())
		}
		if c.Outcome == "refused" {
			refused++
		}
	}
	// --service also keeps node-1's own connections to node-2's NodePort
	// (DNATed there, so without a backend pod here): pod-c's are the rest.
	bySvc, viaPodC := observeJSON(t, url, "--state", "final", "--service", lab.ServiceObject, "--outcome", "refused"), 0
	for _, c := range bySvc {
		if c.Backend.Pod == lab.PodC {
			viaPodC++
		} else if c.Backend.Service != lab.ServiceObject || c.NAT != nil {
			t.Errorf("--service %s returned %s → %s (nat %v)", lab.ServiceObject, c.Client.Name(), c.Backend.Name(), c.NAT)
		}
	}
	if refused == 0 || viaPodC != refused {
		t.Errorf("--pod %s shows %d refused connections, --service %s --outcome refused %d to pod-c: want the same, > 0", lab.PodC, refused, lab.ServiceObject, viaPodC)
	}

	// DNS: rcodes as the scenario received them (UDP flows end only at the
	// idle timeout: the newest event of each, progress or final).
	dr, err := l.Traffic(ctx, lab.ScenarioDNS, lab.TrafficOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Each exchange names the query the scenario sent (name and rcode).
	wantRC, wantNames := map[string]int{}, map[string]int{}
	for _, q := range dr.Requests {
		wantRC[q.RCode]++
		wantNames[strings.TrimSuffix(q.Query, ".")+" "+q.RCode]++
	}
	var gotRC, gotNames map[string]int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		gotRC, gotNames = map[string]int{}, map[string]int{}
		for _, c := range observeJSON(t, url, "--latest", "--port", "53") {
			if c.L7 != nil && c.L7.App == "dns" {
				for _, x := range c.L7.Exchanges {
					gotRC[x.Rcode]++
					gotNames[x.Name+" "+x.Rcode]++
				}
			}
		}
		if fmt.Sprint(gotRC) == fmt.Sprint(wantRC) && fmt.Sprint(gotNames) == fmt.Sprint(wantNames) || time.Now().After(deadline) {
			break
		}
	}
	if fmt.Sprint(gotRC) != fmt.Sprint(wantRC) {
		t.Errorf("DNS rcodes: got %v, want %v", gotRC, wantRC)
	}
	if fmt.Sprint(gotNames) != fmt.Sprint(wantNames) {
		t.Errorf("DNS exchange names: got %v, want the scenario's %v", gotNames, wantNames)
	}

	// status: the failing backend first, the DNS errors counted.
	code, out := run(t, binary, "status", "--agent", url, "-o", "json")
	var st api.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status exit %d: %s", code, out)
	}
	if len(st.Services) == 0 || st.Services[0].Backend != netip.AddrPortFrom(podC.IP, lab.ServicePort).String() || st.Services[0].Failed == 0 {
		t.Errorf("status: top failing service %+v, want pod-c's backend", st.Services)
	}
	if st.DNS.Errors == 0 || st.DNS.ByRcode["NXDOMAIN"] == 0 || len(st.Capture.Interfaces) == 0 || st.Conntrack == nil {
		t.Errorf("status: dns %+v, capture %+v, conntrack %v", st.DNS, st.Capture, st.Conntrack)
	}
	// The endpoints of the lab's Service, from its metadata file.
	if want := []api.ServiceEndpoints{{Namespace: lab.Namespace, Service: lab.ServiceObject, Ready: len(l.Backends())}}; fmt.Sprint(st.Endpoints) != fmt.Sprint(want) {
		t.Errorf("status: endpoints %+v, want %+v", st.Endpoints, want)
	}
	code, text := run(t, binary, "status", "--agent", url)
	if code != 0 || !strings.Contains(text, "Conntrack") || !strings.Contains(text, "NXDOMAIN") || strings.Contains(text, "\x1b[") {
		t.Errorf("status text (exit %d):\n%s", code, text)
	}
}
