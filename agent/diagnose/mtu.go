package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

func mtuVerdict(in *Input, conns []conn, win string) (Verdict, bool) {
	var lines []string
	minMTU := uint32(0)
	reports := 0
	for _, c := range conns {
		for _, r := range c.c.PMTU {
			reports += max(r.Count, 1)
			if minMTU == 0 || r.MTU < minMTU {
				minMTU = r.MTU
			}
		}
	}
	for _, n := range in.Nodes {
		if n.Status == nil {
			continue
		}
		for _, r := range n.Status.MTU.Reports {
			if !aboutFrom(in, r.Flow) {
				continue
			}
			if reports == 0 {
				reports += max(r.Count, 1)
			}
			if minMTU == 0 || r.MTU < minMTU {
				minMTU = r.MTU
			}
			lines = append(lines, fmt.Sprintf("node %s: frag-needed MTU %d from %s about %s on %s (%d×, last %s)", n.Node, r.MTU, r.Reporter, r.Flow, r.Interface, r.Count, r.Time.Format(time.RFC3339)))
		}
		for _, m := range n.Status.MTU.Mismatches {
			switch {
			case m.Cleared == nil:
				lines = append(lines, fmt.Sprintf("node %s: interface %s has MTU %d, its path carries %d (%s)", n.Node, m.Interface, m.Actual, m.Expected, m.Reason))
			case in.Since <= 0 || !m.Cleared.Before(in.Now.Add(-in.Since)):
				lines = append(lines, fmt.Sprintf("node %s: interface %s had MTU %d, its path carries %d (%s), from %s until %s", n.Node, m.Interface, m.Actual, m.Expected, m.Reason,
					m.Since.Format(time.RFC3339), m.Cleared.Format(time.RFC3339)))
			}
		}
		for _, o := range n.Status.MTU.Oversize {
			if in.From.has(o.Source, 0) {
				lines = append(lines, fmt.Sprintf("node %s: %s sent a %d-byte %s packet to %s, the path MTU is %d", n.Node, o.Source, o.Size, o.Protocol, o.Dest, o.PathMTU))
			}
		}
	}
	if minMTU == 0 {
		return Verdict{}, false
	}
	v := Verdict{Class: MTU}
	v.Summary = fmt.Sprintf("L3 MTU mismatch: packets from %s to %s are too big for the path; frag-needed MTU %d (%d reports in the last %s)", in.From.Arg, in.To.Arg, minMTU, reports, win)
	v.Evidence = lines
	v.Next = fmt.Sprintf("ip link show in FROM's pod and on the node: the pod's MTU must not exceed %d (the overlay's); fix the CNI's MTU setting, and check that ICMP frag-needed is not filtered", minMTU)
	return v, true
}

// aboutFrom reports whether a PMTU report's flow ("proto src:port ->
// dst:port") was sent by FROM.
func aboutFrom(in *Input, flow string) bool {
	f := strings.Fields(flow)
	for _, w := range f {
		if ap, err := netip.ParseAddrPort(w); err == nil {
			return slices.Contains(in.From.Addrs, ap.Addr().Unmap())
		}
		if a, err := netip.ParseAddr(w); err == nil {
			return slices.Contains(in.From.Addrs, a.Unmap())
		}
	}
	return false
}
