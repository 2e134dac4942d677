package mtu

import (
	"cmp"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/internal/nsenter"
)

// Recent is how long a Monitor remembers a cleared mismatch: a mismatch
// fixed a minute ago still explains the failures of that minute.
const Recent = 10 * time.Minute

// Monitor runs Check over each listing of a namespace's links it is given
// (the agent's one path ticker), logs every mismatch once when it appears
// and once when it clears, and keeps the result for its readers: the
// metrics read Last, the status and diagnose read Recent. The zero value is
// not usable; create it with NewMonitor.
type Monitor struct {
	ns      *nsenter.NS
	log     *slog.Logger
	tracker Tracker

	mu       sync.Mutex
	families map[int]Family
	overlays string // the overlay indexes families was read for
	seen     map[Mismatch]*seen
	last     Report
}

// seen is when a mismatch was first and last found, and when it cleared
// (zero while present).
type seen struct{ first, last, cleared time.Time }

// Seen is one mismatch present now or cleared within Recent.
type Seen struct {
	Mismatch
	Since   time.Time // first found
	Cleared time.Time // zero while present
}

// NewMonitor returns a Monitor of the links of ns (nil: the caller's
// namespace), logging to log (nil: slog.Default()).
func NewMonitor(ns *nsenter.NS, log *slog.Logger) *Monitor {
	if log == nil {
		log = slog.Default()
	}
	return &Monitor{ns: ns, log: log, seen: map[Mismatch]*seen{}}
}

// Observe checks ls and records what it finds at now.
func (m *Monitor) Observe(ls []links.Link, now time.Time) Report {
	r := Check(ls, &Config{Families: m.familiesOf(ls)})
	ch := m.tracker.Update(r)
	for _, x := range ch.Added {
		m.log.Warn("MTU mismatch", "mismatch", x)
	}
	for _, x := range ch.Cleared {
		m.log.Info("MTU mismatch cleared", "mismatch", x)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = r
	for _, x := range r.Mismatches {
		s := m.seen[x]
		if s == nil || !s.cleared.IsZero() {
			s = &seen{first: now}
			m.seen[x] = s
		}
		s.last = now
	}
	for x, s := range m.seen {
		switch {
		case s.cleared.IsZero() && s.last.Before(now):
			s.cleared = now
		case !s.cleared.IsZero() && now.Sub(s.cleared) > Recent:
			delete(m.seen, x)
		}
	}
	return r
}

// Last returns the Report of the last Observe.
func (m *Monitor) Last() Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Recent returns the mismatches present at the last Observe and those
// cleared within Recent before it, present ones first, then by interface
// and time found.
func (m *Monitor) Recent() []Seen {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Seen, 0, len(m.seen))
	for x, s := range m.seen {
		out = append(out, Seen{Mismatch: x, Since: s.first, Cleared: s.cleared})
	}
	slices.SortFunc(out, func(x, y Seen) int {
		if x.Cleared.IsZero() != y.Cleared.IsZero() {
			if x.Cleared.IsZero() {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(x.Interface, y.Interface), x.Since.Compare(y.Since))
	})
	return out
}

// familiesOf returns the underlay address family of each overlay, read over
// rtnetlink only when the set of overlays changed.
func (m *Monitor) familiesOf(ls []links.Link) map[int]Family {
	key := ""
	for _, l := range ls {
		if l.Kind == links.KindVXLAN || l.Kind == links.KindGeneve {
			key += strconv.Itoa(l.Index) + ","
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if key != m.overlays || m.families == nil {
		fams, err := Families(m.ns, ls)
		if err != nil {
			m.log.Warn("overlay address families unknown; assuming IPv4 underlays", "err", err)
			return nil
		}
		m.families, m.overlays = fams, key
	}
	return m.families
}
