package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/diagnose"
	"github.com/layerscope/layerscope/internal/fleet"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// diagnoseJSON runs `layerscope diagnose -o json` and returns its exit
// code and verdict.
func diagnoseJSON(t *testing.T, urls []string, since time.Duration, from, to string) (int, diagnose.Verdict) {
	t.Helper()
	cmd := exec.Command(binary, "diagnose", "--agent", strings.Join(urls, ","), "--since", since.Round(time.Millisecond).String(), "-o", "json", from, to)
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var v diagnose.Verdict
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("diagnose exit %d: %v\n%s", code, err, out)
	}
	return code, v
}

// scenarioCase is one seed failure: traffic, the diagnosis to ask for and
// what the verdict must say.
type scenarioCase struct {
	name     string
	scenario string
	opts     func(t *testing.T) lab.TrafficOptions
	from, to string
	class    diagnose.Class
	summary  []string
	evidence []string
	check    func(t *testing.T, rep *lab.Report, v *diagnose.Verdict)
	// complete, when set, must also hold before the verdict counts as
	// given (evidence that arrives from the second node a moment later);
	// rep is nil until the traffic has ended.
	complete func(rep *lab.Report, v *diagnose.Verdict) bool
}

// podAPaths are the paths, hop by hop, from pod-a to each backend its
// requests to the Service can be DNATed to.
var podAPaths = map[string]string{
	lab.PodA: "path to 10.244.0.5:8080: node-1/veth-pod-a (pod)",
	lab.PodB: "path to 10.244.0.8:8080: node-1/veth-pod-a (pod) → node-1/veth-pod-b (pod)",
	lab.PodC: "path to 10.244.1.8:8080: node-1/veth-pod-a (pod) → node-1/vxlan0 (overlay) → node-1/eth0 (uplink) → node-2/eth0 (uplink) → node-2/vxlan0 (overlay) → node-2/veth-pod-c (pod)",
}

// missingPaths returns the paths of podAPaths to the backends pod-a's
// requests of rep were DNATed to (the lab's ground truth) that the
// verdict's evidence lacks, and whether pod-c was among those backends.
func missingPaths(rep *lab.Report, v *diagnose.Verdict) (missing []string, reachedC bool) {
	ev := strings.Join(v.Evidence, "\n")
	reached := map[string]bool{}
	for _, q := range rep.Requests {
		if q.Client == lab.PodA && q.Target == lab.ServiceAddr {
			reached[q.DNATBackend] = true
		}
	}
	for _, pod := range []string{lab.PodA, lab.PodB, lab.PodC} {
		if want := podAPaths[pod]; reached[pod] && !strings.Contains(ev, want+"\n") && !strings.HasSuffix(ev, want) {
			missing = append(missing, want)
		}
	}
	return missing, reached[lab.PodC]
}

// TestLiveDiagnoseSeedFailures drives each seed failure in a lab with an
// agent on each node, polls `layerscope diagnose` while and after the
// traffic runs, and asserts the verdict, its evidence and its exit code,
// and that it appeared within 5 s of the end of the faulty traffic. Each
// diagnosis looks only at the window of its own scenario (--since).
func TestLiveDiagnoseSeedFailures(t *testing.T) {
	l, urls := labAgents(t, "d", lab.Node1, lab.Node2)
	testDiagnoseSeedFailures(t, l, urls)
}

// TestLiveDiagnoseSeedFailuresKubeProxy is TestLiveDiagnoseSeedFailures in
// the Kubernetes lab, the DNAT programmed by the real kube-proxy in
// iptables and in nftables mode, the agents' metadata from its API server.
func TestLiveDiagnoseSeedFailuresKubeProxy(t *testing.T) {
	for _, mode := range lab.KubeProxyModes {
		t.Run(string(mode), func(t *testing.T) {
			cfg := &lab.Config{Kubernetes: true, KubeProxyMode: mode, K8sBin: testns.K8sBin(t)}
			l, urls := labAgentsIn(t, cfg, "k", nil, lab.Node1, lab.Node2)
			testDiagnoseSeedFailures(t, l, urls)
		})
	}
}

