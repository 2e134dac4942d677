package agent

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/pipeline"
	"github.com/layerscope/layerscope/exporters/otlp"
)

// maxPMTUReports bounds the PMTU reports the agent keeps for /api/v1/pmtu.
const maxPMTUReports = 256

// PMTUReport is one ICMP fragmentation-needed or packet-too-big message,
// attributed to the connection it was about. JSON field names are part of
// the agent's API.
type PMTUReport struct {
	Time      time.Time `json:"time"` // of the last message
	Interface string    `json:"interface"`
	Reporter  string    `json:"reporter"` // the hop whose next link was too small
	MTU       uint32    `json:"mtu"`
	// Quoted is the header the reporter quoted: the packet as it was when
	// it was too big (after DNAT, if any).
	Quoted string `json:"quoted"`
	// Flow is the connection the message is about, as its client sent it:
	// through conntrack, before DNAT (client → service). Translated tells
	// whether conntrack mapped it back; Attributed whether conntrack knew
	// the connection at all.
	Flow       string `json:"flow"`
	Translated bool   `json:"translated"`
	Attributed bool   `json:"attributed"`
	Count      int    `json:"count"` // messages with the same flow and MTU

	key      flow.Key   // Flow, for traces
	v6       bool       // an ICMPv6 packet-too-big
	reporter netip.Addr // Reporter
}

// OversizeReport is the last packet an interface's pod sent that is too
// big for its path.
type OversizeReport struct {
	Time      time.Time `json:"time"`
	Interface string    `json:"interface"`
	Source    string    `json:"source"` // the pod's address
	Dest      string    `json:"destination"`
	Protocol  string    `json:"protocol"`
	Size      uint32    `json:"size"`
	PathMTU   uint32    `json:"path_mtu"`
}

// pmtuLog keeps the latest PMTU reports, one per flow and MTU.
type pmtuLog struct {
	mu      sync.Mutex
	reports []PMTUReport // oldest first
	buf     []pipeline.PMTUEvent
}

// collectPMTU reads the workers' new PMTU events and attributes each
// through conntrack to its connection's original direction.
func (a *Agent) collectPMTU() {
	c := a.capture
	ct := a.conntrack.Load()
	p := &a.pmtu
	p.mu.Lock()
	defer p.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, lw := range c.live {
		p.buf = lw.w.PMTUEvents(p.buf[:0], lw.pmtu)
		for i := range p.buf {
			ev := &p.buf[i]
			lw.pmtu = ev.Seq
			r := PMTUReport{
				Time: time.Unix(0, ev.Time), Interface: lw.link.Name, Reporter: ev.Reporter.String(),
				MTU: ev.MTU, Quoted: ev.Inner.String(), Flow: ev.Inner.String(), Count: 1,
				key: ev.Inner, v6: ev.Family == 6, reporter: ev.Reporter,
			}
			if ct != nil && ev.Quoted && ev.InnerPorts {
				if nat, ok := ct.Lookup(ev.Inner); ok {
					tr := translation(&nat)
					r.Flow, r.Attributed, r.Translated, r.key = tr.Original.String(), true, tr.DNAT(), tr.Original
				}
			}
			p.add(r, a)
		}
	}
}

func (p *pmtuLog) add(r PMTUReport, a *Agent) {
	for i := range p.reports {
		if q := &p.reports[i]; q.Flow == r.Flow && q.MTU == r.MTU && q.Interface == r.Interface {
			q.Count++
			q.Time = r.Time
			return
		}
	}
	a.log.Debug("path MTU report", "flow", r.Flow, "mtu", r.MTU, "reporter", r.Reporter, "quoted", r.Quoted, "interface", r.Interface)
	if len(p.reports) == maxPMTUReports {
		copy(p.reports, p.reports[1:])
		p.reports = p.reports[:len(p.reports)-1]
	}
	p.reports = append(p.reports, r)
}

// icmpFor returns the PMTU reports about the connection whose original
// (pre-DNAT) tuple is k, as trace events.
func (a *Agent) icmpFor(k flow.Key) []otlp.ICMPError {
	p := &a.pmtu
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []otlp.ICMPError
	for i := range p.reports {
		r := &p.reports[i]
		if r.key != k {
			continue
		}
		e := otlp.ICMPError{Time: r.Time.UnixNano(), V6: r.v6, MTU: uint16(min(r.MTU, 65535)), From: r.reporter, Interface: r.Interface}
		if r.v6 {
			e.Type = 2 // packet too big
		} else {
			e.Type, e.Code = 3, 4 // fragmentation needed
		}
		out = append(out, e)
	}
	return out
}

// servePMTU answers GET /api/v1/pmtu with the PMTU reports, newest first,
// and each pod interface's last oversize packet.
func (a *Agent) servePMTU(w http.ResponseWriter, _ *http.Request) {
	a.collectPMTU()
	var out struct {
		Reports  []PMTUReport     `json:"reports"`
		Oversize []OversizeReport `json:"oversize"`
	}
	a.pmtu.mu.Lock()
	for i := len(a.pmtu.reports) - 1; i >= 0; i-- {
		out.Reports = append(out.Reports, a.pmtu.reports[i])
	}
	a.pmtu.mu.Unlock()
	c := a.capture
	c.mu.Lock()
	for _, lw := range c.live {
		if ev, ok := lw.w.LastOversize(); ok {
			out.Oversize = append(out.Oversize, OversizeReport{
				Time: time.Unix(0, ev.Time), Interface: lw.link.Name, Source: ev.Src.String(), Dest: ev.Dst.String(),
				Protocol: flow.ProtoName(ev.Proto), Size: ev.Size, PathMTU: ev.Limit,
			})
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
