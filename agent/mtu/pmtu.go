package mtu

import (
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// MaxPMTUReports bounds the reports a PMTULog keeps.
const MaxPMTUReports = 256

// PMTUReport is one ICMP fragmentation-needed or packet-too-big message,
// attributed to the connection it was about.
type PMTUReport struct {
	Time      time.Time // of the last message
	Interface string
	Reporter  netip.Addr // the hop whose next link was too small
	MTU       uint32
	// Quoted is the header the reporter quoted: the packet as it was when
	// it was too big (after DNAT, if any).
	Quoted flow.Key
	// Flow is the connection the message is about, as its client sent it:
	// through conntrack, before DNAT (client → service). Translated tells
	// whether conntrack mapped it back; Attributed whether conntrack knew
	// the connection at all.
	Flow       flow.Key
	Translated bool
	Attributed bool
	Count      int  // messages with the same flow and MTU
	V6         bool // an ICMPv6 packet-too-big
}

// PMTULog keeps the latest PMTU reports, one per flow, MTU and interface.
// A nil *PMTULog holds none.
// It is safe for concurrent use: the agent's path ticker adds, the API,
// the status and the tracer read.
type PMTULog struct {
	log     *slog.Logger
	mu      sync.Mutex
	reports []PMTUReport // oldest first
}

// NewPMTULog returns an empty log that logs each new report at Debug to
// log (nil: slog.Default()).
func NewPMTULog(log *slog.Logger) *PMTULog {
	if log == nil {
		log = slog.Default()
	}
	return &PMTULog{log: log}
}

// Add records r, or counts it on the report of the same flow, MTU and
// interface.
func (p *PMTULog) Add(r PMTUReport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.reports {
		if q := &p.reports[i]; q.Flow == r.Flow && q.MTU == r.MTU && q.Interface == r.Interface {
			q.Count++
			q.Time = r.Time
			return
		}
	}
	p.log.Debug("path MTU report", "flow", r.Flow.String(), "mtu", r.MTU, "reporter", r.Reporter.String(), "quoted", r.Quoted.String(), "interface", r.Interface)
	if len(p.reports) == MaxPMTUReports {
		copy(p.reports, p.reports[1:])
		p.reports = p.reports[:len(p.reports)-1]
	}
	p.reports = append(p.reports, r)
}

// Newest returns at most n reports (n <= 0: all), newest first.
func (p *PMTULog) Newest(n int) []PMTUReport {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []PMTUReport
	for i := len(p.reports) - 1; i >= 0 && (n <= 0 || len(out) < n); i-- {
		out = append(out, p.reports[i])
	}
	return out
}

// About returns the reports whose Flow is one of keys, oldest first.
func (p *PMTULog) About(keys ...flow.Key) []PMTUReport {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []PMTUReport
	for i := range p.reports {
		if slices.Contains(keys, p.reports[i].Flow) {
			out = append(out, p.reports[i])
		}
	}
	return out
}
