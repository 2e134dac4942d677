package render

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/layerscope/layerscope/agent/api"
)

// WriteStatus prints the status summary in sections.
func WriteStatus(w io.Writer, s *api.Status, p *Printer) {
	bad := func(cond bool, v string) string {
		if cond {
			return p.paint(sgrRed+sgrBold, v)
		}
		return p.paint(sgrGreen, v)
	}
	ready := bad(!s.Ready, map[bool]string{true: "ready", false: "NOT READY"}[s.Ready])
	fmt.Fprintf(w, "%s  node %s  agent %s  %s\n\n", p.paint(sgrBold, "layerscope status"), s.Node, s.Version, ready)

	cs := &s.Capture
	names := make([]string, 0, len(cs.Interfaces))
	for _, i := range cs.Interfaces {
		names = append(names, i.Name+"("+i.Role+")")
	}
	fmt.Fprintf(w, "Capture    %d interfaces: %s\n", len(cs.Interfaces), strings.Join(names, " "))
	fmt.Fprintf(w, "           packets %d  drops %s  queue freezes %d\n", cs.Packets,
		bad(cs.Drops > 0, fmt.Sprintf("%d (%.2f%%)", cs.Drops, 100*cs.DropRatio)), cs.Freezes)
	ft := &s.FlowTable
	fmt.Fprintf(w, "Flow table %d / %d flows  evictions %d  refused %s\n", ft.Entries, ft.Capacity, ft.Evictions, bad(ft.Refused > 0, fmt.Sprint(ft.Refused)))

	if ct := s.Conntrack; ct != nil {
		eta := "not growing"
		if ct.ETA != nil {
			eta = (time.Duration(*ct.ETA) * time.Second).String()
		}
		fmt.Fprintf(w, "Conntrack  %d / %d entries (%s)  growth %.1f/s  full in %s\n", ct.Entries, ct.Limit,
			bad(ct.Fill >= 0.9, fmt.Sprintf("%.1f%%", 100*ct.Fill)), ct.Growth, eta)
		fmt.Fprintf(w, "           drop %s  early_drop %d  insert_failed %s  events lost %d\n",
			bad(ct.Drop > 0, fmt.Sprint(ct.Drop)), ct.EarlyDrop, bad(ct.InsertFailed > 0, fmt.Sprint(ct.InsertFailed)), ct.EventsLost)
	} else {
		fmt.Fprintln(w, "Conntrack  not watched (--no-conntrack)")
	}

	m := &s.MTU
	if len(m.Mismatches) == 0 && len(m.Reports) == 0 && len(m.Oversize) == 0 {
		fmt.Fprintf(w, "MTU        %s\n", p.paint(sgrGreen, "no finding"))
	} else {
		fmt.Fprintln(w, "MTU")
	}
	for _, mm := range m.Mismatches {
		if mm.Cleared != nil {
			fmt.Fprintf(w, "  %s %s MTU %d, path carries %d (%s), cleared %s\n", p.paint(sgrYellow, "was"), mm.Interface, mm.Actual, mm.Expected, mm.Reason, mm.Cleared.Format(time.TimeOnly))
			continue
		}
		fmt.Fprintf(w, "  %s %s MTU %d, path carries %d (%s)\n", p.paint(sgrRed+sgrBold, "mismatch"), mm.Interface, mm.Actual, mm.Expected, mm.Reason)
	}
	for _, r := range m.Reports {
		fmt.Fprintf(w, "  %s MTU %d from %s for %s ×%d on %s\n", p.paint(sgrRed, "frag-needed"), r.MTU, r.Reporter, r.Flow, r.Count, r.Interface)
	}
	for _, o := range m.Oversize {
		fmt.Fprintf(w, "  %s %s %s → %s %d bytes, path MTU %d\n", p.paint(sgrYellow, "oversize"), o.Interface, o.Source, o.Dest, o.Size, o.PathMTU)
	}

	fmt.Fprintln(w, "Services   (last 5 minutes, most failures first)")
	if len(s.Services) == 0 {
		fmt.Fprintln(w, "  no DNATed connection seen")
	}
	for _, sv := range s.Services {
		dead := ""
		if sv.Dead {
			dead = " " + p.paint(sgrRed+sgrBold, "DEAD")
		}
		fmt.Fprintf(w, "  %-22s → %-22s %s  %d/%d failed (%s)%s\n", sv.Service, sv.Backend, sv.Protocol, sv.Failed, sv.Attempts,
			bad(sv.Failed > 0, fmt.Sprintf("%.0f%%", 100*sv.FailureRatio)), dead)
	}
	for _, e := range s.Endpoints {
		if e.Ready == 0 {
			fmt.Fprintf(w, "  %s %s/%s: its EndpointSlices list no ready endpoint\n", p.paint(sgrRed+sgrBold, "NO ENDPOINTS"), e.Namespace, e.Service)
		}
	}
	d := &s.DNS
	rc := make([]string, 0, len(d.ByRcode))
	for _, k := range []string{"NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP"} {
		if n := d.ByRcode[k]; n > 0 {
			rc = append(rc, fmt.Sprintf("%s %d", k, n))
		}
	}
	fmt.Fprintf(w, "DNS        queries %d  responses %d  errors %s  %s\n", d.Queries, d.Responses,
		bad(d.Errors > 0, fmt.Sprintf("%d (%.1f%%)", d.Errors, 100*d.ErrorRatio)), strings.Join(rc, "  "))
	h := &s.History
	fmt.Fprintf(w, "History    %d / %d events  followers %d  lost %d  dropped %d\n", h.Len, h.Size, h.Followers, h.FollowerLost, h.FollowersDropped)
}