func testDiagnoseSeedFailures(t *testing.T, l *lab.Lab, urls []string) {
	cases := []scenarioCase{
		{
			name: "healthy", scenario: lab.ScenarioService, from: "10.244.0.5", to: "10.96.0.42:8080",
			opts:  func(*testing.T) lab.TrafficOptions { return lab.TrafficOptions{Count: 15} },
			class: diagnose.Healthy, summary: []string{"no fault observed"},
			// The hops of the last connections reach the agents a moment
			// after the traffic: the verdict counts once it lists them all.
			complete: func(rep *lab.Report, v *diagnose.Verdict) bool {
				if rep == nil || !strings.Contains(strings.Join(v.Hops, " "), "node-2/veth-pod-c") {
					return false
				}
				missing, _ := missingPaths(rep, v)
				return len(missing) == 0
			},
			evidence: []string{"DNAT to backends: "},
			check: func(t *testing.T, rep *lab.Report, v *diagnose.Verdict) {
				// The path to each backend pod-a's requests were DNATed to
				// (the lab's ground truth) is listed, hop by hop.
				missing, reachedC := missingPaths(rep, v)
				for _, want := range missing {
					t.Errorf("pod-a reached the backend, evidence lacks %q:\n%s", want, strings.Join(v.Evidence, "\n"))
				}
				if !reachedC {
					t.Errorf("no request of pod-a DNATed to pod-c out of 15: the cross-node path is untested")
				}
			},
		},
		{
			// pod-a asks for the Service and three unknown names; TO is one
			// of those by its short name, expanded by pod-a's namespace.
			name: "wrong DNS name", scenario: lab.ScenarioDNS,
			opts: func(*testing.T) lab.TrafficOptions { return lab.TrafficOptions{DNSMix: [3]int{3, 3, 0}} },
			from: "10.244.0.5", to: "no-such-svc-1",
			class: diagnose.DNSNXDomain, summary: []string{"NXDOMAIN", "the name no-such-svc-1 does not exist"},
			complete: func(_ *lab.Report, v *diagnose.Verdict) bool {
				return strings.Contains(strings.Join(v.Evidence, "\n"), "answers for other names, not judged: NOERROR×3, NXDOMAIN×2")
			},
			evidence: []string{"NXDOMAIN×1; 0 unanswered"},
			check: func(t *testing.T, rep *lab.Report, v *diagnose.Verdict) {
				// The evidence names the query the scenario sent for TO.
				var asked []string
				for _, q := range rep.Requests {
					if strings.HasPrefix(q.Query, "no-such-svc-1.") {
						asked = append(asked, strings.TrimSuffix(q.Query, "."))
					}
				}
				want := fmt.Sprintf("1 DNS queries from 10.244.0.5 for %s in the last", strings.Join(asked, ", "))
				if ev := strings.Join(v.Evidence, "\n"); len(asked) != 1 || !strings.Contains(ev, want) {
					t.Errorf("scenario asked %q; evidence lacks %q:\n%s", asked, want, ev)
				}
			},
		},
		{
			name: "NXDOMAIN for other names", scenario: lab.ScenarioDNS,
			opts: func(*testing.T) lab.TrafficOptions { return lab.TrafficOptions{DNSMix: [3]int{3, 3, 0}} },
			from: "10.244.0.5", to: lab.ServiceName,
			class: diagnose.Healthy, summary: []string{"no fault observed in DNS"},
			complete: func(_ *lab.Report, v *diagnose.Verdict) bool {
				return strings.Contains(strings.Join(v.Evidence, "\n"), "answers for other names, not judged: NXDOMAIN×3")
			},
			evidence: []string{"3 DNS queries from 10.244.0.5 for " + strings.TrimSuffix(lab.ServiceName, ".") + " in the last", "answers NOERROR×3; 0 unanswered"},
		},
		{
			name: "dead backend", scenario: lab.ScenarioDeadBackend, from: "10.244.0.5", to: "10.96.0.42:8080",
			opts:  func(*testing.T) lab.TrafficOptions { return lab.TrafficOptions{Count: 15} },
			class: diagnose.Backend, summary: []string{"L4: backend 10.244.1.8:8080 refuses (RST"},
			check: func(t *testing.T, rep *lab.Report, v *diagnose.Verdict) {
				// The share of failures is pod-a's requests DNATed to pod-c
				// over all of pod-a's: about one in three.
				var mine, toC int
				for _, q := range rep.Requests {
					if q.Client == lab.PodA && q.Target == lab.ServiceAddr {
						mine++
						if q.DNATBackend == lab.PodC {
							toC++
						}
					}
				}
				want := fmt.Sprintf("%d of %d connections from 10.244.0.5", toC, mine)
				if !strings.Contains(v.Summary, want) {
					t.Errorf("summary %q lacks %q (the lab's DNAT ground truth)", v.Summary, want)
				}
				if toC == 0 || float64(toC)/float64(mine) > 0.75 {
					t.Errorf("pod-c got %d of %d requests: not a one-in-three failure", toC, mine)
				}
			},
		},
		{
			name: "mtu", scenario: lab.ScenarioMTU, from: "10.244.0.8", to: "10.244.1.8",
			class: diagnose.MTU, summary: []string{"L3 MTU mismatch", "frag-needed MTU 1450"},
			evidence: []string{"MTU 1500, its path carries 1450"},
		},
		{
			name: "conntrack flood", scenario: lab.ScenarioConntrackFlood, from: "10.244.0.5", to: "10.96.0.42:8080",
			opts: func(t *testing.T) lab.TrafficOptions {
				n := conntrackEntries(t, l, lab.Node1)
				return lab.TrafficOptions{ConntrackMax: n + 100, Count: 600}
			},
			class: diagnose.Conntrack, summary: []string{"conntrack exhaustion"},
			evidence: []string{"node node-1: conntrack"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			time.Sleep(1100 * time.Millisecond) // the window starts after the last scenario's events
			opts := lab.TrafficOptions{}
			if tc.opts != nil {
				opts = tc.opts(t)
			}
			start := time.Now()
			var (
				rep      *lab.Report
				trafErr  error
				endMu    sync.Mutex
				trafEnd  time.Time
				wg       sync.WaitGroup
				verdict  diagnose.Verdict
				code     int
				verdictT time.Time
			)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			wg.Go(func() {
				r, err := l.Traffic(ctx, tc.scenario, opts)
				endMu.Lock()
				rep, trafErr, trafEnd = r, err, time.Now()
				endMu.Unlock()
			})
			for {
				code, verdict = diagnoseJSON(t, urls, time.Since(start)+500*time.Millisecond, tc.from, tc.to)
				endMu.Lock()
				end, r := trafEnd, rep
				endMu.Unlock()
				if verdict.Class == tc.class && (tc.class != diagnose.Healthy || !end.IsZero()) && (tc.complete == nil || tc.complete(r, &verdict)) {
					verdictT = time.Now()
					break
				}
				if !end.IsZero() && time.Since(end) > 10*time.Second {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			wg.Wait()
			if trafErr != nil {
				t.Fatal(trafErr)
			}
			t.Logf("verdict %s (exit %d) %v after the traffic started, %v after it ended:\n%s\n%s\nhops: %s\nnext: %s",
				verdict.Class, code, verdictT.Sub(start).Round(time.Millisecond), verdictT.Sub(trafEnd).Round(time.Millisecond),
				verdict.Summary, strings.Join(verdict.Evidence, "\n"), strings.Join(verdict.Hops, " → "), verdict.Next)
			if verdict.Class != tc.class {
				t.Fatalf("verdict %s, want %s, 10 s after the traffic ended: %s\n%s", verdict.Class, tc.class, verdict.Summary, strings.Join(verdict.Evidence, "\n"))
			}
			if d := verdictT.Sub(trafEnd); d > 5*time.Second {
				t.Errorf("verdict came %v after the faulty traffic ended, want within 5 s", d)
			}
			if code != tc.class.ExitCode() {
				t.Errorf("exit code %d, want %d", code, tc.class.ExitCode())
			}
			for _, s := range tc.summary {
				if !strings.Contains(verdict.Summary, s) {
					t.Errorf("summary %q lacks %q", verdict.Summary, s)
				}
			}
			ev := strings.Join(verdict.Evidence, "\n")
			for _, s := range tc.evidence {
				if !strings.Contains(ev, s) {
					t.Errorf("evidence lacks %q:\n%s", s, ev)
				}
			}
			if tc.check != nil {
				tc.check(t, rep, &verdict)
			}
		})
	}
}

// conntrackEntries reads a lab node's conntrack count.
func conntrackEntries(t *testing.T, l *lab.Lab, node string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.NetNS(node), "cat", "/proc/sys/net/netfilter/nf_conntrack_count").Output()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscan(string(out), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestResolveEndpoint(t *testing.T) {
	nodes := []diagnose.NodeEvidence{{Node: "node-1", Connections: []api.Connection{{
		Client:  api.Endpoint{Addr: "10.244.0.5:40000", IP: "10.244.0.5", Namespace: "default", Pod: "pod-a"},
		Service: &api.Endpoint{Addr: "10.96.0.42:8080", IP: "10.96.0.42", Port: 8080, Namespace: "default", Service: "my-service"},
		Backend: api.Endpoint{Addr: "10.244.1.8:8080", IP: "10.244.1.8", Port: 8080, Namespace: "default", Pod: "pod-c"},
	}}}}
	for _, tt := range []struct {
		arg     string
		addr    string
		service bool
		dns     string
	}{
		{"default/my-service", "10.96.0.42", true, ""},
		{"my-service", "10.96.0.42", true, ""},
		{"pod-c", "10.244.1.8", false, ""},
		{"default/pod-a", "10.244.0.5", false, ""},
		{"10.1.2.3:80", "10.1.2.3", false, ""},
		{"other/my-service", "", false, "other/my-service"},
		{"nosuch.default.svc.cluster.local", "", false, "nosuch.default.svc.cluster.local"},
	} {
		e := fleet.ResolveEndpoint(tt.arg, nodes)
		got := ""
		if len(e.Addrs) > 0 {
			got = e.Addrs[0].String()
		}
		if got != tt.addr || e.Service != tt.service || e.DNSName != tt.dns {
			t.Errorf("%s: %+v", tt.arg, e)
		}
	}
}
