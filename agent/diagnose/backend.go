package diagnose

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/layerscope/layerscope/agent/api"
)

type backendStat struct {
	addr     string
	attempts int
	outcomes map[string]int
	failed   int
	last     time.Time
}

func backendStats(conns []conn) []*backendStat {
	by := map[string]*backendStat{}
	for _, c := range conns {
		b := by[c.c.Backend.Addr]
		if b == nil {
			b = &backendStat{addr: c.c.Backend.Addr, outcomes: map[string]int{}}
			by[b.addr] = b
		}
		b.attempts++
		b.outcomes[c.c.Outcome]++
		if c.failed && l4Failed(c.c) {
			b.failed++
			if c.c.Last.After(b.last) {
				b.last = c.c.Last
			}
		}
	}
	out := make([]*backendStat, 0, len(by))
	for _, b := range by {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].failed != out[j].failed {
			return out[i].failed > out[j].failed
		}
		return out[i].addr < out[j].addr
	})
	return out
}

// synPatience is how long a SYN may stay unanswered before an active
// connection counts as failing (a SYN-ACK takes a round trip: well under
// a second inside a cluster).
const synPatience = time.Second

// failing reports whether a connection failed, or is failing: its SYN is
// unanswered after a retransmission or after synPatience, although the
// connection is still active (its final event comes only when the flow
// times out).
func failing(c *api.Connection, now time.Time) bool {
	if c.Failed {
		return true
	}
	if c.Outcome != "syn_sent" || c.TCP != nil && c.TCP.SYNACK {
		return false
	}
	return c.TCP != nil && c.TCP.SYNs > 1 || !now.IsZero() && now.Sub(c.Last) > synPatience
}

// newest returns the latest status or event time of the evidence.
func newest(in *Input) time.Time {
	var t time.Time
	for _, n := range in.Nodes {
		if n.Status != nil && n.Status.Time.After(t) {
			t = n.Status.Time
		}
		for i := range n.Connections {
			if n.Connections[i].Time.After(t) {
				t = n.Connections[i].Time
			}
		}
	}
	return t
}

func l4Failed(c *api.Connection) bool {
	switch c.Outcome {
	case "timeout", "refused", "reset", "unreplied", "syn_sent":
		return true
	}
	return false
}

func backendVerdict(in *Input, conns, views []conn, win string) (Verdict, bool) {
	bs := backendStats(conns)
	total, failed := 0, 0
	for _, b := range bs {
		total += b.attempts
		failed += b.failed
	}
	if failed == 0 {
		return Verdict{}, false
	}
	worst := bs[0]
	how := describeFailure(worst.outcomes)
	if how == silent {
		if pv, ok := pathBreak(in, views, worst); ok {
			return pv, true
		}
	}
	v := Verdict{Class: Backend}
	v.Summary = fmt.Sprintf("L4: backend %s %s: %d of its %d connections failed; %d of %d connections from %s to %s failed (%s) in the last %s",
		worst.addr, how, worst.failed, worst.attempts, failed, total, in.From.Arg, in.To.Arg, ratioText(failed, total), win)
	for _, b := range bs {
		v.Evidence = append(v.Evidence, fmt.Sprintf("backend %s: %d connections, %d failed (%s)", b.addr, b.attempts, b.failed, topCounts(b.outcomes, 6)))
	}
	if !worst.last.IsZero() {
		v.Evidence = append(v.Evidence, "last failure at "+worst.last.Format(time.RFC3339Nano))
	}
	if pv, ok := pathEvidence(views, worst.addr); ok {
		v.Evidence = append(v.Evidence, pv)
	}
	v.Next = fmt.Sprintf("kubectl get pods -o wide | grep %s (CrashLoopBackOff? not ready but still an endpoint?); connect to %s directly from another pod; check its readiness probe and logs",
		hostOf(worst.addr), worst.addr)
	if how == silent {
		v.Next = fmt.Sprintf("the backend stays silent: check NetworkPolicies selecting it, that %s is the pod's port, and the path (`layerscope capture --filter 'host %s'` on both nodes)", worst.addr, hostOf(worst.addr))
		if note, ok := unexplainedNote(views, worst.addr); ok {
			v.Evidence = append(v.Evidence, note)
			v.Next = fmt.Sprintf("not a NetworkPolicy: check the node's firewall (iptables-save, nft list ruleset) and the CNI on the client's and the backend's node, that %s is the pod's port, and the path (`layerscope capture --filter 'host %s'` on both nodes)", worst.addr, hostOf(worst.addr))
		}
	}
	return v, true
}

