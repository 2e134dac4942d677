package correlate

import (
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// ServicesConfig configures a Services tally. The zero value means the
// defaults of each field.
type ServicesConfig struct {
	// MaxSeries bounds the (service, backend, protocol) combinations kept;
	// connections of further ones are counted in Overflow. Zero means 4096.
	MaxSeries int
	// Window is the span of the failure ratio behind dead-backend detection.
	// Zero means 5 minutes.
	Window time.Duration
	// DeadAfter is the number of consecutive failed connections (refused,
	// timed out or reset, see Conn.Failed) after which a backend is
	// reported dead, as consecutive-failure outlier detection does; a
	// completed connection clears it, and so does one its client aborted
	// after the backend answered (Conn.ClientAborted). Consecutive is in the order of the connections' last
	// packets, not of their records' arrival: a completed connection whose
	// record ends late (idle expiry) does not clear failures that came
	// after it. Zero means 3.
	DeadAfter int
}

const windowBuckets = 10

// bucket counts the connections that ended in one slice of the window.
type bucket struct {
	start         int64 // unix ns
	total, failed uint64
}

type seriesKey struct {
	service, backend netip.AddrPort
	proto            uint8
}

type series struct {
	outcomes [flow.NumOutcomes]uint64
	win      [windowBuckets]bucket
	// okAt is the last packet time of the latest completed connection
	// (hasOK: there was one); fails holds the last packet times of up to
	// DeadAfter latest failed connections after it.
	okAt  int64
	hasOK bool
	fails []int64
}

// failed records a failed connection whose last packet was at t.
func (sr *series) failed(t int64, keep int) {
	if sr.hasOK && t <= sr.okAt {
		return // a completed connection came after it
	}
	if len(sr.fails) < keep {
		sr.fails = append(sr.fails, t)
		return
	}
	oldest := 0
	for i, f := range sr.fails {
		if f < sr.fails[oldest] {
			oldest = i
		}
	}
	if t > sr.fails[oldest] {
		sr.fails[oldest] = t
	}
}

// completed records a completed connection whose last packet was at t: the
// failures before it no longer count.
func (sr *series) completed(t int64) {
	if sr.hasOK && t <= sr.okAt {
		return
	}
	sr.okAt, sr.hasOK = t, true
	kept := sr.fails[:0]
	for _, f := range sr.fails {
		if f > t {
			kept = append(kept, f)
		}
	}
	sr.fails = kept
}

// Services tallies DNATed connections by service, backend and outcome,
// counting each connection (conntrack entry ID) once whatever the number of
// its views that were captured, and tells which backends are dead. It is
// safe for concurrent use.
type Services struct {
	cfg      ServicesConfig
	slot     int64 // window bucket width, ns
	mu       sync.Mutex
	series   map[seriesKey]*series
	seen     [2]map[uint32]struct{} // connection IDs counted: current and previous generation
	rotated  int64
	overflow uint64
}

// NewServices returns an empty tally.
func NewServices(cfg ServicesConfig) *Services {
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = 4096
	}
	if cfg.Window <= 0 {
		cfg.Window = 5 * time.Minute
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 3
	}
	return &Services{
		cfg:    cfg,
		slot:   int64(cfg.Window) / windowBuckets,
		series: make(map[seriesKey]*series),
		seen:   [2]map[uint32]struct{}{{}, {}},
	}
}

// Add counts c, which ended at now (unix ns), unless its connection was
// counted already. It reports whether c was counted.
func (s *Services) Add(c *Conn, now int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Two generations of IDs, each the span of the window: an ID is
	// remembered between one and two windows, long enough for every view
	// of a connection to end, short enough for the kernel to reuse it.
	if now-s.rotated > int64(s.cfg.Window) {
		s.seen[1], s.seen[0], s.rotated = s.seen[0], map[uint32]struct{}{}, now
	}
	if _, ok := s.seen[0][c.ID]; ok {
		return false
	}
	if _, ok := s.seen[1][c.ID]; ok {
		return false
	}
	s.seen[0][c.ID] = struct{}{}
	k := seriesKey{c.Service, c.Backend, c.Proto}
	sr := s.series[k]
	if sr == nil {
		if len(s.series) >= s.cfg.MaxSeries {
			s.overflow++
			return true
		}
		sr = &series{}
		s.series[k] = sr
	}
	sr.outcomes[min(c.Outcome, flow.NumOutcomes-1)]++
	b := &sr.win[(now/s.slot)%windowBuckets]
	if start := now - now%s.slot; b.start != start {
		*b = bucket{start: start}
	}
	b.total++
	if c.Failed() {
		b.failed++
		sr.failed(c.Last, s.cfg.DeadAfter)
	} else {
		sr.completed(c.Last)
	}
	return true
}

// Backend is the tally of one backend of one service.
type Backend struct {
	Service, Backend netip.AddrPort
	Proto            uint8
	// Outcomes counts connections since start by outcome.
	Outcomes [flow.NumOutcomes]uint64
	// Attempts and Failed count the connections that ended within the
	// window, and those of them that failed (Conn.Failed).
	Attempts, Failed uint64
	// Dead reports that the backend's latest connections all failed (see
	// ServicesConfig.DeadAfter).
	Dead bool
}

// FailureRatio is Failed/Attempts, 0 without attempts.
func (b *Backend) FailureRatio() float64 {
	if b.Attempts == 0 {
		return 0
	}
	return float64(b.Failed) / float64(b.Attempts)
}

// Snapshot returns every backend's tally at now, ordered by service and
// backend, and the connections not kept for lack of series.
func (s *Services) Snapshot(now int64) (out []Backend, overflow uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out = make([]Backend, 0, len(s.series))
	for k, sr := range s.series {
		b := Backend{Service: k.service, Backend: k.backend, Proto: k.proto, Outcomes: sr.outcomes}
		for _, w := range sr.win {
			if w.start > now-int64(s.cfg.Window) {
				b.Attempts += w.total
				b.Failed += w.failed
			}
		}
		b.Dead = len(sr.fails) >= s.cfg.DeadAfter
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Service.Compare(out[j].Service); c != 0 {
			return c < 0
		}
		if c := out[i].Backend.Compare(out[j].Backend); c != 0 {
			return c < 0
		}
		return out[i].Proto < out[j].Proto
	})
	return out, s.overflow
}
