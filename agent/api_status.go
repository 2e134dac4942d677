package agent

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
	"github.com/layerscope/layerscope/agent/links"
)

// Bounds of the status summary's lists.
const (
	statusTopServices = 10
	statusPMTUReports = 10
)

func (a *Agent) serveStatus(w http.ResponseWriter, _ *http.Request) {
	s := a.status(time.Now())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

// status builds the node's one-screen summary.
func (a *Agent) status(now time.Time) *api.Status {
	s := &api.Status{Time: now, Node: a.api.node, Version: a.cfg.Version, Ready: a.isReady()}
	a.captureStatus(&s.Capture)
	ft := a.capture.table.Stats()
	s.FlowTable = api.FlowTableStatus{Entries: int(ft.Entries), Capacity: ft.Capacity, Evictions: ft.Evictions, Refused: ft.Refused}
	if w := a.conntrack.Load(); w != nil {
		snap := w.Snapshot()
		ct := &api.ConntrackStatus{
			Entries: snap.Entries, Limit: snap.Limit, Fill: snap.FillRatio, Growth: snap.GrowthRate,
			Drop: snap.Stats.Drop, EarlyDrop: snap.Stats.EarlyDrop, InsertFailed: snap.Stats.InsertFailed,
			EventsLost: snap.Health.EventsLost,
		}
		if eta := snap.ExhaustionETA; !math.IsInf(eta, 0) && !math.IsNaN(eta) {
			ct.ETA = &eta
		}
		s.Conntrack = ct
	}
	a.mtuStatus(&s.MTU)
	a.servicesStatus(s, now)
	a.endpointsStatus(s)
	dnsStatus(&s.DNS, &ft)
	a.historyStatus(s)
	return s
}

func (a *Agent) captureStatus(cs *api.CaptureStatus) {
	c := a.capture
	c.mu.Lock()
	for _, st := range c.retired {
		cs.Packets += st.Packets
		cs.Drops += st.Drops
		cs.Freezes += st.QueueFreezes
	}
	c.mu.Unlock()
	cs.Interfaces = []api.Interface{}
	if c.manager != nil {
		for _, at := range c.manager.Attached() {
			ifc := api.Interface{Name: at.Link.Name, Kind: at.Link.Kind.String(), Role: at.Link.Role.String(), MTU: at.Link.MTU}
			if st, err := at.Ring.Stats(); err == nil {
				cs.Packets += st.Packets
				cs.Drops += st.Drops
				cs.Freezes += st.QueueFreezes
				ifc.Drops = st.Drops
			}
			cs.Interfaces = append(cs.Interfaces, ifc)
		}
	}
	sort.Slice(cs.Interfaces, func(i, j int) bool { return cs.Interfaces[i].Name < cs.Interfaces[j].Name })
	if n := cs.Packets + cs.Drops; n > 0 {
		cs.DropRatio = float64(cs.Drops) / float64(n)
	}
}

func (a *Agent) mtuStatus(m *api.MTUStatus) {
	m.Mismatches, m.Reports, m.Oversize = []api.MTUMismatch{}, []api.PMTUReport{}, []api.OversizeReport{}
	if ls, err := links.List(links.Config{NetNS: a.ns}); err == nil {
		a.mtu.observe(ls, time.Now())
	}
	m.Mismatches = a.mtu.recent()
	a.collectPMTU()
	p := &a.pmtu
	p.mu.Lock()
	for i := len(p.reports) - 1; i >= 0 && len(m.Reports) < statusPMTUReports; i-- {
		m.Reports = append(m.Reports, apiPMTU(&p.reports[i]))
	}
	p.mu.Unlock()
	c := a.capture
	c.mu.Lock()
	for _, lw := range c.live {
		if ev, ok := lw.w.LastOversize(); ok {
			m.Oversize = append(m.Oversize, api.OversizeReport{
				Time: time.Unix(0, ev.Time), Interface: lw.link.Name, Source: ev.Src.String(), Dest: ev.Dst.String(),
				Protocol: flow.ProtoName(ev.Proto), Size: ev.Size, PathMTU: ev.Limit,
			})
		}
	}
	c.mu.Unlock()
}

func (a *Agent) servicesStatus(s *api.Status, now time.Time) {
	backends, _ := a.services.Snapshot(now.UnixNano())
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
func (a *Agent) endpointsStatus(s *api.Status) {
	if a.kube == nil {
		return
	}
	for _, e := range a.kube.Store().Endpoints() {
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
		d.ByRcode[rcodeName(uint16(code))] = n
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
func (a *Agent) historyStatus(s *api.Status) {
	ring := a.api.ring
	st := ring.Stats()
	h := &s.History
	h.Size, h.Len, h.Overwritten, h.Followers = st.Size, st.Len, st.Overwritten, st.Subscribers
	h.FollowerLost, h.FollowersDropped = st.FollowerLost, a.api.dropped.Load()
	for _, n := range st.Added {
		h.Added += n
	}
	if buf, _, _ := ring.Read(0, make([]history.Entry, 0, 1)); len(buf) == 1 {
		t := time.Unix(0, buf[0].Time)
		h.Oldest = &t
	}
}
