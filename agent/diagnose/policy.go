package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/layerscope/layerscope/agent/api"
)

// denial is one policy denying some of the failed connections, as the
// agents explained them.
type denial struct {
	api.PolicyDenial
	conns map[string]bool // client→backend/proto of the connections it denied
}

// policyVerdict names the NetworkPolicies that deny the failed
// connections, when the agents evaluated them and found a denial.
func policyVerdict(in *Input, conns, views []conn, win string) (Verdict, bool) {
	by := map[string]*denial{}
	for _, c := range views {
		p := c.c.Policy
		if !c.failed || p == nil || p.Verdict != api.PolicyDenied {
			continue
		}
		for _, d := range p.Denials {
			k := d.Direction + " " + d.Namespace + "/" + d.Pod + " " + d.Policy
			if by[k] == nil {
				by[k] = &denial{PolicyDenial: d, conns: map[string]bool{}}
			}
			by[k].conns[connKey(c.c)] = true
		}
	}
	if len(by) == 0 {
		return Verdict{}, false
	}
	ds := make([]*denial, 0, len(by))
	for _, d := range by {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool {
		if len(ds[i].conns) != len(ds[j].conns) {
			return len(ds[i].conns) > len(ds[j].conns)
		}
		if ds[i].Direction != ds[j].Direction {
			return ds[i].Direction == "egress" // the client's side first
		}
		return ds[i].Policy < ds[j].Policy
	})
	failed := 0
	for _, c := range conns {
		if c.failed {
			failed++
		}
	}
	v := Verdict{Class: Policy}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%s of %s/%s denied by NetworkPolicy %s/%s", d.Direction, d.Namespace, d.Pod, d.Namespace, d.Policy)
	}
	v.Summary = fmt.Sprintf("policy: %s: %d of %d connections from %s to %s failed in the last %s",
		strings.Join(parts, "; "), failed, len(conns), in.From.Arg, in.To.Arg, win)
	for _, d := range ds {
		v.Evidence = append(v.Evidence, fmt.Sprintf("%s of %s/%s: selected by %s; the rule to change: %s: %s (%d connections)",
			d.Direction, d.Namespace, d.Pod, strings.Join(d.Policies, ", "), d.Rule, d.Change, len(d.conns)))
	}
	v.Evidence = append(v.Evidence, dropEvidence(views))
	d := ds[0]
	side := "the client"
	if d.Direction == "ingress" {
		side = "the backend"
	}
	v.Next = fmt.Sprintf("kubectl -n %s get networkpolicy %s -o yaml: %s is isolated for %s; allow %s in %s, or add a policy selecting %s that allows it",
		d.Namespace, strings.Join(d.Policies, " "), side, d.Direction, peerText(in, d.Direction), d.Rule, d.Pod)
	return v, true
}

// peerText is what an allowing rule of direction would have to admit.
func peerText(in *Input, direction string) string {
	if direction == "egress" {
		return in.To.Arg + " (to)"
	}
	return in.From.Arg + " (from)"
}

func connKey(c *api.Connection) string {
	return c.Client.Addr + "→" + c.Backend.Addr + "/" + c.Protocol
}

// dropEvidence says where the failed connections' packets were seen and
// that they never reached the backend's pod interface: the SYNs, the
// times, the hops.
func dropEvidence(views []conn) string {
	syns, n := 0, 0
	var first, last time.Time
	seen := map[string]int{}
	atBackend := false
	keys := map[string]bool{}
	for _, c := range views {
		if !c.failed {
			continue
		}
		if !keys[connKey(c.c)] {
			keys[connKey(c.c)] = true
			n++
			if c.c.TCP != nil {
				syns += c.c.TCP.SYNs
			}
		}
		if first.IsZero() || c.c.Start.Before(first) {
			first = c.c.Start
		}
		if c.c.Last.After(last) {
			last = c.c.Last
		}
		for _, h := range c.c.Hops {
			seen[fmt.Sprintf("%s/%s (%s, %s)", c.node, h.Interface, h.Role, h.Direction)]++
			// The client's packets leave the host into a pod's interface
			// only at the backend's veth.
			atBackend = atBackend || h.Role == "pod" && h.Direction == "out"
		}
	}
	what := fmt.Sprintf("%d failed connections", n)
	if syns > 0 {
		what = fmt.Sprintf("SYN×%d in %d connections", syns, n)
	}
	s := fmt.Sprintf("%s, first %s, last %s, seen on %s", what, first.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano), topCounts(seen, 8))
	if atBackend {
		return s + "; they reached the backend's pod interface"
	}
	return s + "; never on the backend's pod interface"
}

// unexplainedNote says, when the agents evaluated the NetworkPolicies of
// the failed connections to addr (any backend when addr is empty) and
// none denies them, that the drop is
// not a policy's; ok is false when nothing was evaluated or a policy does
// deny them.
func unexplainedNote(views []conn, addr string) (string, bool) {
	allowed := map[string]int{}
	n := 0
	for _, c := range views {
		p := c.c.Policy
		if addr != "" && c.c.Backend.Addr != addr || !c.failed || p == nil {
			continue
		}
		switch p.Verdict {
		case api.PolicyDenied:
			return "", false
		case api.PolicyUnexplained:
			n++
			for _, r := range p.AllowedBy {
				allowed[r]++
			}
			if len(p.AllowedBy) == 0 {
				allowed["no NetworkPolicy selects the client or the backend"]++
			}
		}
	}
	if n == 0 {
		return "", false
	}
	return fmt.Sprintf("NetworkPolicies do not explain the drop (%s): the CNI or the node dropped them", topCounts(allowed, 4)), true
}
