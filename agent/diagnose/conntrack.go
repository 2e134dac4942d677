package diagnose

import (
	"fmt"

	"github.com/layerscope/layerscope/agent/api"
)

func conntrackVerdict(in *Input, conns []conn, failed int, win string) (Verdict, bool) {
	var lines []string
	for _, n := range in.Nodes {
		ct := statusCT(n.Status)
		if ct == nil {
			continue
		}
		if !exhausted(ct) {
			continue
		}
		line := fmt.Sprintf("node %s: conntrack %d of %d entries (%.0f%%), drop %d, insert_failed %d, early_drop %d",
			n.Node, ct.Entries, ct.Limit, 100*ct.Fill, ct.Drop, ct.InsertFailed, ct.EarlyDrop)
		if r := ct.Recent; r != nil {
			line += fmt.Sprintf("; in the last %s drop %d, insert_failed %d, early_drop %d",
				humanWindow(r.Until.Sub(r.Since)), r.Drop, r.InsertFailed, r.EarlyDrop)
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 || failed == 0 {
		return Verdict{}, false
	}
	v := Verdict{Class: Conntrack}
	v.Summary = fmt.Sprintf("conntrack exhaustion: the table is full or dropping, and %d of %d connections from %s to %s failed in the last %s", failed, len(conns), in.From.Arg, in.To.Arg, win)
	v.Evidence = append(lines, outcomeLine(conns))
	v.Next = "conntrack -S (drop, insert_failed per CPU), conntrack -C against sysctl net.netfilter.nf_conntrack_max, and `layerscope status` for who fills the table; raise nf_conntrack_max or shorten the TIME_WAIT timeouts"
	return v, true
}

// exhausted reports whether a node's conntrack table is full or dropping
// now: nearly full, or dropping new entries (drop: none could be made;
// early_drop: unreplied ones evicted to make room) in the recent period.
// The kernel's counters only grow, so a drop of an hour ago is no
// evidence; insert_failed alone is a race of two packets of one new flow
// (parallel DNS queries, typically), not a full table. An agent without
// recent counts is judged by its totals.
func exhausted(ct *api.ConntrackStatus) bool {
	if ct.Fill >= 0.95 {
		return true
	}
	if r := ct.Recent; r != nil {
		return r.Drop+r.EarlyDrop > 0
	}
	return ct.Drop+ct.InsertFailed+ct.EarlyDrop > 0
}

func statusCT(s *api.Status) *api.ConntrackStatus {
	if s == nil {
		return nil
	}
	return s.Conntrack
}