// silent describes a backend whose SYNs go unanswered.
const silent = "does not answer (SYN without SYN-ACK)"

// pathBreak finds where unanswered connections to a backend get lost: the
// backend's node (where an agent saw other connections to its address)
// never saw them, although they left the client's node.
func pathBreak(in *Input, views []conn, b *backendStat) (Verdict, bool) {
	ip := hostOf(b.addr)
	failedOn := map[string]bool{}
	var last api.Hop
	lastNode := ""
	for _, c := range views {
		if c.c.Backend.Addr != b.addr || !c.failed {
			continue
		}
		failedOn[c.node] = true
		for _, h := range c.c.Hops {
			if h.First.After(last.First) || lastNode == "" {
				last, lastNode = h, c.node
			}
		}
	}
	home := ""
	for ni := range in.Nodes {
		n := &in.Nodes[ni]
		if failedOn[n.Node] {
			continue
		}
		for i := range n.Connections {
			c := &n.Connections[i]
			if c.Backend.IP == ip && !failing(c, in.Now) {
				home = n.Node
				break
			}
		}
	}
	if home == "" || lastNode == "" {
		return Verdict{}, false
	}
	v := Verdict{Class: Path}
	v.Summary = fmt.Sprintf("path: %d connections to %s left %s (last seen on %s, %s) and never reached %s, where the agent sees other traffic of %s",
		b.failed, b.addr, lastNode, last.Interface, last.Role, home, ip)
	v.Evidence = append(v.Evidence, fmt.Sprintf("backend %s: %d connections, %d failed (%s)", b.addr, b.attempts, b.failed, topCounts(b.outcomes, 6)))
	if pv, ok := pathEvidence(views, b.addr); ok {
		v.Evidence = append(v.Evidence, pv)
	}
	if note, ok := unexplainedNote(views, b.addr); ok {
		v.Evidence = append(v.Evidence, note)
	}
	v.Next = fmt.Sprintf("the hop between %s/%s and %s drops them: check the overlay (VXLAN UDP 4789 allowed between the nodes? `ip -s link show` on both ends), routes to %s's pod CIDR, and capture on both nodes: layerscope capture --filter 'host %s'",
		lastNode, last.Interface, home, home, ip)
	return v, true
}

// pathEvidence says on which hops the failed connections to addr were
// seen and whether a hop with server packets exists.
func pathEvidence(conns []conn, addr string) (string, bool) {
	seen := map[string]int{}
	for _, c := range conns {
		if c.c.Backend.Addr != addr || !c.failed {
			continue
		}
		for _, h := range c.c.Hops {
			seen[c.node+"/"+h.Interface]++
		}
	}
	if len(seen) == 0 {
		return "", false
	}
	return "failed connections seen on " + topCounts(seen, 8), true
}

func describeFailure(outcomes map[string]int) string {
	switch {
	case outcomes["refused"] > 0:
		return "refuses (RST to the SYN)"
	case outcomes["reset"] > 0:
		return "resets established connections"
	case outcomes["timeout"] > 0 || outcomes["syn_sent"] > 0:
		return silent
	case outcomes["unreplied"] > 0:
		return "does not reply"
	}
	return "fails"
}

func ratioText(failed, total int) string {
	if total == 0 || failed == 0 {
		return "none"
	}
	if failed == total {
		return "all"
	}
	n := float64(total) / float64(failed)
	return fmt.Sprintf("about 1 in %.0f", n)
}

func hostOf(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().String()
	}
	return addr
}
