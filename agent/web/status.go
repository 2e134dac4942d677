package web

import (
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/agent/history"
)

// Bounds of the status summary's lists.
const (
	statusTopServices = 10
	statusPMTUReports = 10
)

func (h *Handlers) serveStatus(w http.ResponseWriter, r *http.Request) {
	since, err := api.ParseStatusSince(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s := h.status(time.Now(), since)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

// status builds the node's one-screen summary, with the recent counts
// over since.
func (h *Handlers) status(now time.Time, since time.Duration) *api.Status {
	s := &api.Status{Time: now, Node: h.cfg.Node, Version: h.cfg.Version, Ready: h.ready()}
	h.captureStatus(&s.Capture)
	ft := h.cfg.Flows.Stats()
	s.FlowTable = api.FlowTableStatus{Entries: int(ft.Entries), Capacity: ft.Capacity, Evictions: ft.Evictions, Refused: ft.Refused}
	if w := h.cfg.Conntrack(); w != nil {
		snap := w.Snapshot()
		ct := &api.ConntrackStatus{
			Entries: snap.Entries, Limit: snap.Limit, Fill: snap.FillRatio, Growth: snap.GrowthRate,
			Drop: snap.Stats.Drop, EarlyDrop: snap.Stats.EarlyDrop, InsertFailed: snap.Stats.InsertFailed,
			EventsLost: snap.Health.EventsLost,
		}
		if eta := snap.ExhaustionETA; !math.IsInf(eta, 0) && !math.IsNaN(eta) {
			ct.ETA = &eta
		}
		if rec, ok := w.Recent(since); ok {
			ct.Recent = &api.ConntrackRecent{Since: rec.Since, Until: rec.Until,
				Drop: rec.Drop, EarlyDrop: rec.EarlyDrop, InsertFailed: rec.InsertFailed}
		}
		s.Conntrack = ct
	}
	h.mtuStatus(&s.MTU)
	h.servicesStatus(s, now)
	h.endpointsStatus(s)
	dnsStatus(&s.DNS, &ft)
	h.historyStatus(s)
	return s
}

func (h *Handlers) captureStatus(cs *api.CaptureStatus) {
	live, retired := h.cfg.Rings.Captured()
	cs.Packets, cs.Drops, cs.Freezes = retired.Packets, retired.Drops, retired.QueueFreezes
	cs.Interfaces = []api.Interface{}
	for _, at := range live {
		ifc := api.Interface{Name: at.Link.Name, Kind: at.Link.Kind.String(), Role: at.Link.Role.String(), MTU: at.Link.MTU}
		if at.OK {
			cs.Packets += at.Stats.Packets
			cs.Drops += at.Stats.Drops
			cs.Freezes += at.Stats.QueueFreezes
			ifc.Drops = at.Stats.Drops
		}
		cs.Interfaces = append(cs.Interfaces, ifc)
	}
	sort.Slice(cs.Interfaces, func(i, j int) bool { return cs.Interfaces[i].Name < cs.Interfaces[j].Name })
	if n := cs.Packets + cs.Drops; n > 0 {
		cs.DropRatio = float64(cs.Drops) / float64(n)
	}
}

// mtuStatus reads the path ticker's cached results: the MTU mismatches
// present or recently cleared, the newest PMTU reports and each pod
// interface's last oversize packet.
func (h *Handlers) mtuStatus(m *api.MTUStatus) {
	m.Mismatches, m.Reports, m.Oversize = []api.MTUMismatch{}, []api.PMTUReport{}, []api.OversizeReport{}
	if h.cfg.MTU != nil {
		for _, x := range h.cfg.MTU.Recent() {
			v := api.MTUMismatch{Interface: x.Interface, Expected: x.Expected, Actual: x.Actual, Reason: x.Reason.String(), Since: x.Since}
			if !x.Cleared.IsZero() {
				t := x.Cleared
				v.Cleared = &t
			}
			m.Mismatches = append(m.Mismatches, v)
		}
	}
	for _, r := range h.cfg.PMTU.Newest(statusPMTUReports) {
		m.Reports = append(m.Reports, apiPMTU(&r))
	}
	m.Oversize = append(m.Oversize, h.oversize()...)
}

// oversize returns the last oversize packet of each pod interface.
func (h *Handlers) oversize() []api.OversizeReport {
	var out []api.OversizeReport
	for _, o := range h.cfg.Rings.Oversize() {
		out = append(out, api.OversizeReport{
			Time: time.Unix(0, o.Time), Interface: o.Interface, Source: o.Src.String(), Dest: o.Dst.String(),
			Protocol: flow.ProtoName(o.Proto), Size: o.Size, PathMTU: o.Limit,
		})
	}
	return out
}

func (h *Handlers) servicesStatus(s *api.Status, now time.Time) {
	backends, _ := h.cfg.Services.Snapshot(now.UnixNano())
	sort.SliceStable(backends, func(i, j int) bool {
		if backends[i].Failed != backends[j].Failed {
			return backends[i].Failed > backends[j].Failed
		}
		return backends[i].FailureRatio() > backends[j].FailureRatio()
	})
	s.Services = []api.ServiceStatus{}
	for i := range backends {
		if len(s.Services) == statusTopServices {
			break
		}
		b := &backends[i]
		s.Services = append(s.Services, api.ServiceStatus{
			Service: b.Service.String(), Backend: b.Backend.String(), Protocol: flow.ProtoName(b.Proto),
			Attempts: b.Attempts, Failed: b.Failed, FailureRatio: b.FailureRatio(), Dead: b.Dead,
		})
	}
}

// endpointsStatus lists the ready endpoint count of every Service the
// Kubernetes metadata knows.
func (h *Handlers) endpointsStatus(s *api.Status) {
	if h.cfg.Kube == nil {
		return
	}
	for _, e := range h.cfg.Kube.Endpoints() {
		s.Endpoints = append(s.Endpoints, api.ServiceEndpoints{Namespace: e.Namespace, Service: e.Name, Ready: e.Ready})
	}
}

// dnsStatus counts the DNS messages the flow table saw since the agent
// started.
func dnsStatus(d *api.DNSStatus, ft *flowtable.Stats) {
	d.ByRcode = map[string]uint64{}
	d.Queries = ft.Requests[flow.AppDNS]
	for code, n := range ft.Responses[flow.AppDNS] {
		if n == 0 {
			continue
		}
		d.ByRcode[flow.Rcode(code).String()] = n
		d.Responses += n
		if code != 0 {
			d.Errors += n
		}
	}
	if d.Responses > 0 {
		d.ErrorRatio = float64(d.Errors) / float64(d.Responses)
	}
}

// historyStatus fills the history's accounting.
func (h *Handlers) historyStatus(s *api.Status) {
	ring := h.cfg.History
	st := ring.Stats()
	hs := &s.History
	hs.Size, hs.Len, hs.Overwritten, hs.Followers = st.Size, st.Len, st.Overwritten, st.Subscribers
	hs.FollowerLost, hs.FollowersDropped = st.FollowerLost, h.dropped.Load()
	for _, n := range st.Added {
		hs.Added += n
	}
	if buf, _, _ := ring.Read(0, make([]history.Entry, 0, 1)); len(buf) == 1 {
		t := time.Unix(0, buf[0].Time)
		hs.Oldest = &t
	}
}
