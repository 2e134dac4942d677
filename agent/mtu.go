package agent

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/agent/mtu"
	"github.com/layerscope/layerscope/agent/netstat"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// mtuCheck runs the MTU configuration check over the links of each scrape
// and of each path refresh (every second and when an interface comes), logs
// every mismatch once when it appears and once when it clears, and
// remembers the mismatches of the last mtuRecent for the status and
// diagnose: a mismatch fixed a minute ago still explains the failures of
// that minute.
type mtuCheck struct {
	a        *Agent
	tracker  mtu.Tracker
	mu       sync.Mutex
	families map[int]mtu.Family
	overlays string // the overlay indexes families was read for
	seen     map[mtu.Mismatch]*mtuSeen
}

// mtuSeen is when a mismatch was first and last found, and when it
// cleared (zero while present).
type mtuSeen struct{ first, last, cleared time.Time }

// mtuRecent is how long a cleared mismatch is remembered.
const mtuRecent = 10 * time.Minute

// observe checks ls and records what it finds at now.
func (c *mtuCheck) observe(ls []links.Link, now time.Time) mtu.Report {
	r := mtu.Check(ls, &mtu.Config{Families: c.familiesOf(ls)})
	ch := c.tracker.Update(r)
	for _, m := range ch.Added {
		c.a.log.Warn("MTU mismatch", "mismatch", m)
	}
	for _, m := range ch.Cleared {
		c.a.log.Info("MTU mismatch cleared", "mismatch", m)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[mtu.Mismatch]*mtuSeen{}
	}
	for _, m := range r.Mismatches {
		s := c.seen[m]
		if s == nil || !s.cleared.IsZero() {
			s = &mtuSeen{first: now}
			c.seen[m] = s
		}
		s.last = now
	}
	for m, s := range c.seen {
		switch {
		case s.cleared.IsZero() && s.last.Before(now):
			s.cleared = now
		case !s.cleared.IsZero() && now.Sub(s.cleared) > mtuRecent:
			delete(c.seen, m)
		}
	}
	return r
}

// recent returns the mismatches present now and those cleared within
// mtuRecent, present ones first.
func (c *mtuCheck) recent() []api.MTUMismatch {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]api.MTUMismatch, 0, len(c.seen))
	for m, s := range c.seen {
		v := api.MTUMismatch{Interface: m.Interface, Expected: m.Expected, Actual: m.Actual, Reason: m.Reason.String(), Since: s.first}
		if !s.cleared.IsZero() {
			t := s.cleared
			v.Cleared = &t
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(x, y api.MTUMismatch) int {
		if (x.Cleared == nil) != (y.Cleared == nil) {
			if x.Cleared == nil {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(x.Interface, y.Interface), x.Since.Compare(y.Since))
	})
	return out
}

func (c *mtuCheck) emit(e *prom.Emitter, ls []links.Link) error {
	r := c.observe(ls, time.Now())
	for _, m := range r.Mismatches {
		e.Gauge(metricdef.MTUMismatch, 1, m.Interface, strconv.Itoa(m.Expected), strconv.Itoa(m.Actual), m.Reason.String())
	}
	e.Gauge(metricdef.MTUMismatches, float64(len(r.Mismatches)))
	for _, o := range r.Overlays {
		e.Gauge(metricdef.MTUOverlayExpected, float64(o.Expected), o.Interface)
	}
	return nil
}

// familiesOf returns the underlay address family of each overlay, read over
// rtnetlink only when the set of overlays changed.
func (c *mtuCheck) familiesOf(ls []links.Link) map[int]mtu.Family {
	key := ""
	for _, l := range ls {
		if l.Kind == links.KindVXLAN || l.Kind == links.KindGeneve {
			key += strconv.Itoa(l.Index) + ","
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if key != c.overlays || c.families == nil {
		fams, err := mtu.Families(c.a.ns, ls)
		if err != nil {
			c.a.log.Warn("overlay address families unknown; assuming IPv4 underlays", "err", err)
			return nil
		}
		c.families, c.overlays = fams, key
	}
	return c.families
}

// kernelSource exports the namespace's own fragmentation counters.
func (a *Agent) kernelSource() prom.Source {
	return prom.SourceFunc{SourceName: "kernel", Fn: func(e *prom.Emitter) error {
		c, err := netstat.Read(a.ns)
		if err != nil {
			return err
		}
		v4, v6 := &c.IPv4, &c.IPv6
		e.Counter(metricdef.KReasmReqds, float64(v4.ReasmReqds), "ipv4")
		e.Counter(metricdef.KReasmOKs, float64(v4.ReasmOKs), "ipv4")
		e.Counter(metricdef.KReasmFails, float64(v4.ReasmFails), "ipv4")
		e.Counter(metricdef.KFragOKs, float64(v4.FragOKs), "ipv4")
		e.Counter(metricdef.KFragFails, float64(v4.FragFails), "ipv4")
		e.Counter(metricdef.KFragCreates, float64(v4.FragCreates), "ipv4")
		e.Counter(metricdef.KDestUnreach, float64(v4.InDestUnreachs), "ipv4", "in")
		e.Counter(metricdef.KDestUnreach, float64(v4.OutDestUnreachs), "ipv4", "out")
		if c.IPv6Present {
			e.Counter(metricdef.KReasmReqds, float64(v6.ReasmReqds), "ipv6")
			e.Counter(metricdef.KReasmOKs, float64(v6.ReasmOKs), "ipv6")
			e.Counter(metricdef.KReasmFails, float64(v6.ReasmFails), "ipv6")
			e.Counter(metricdef.KFragOKs, float64(v6.FragOKs), "ipv6")
			e.Counter(metricdef.KFragFails, float64(v6.FragFails), "ipv6")
			e.Counter(metricdef.KFragCreates, float64(v6.FragCreates), "ipv6")
			e.Counter(metricdef.KDestUnreach, float64(v6.InDestUnreachs), "ipv6", "in")
			e.Counter(metricdef.KDestUnreach, float64(v6.OutDestUnreachs), "ipv6", "out")
			e.Counter(metricdef.KPktTooBig, float64(v6.InPktTooBigs), "in")
			e.Counter(metricdef.KPktTooBig, float64(v6.OutPktTooBigs), "out")
		}
		return nil
	}}
}
