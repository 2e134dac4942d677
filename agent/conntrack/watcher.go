package conntrack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/internal/nsenter"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Defaults of Config.
const (
	DefaultStatsInterval = time.Second
	DefaultRateWindow    = 15 * time.Second
	DefaultReadBuffer    = 16 << 20
	DefaultTopN          = 10
	DefaultQueryTimeout  = 5 * time.Second
	resyncQuiet          = 200 * time.Millisecond
	resyncMaxDelay       = 2 * time.Second
)

// Config configures a Watcher. The zero value watches the caller's network
// namespace with the defaults.
type Config struct {
	// NetNS is the network namespace to watch. Nil means the namespace of
	// the calling thread. The Watcher does not close it.
	NetNS *nsenter.NS
	// StatsInterval is the period of the global and per-CPU stats samples
	// that Snapshot reports. Zero means DefaultStatsInterval (1 s).
	StatsInterval time.Duration
	// RateWindow is the time constant of the moving average of the growth
	// rate. Zero means DefaultRateWindow (15 s).
	RateWindow time.Duration
	// ReadBuffer is the receive buffer of the event socket in bytes, set with
	// SO_RCVBUFFORCE when the process may (root or CAP_NET_ADMIN), else
	// capped by net.core.rmem_max. Zero means DefaultReadBuffer (16 MiB,
	// which the kernel doubles: about 40,000 events of backlog).
	ReadBuffer int
	// TopN bounds Snapshot's TopSources and TopServices. Zero means
	// DefaultTopN (10); negative disables them (and the table scan they
	// cost).
	TopN int
	// QueryTimeout bounds each stats query. Zero means DefaultQueryTimeout
	// (5 s).
	QueryTimeout time.Duration
	// Logger receives the Watcher's logs, with component=conntrack. Nil
	// means slog.Default().
	Logger *slog.Logger
}

func (c *Config) withDefaults() Config {
	var d Config
	if c != nil {
		d = *c
	}
	if d.StatsInterval <= 0 {
		d.StatsInterval = DefaultStatsInterval
	}
	if d.RateWindow <= 0 {
		d.RateWindow = DefaultRateWindow
	}
	if d.ReadBuffer <= 0 {
		d.ReadBuffer = DefaultReadBuffer
	}
	if d.TopN == 0 {
		d.TopN = DefaultTopN
	}
	if d.QueryTimeout <= 0 {
		d.QueryTimeout = DefaultQueryTimeout
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	d.Logger = d.Logger.With("component", "conntrack")
	return d
}

// Watcher mirrors the conntrack table of one network namespace and samples
// its statistics, over netlink only: an event subscription (NEW, UPDATE,
// DESTROY) applied to an in-memory table, a dump at start and after every
// event loss, and periodic global and per-CPU stats queries. It never writes
// to the kernel's table.
//
// A Watcher's methods may be called from any goroutine.
type Watcher struct {
	cfg   Config
	log   *slog.Logger
	netns int
	tab   *table

	ev     *sock // multicast events; owned by the event goroutine after Open
	evMu   sync.Mutex
	dumpS  *sock    // dumps, owned by the resync goroutine
	statS  *sock    // per-CPU stats, under statMu
	glob   *ct.Conn // global stats (ti-mo), under statMu
	statMu sync.Mutex
	dumpMu sync.Mutex // one dump at a time

	resyncReq chan struct{}
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool

	evNew, evUpdate, evDestroy   atomic.Uint64
	lost, overflows, parseErrors atomic.Uint64
	resyncs, resyncErrs, reconns atomic.Uint64
	statsErrs                    atomic.Uint64
	lastDrops                    uint32 // under mu

	mu       sync.Mutex // guards the fields below
	sample   sample
	haveRate bool
	rate     float64
	perCPU   []CPUStats
	dumpDur  time.Duration
	dumpN    int
	dumpRm   int
	lastSync time.Time
	rcvbuf   int
	marks    []lossMark // oldest first; see markLocked
	latest   lossMark
}

type sample struct {
	at             time.Time
	entries, limit int
}

// Open starts watching: it subscribes to events, takes a first stats sample
// (whose entry count sizes the table), dumps the table (the events that
// arrive meanwhile are reconciled with the dump) and returns. ctx bounds
// only this start; the Watcher runs until Close.
func Open(ctx context.Context, cfg *Config) (*Watcher, error) {
	c := cfg.withDefaults()
	w := &Watcher{cfg: c, log: c.Logger, tab: newTable(), resyncReq: make(chan struct{}, 1)}
	if fd := c.NetNS.Fd(); fd >= 0 {
		w.netns = fd
	}
	if err := w.dialAll(); err != nil {
		w.closeSocks()
		return nil, err
	}
	if err := w.Sample(ctx); err != nil {
		w.closeSocks()
		return nil, err
	}
	w.mu.Lock()
	n := w.sample.entries
	w.mu.Unlock()
	w.tab.reserve(n)
	if err := w.resync(); err != nil {
		w.closeSocks()
		return nil, err
	}
	run, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.wg.Add(3)
	go w.readEvents(run)
	go w.resyncLoop(run)
	go w.statsLoop(run)
	return w, nil
}

func (w *Watcher) dialAll() error {
	var err error
	if w.ev, err = w.dialEvents(); err != nil {
		return err
	}
	if w.dumpS, err = dialSock(w.netns, 0); err != nil {
		return err
	}
	if w.statS, err = dialSock(w.netns, 0); err != nil {
		return err
	}
	if w.glob, err = ct.Dial(&netlink.Config{NetNS: w.netns}); err != nil {
		return fmt.Errorf("dial conntrack: %w", err)
	}
	return nil
}

func (w *Watcher) dialEvents() (*sock, error) {
	s, err := dialSock(w.netns, groupsNewUpdateDestroy)
	if err != nil {
		return nil, err
	}
	n, err := s.setReadBuffer(w.cfg.ReadBuffer)
	if err != nil {
		s.close()
		return nil, err
	}
	d, _ := s.drops()
	w.mu.Lock()
	w.rcvbuf = n
	w.lastDrops = d
	w.mu.Unlock()
	return s, nil
}

func (w *Watcher) closeSocks() {
	w.evMu.Lock()
	if w.ev != nil {
		w.ev.close()
	}
	w.evMu.Unlock()
	if w.dumpS != nil {
		w.dumpS.close()
	}
	w.statMu.Lock()
	if w.statS != nil {
		w.statS.close()
	}
	if w.glob != nil {
		w.glob.Close()
	}
	w.statMu.Unlock()
}

// Close stops the Watcher and closes its sockets. It is safe to call more
// than once.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		if w.cancel != nil {
			w.cancel()
		}
		w.closeSocks()
		w.wg.Wait()
	})
	return nil
}

// readEvents is the event socket's only reader. It decodes each message in
// place and applies it to the table under a short lock; nothing on this
// path blocks on anything but the table lock.
func (w *Watcher) readEvents(ctx context.Context) {
	defer w.wg.Done()
	buf := make([]byte, 64<<10)
	var m ctMsg
	for {
		w.evMu.Lock()
		s := w.ev
		w.evMu.Unlock()
		n, err := s.read(buf)
		if err != nil {
			if ctx.Err() != nil || w.closed.Load() {
				return
			}
			if errors.Is(err, unix.ENOBUFS) {
				w.overflow(s)
				continue
			}
			w.log.Error("conntrack event socket failed, reopening", "err", err)
			if !w.reopenEvents(ctx, s) {
				return
			}
			continue
		}
		w.handleEvents(buf[:n], &m)
	}
}

func (w *Watcher) handleEvents(b []byte, m *ctMsg) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < nlmsgHdrLen || l > len(b) {
			w.parseErrors.Add(1)
			return
		}
		typ := binary.NativeEndian.Uint16(b[4:6])
		flags := binary.NativeEndian.Uint16(b[6:8])
		payload := b[nlmsgHdrLen:l]
		b = b[min((l+3)&^3, len(b)):]
		kind, ok := flowKind(typ, flags)
		if !ok {
			continue
		}
		if err := parseFlow(payload, kind, m); err != nil {
			w.parseErrors.Add(1)
			continue
		}
		w.tab.apply(m)
		switch kind {
		case kindNew:
			w.evNew.Add(1)
		case kindUpdate:
			w.evUpdate.Add(1)
		case kindDestroy:
			w.evDestroy.Add(1)
		}
	}
}

// overflow accounts for an ENOBUFS: the kernel dropped events because the
// receive queue was full. The socket stays usable (the error is reported
// once per overrun), so it is kept; the table is resynced by a dump.
func (w *Watcher) overflow(s *sock) {
	w.overflows.Add(1)
	if _, ok := w.checkDrops(s); !ok {
		w.lost.Add(1) // without SO_MEMINFO: at least one
	}
	w.requestResync()
}

// checkDrops adds the events the kernel dropped on s since the last check
// (its SO_MEMINFO drop counter) to the lost count and asks for a resync if
// there were any. The stats loop calls it too: ENOBUFS is reported once per
// overrun, and events dropped after it was read, until the queue drains,
// show up only in the counter.
func (w *Watcher) checkDrops(s *sock) (lost uint64, ok bool) {
	d, err := s.drops()
	if err != nil {
		return 0, false
	}
	w.mu.Lock()
	lost = uint64(d - w.lastDrops)
	w.lastDrops = d
	w.mu.Unlock()
	if lost > 0 {
		w.lost.Add(lost)
		w.log.Debug("conntrack events lost", "lost", lost)
		w.requestResync()
	}
	return lost, true
}

// reopenEvents replaces a failed event socket, with backoff, and asks for a
// resync since events may have been missed meanwhile.
func (w *Watcher) reopenEvents(ctx context.Context, old *sock) bool {
	old.close()
	backoff := 100 * time.Millisecond
	for {
		s, err := w.dialEvents()
		if err == nil {
			w.evMu.Lock()
			w.ev = s
			w.evMu.Unlock()
			if w.closed.Load() {
				s.close()
				return false
			}
			w.reconns.Add(1)
			w.requestResync()
			return true
		}
		w.log.Error("conntrack event socket reopen failed", "err", err, "retry_seconds", backoff.Seconds())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (w *Watcher) requestResync() {
	select {
	case w.resyncReq <- struct{}{}:
	default:
	}
}

// resyncLoop runs the dumps that overflows and reconnects ask for. A dump
// costs CPU in proportion to the table, so during a storm of overflows it
// waits for resyncQuiet without a new request (at most resyncMaxDelay after
// the first) rather than dumping after every loss.
func (w *Watcher) resyncLoop(ctx context.Context) {
	defer w.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.resyncReq:
		}
		deadline := time.Now().Add(resyncMaxDelay)
	quiet:
		for {
			t := time.NewTimer(resyncQuiet)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-w.resyncReq:
				t.Stop()
				if time.Now().After(deadline) {
					break quiet
				}
			case <-t.C:
				break quiet
			}
		}
		if err := w.resync(); err != nil && ctx.Err() == nil {
			w.log.Error("conntrack resync failed", "err", err)
		}
	}
}

// resync dumps the kernel's table into a new generation of the in-memory
// one; see table for how it is reconciled with concurrent events.
func (w *Watcher) resync() error {
	w.dumpMu.Lock()
	defer w.dumpMu.Unlock()
	start := time.Now()
	g := w.tab.beginResync()
	buf := make([]byte, 64<<10)
	batch := make([]ctMsg, 0, 256)
	total := 0
	err := w.dumpS.dump(ctMsgGet, buf, func(typ, flags uint16, payload []byte) error {
		batch = batch[:len(batch)+1]
		if err := parseFlow(payload, kindDump, &batch[len(batch)-1]); err != nil {
			w.parseErrors.Add(1)
			batch = batch[:len(batch)-1]
			return nil
		}
		if len(batch) == cap(batch) {
			w.tab.dumped(g, batch)
			total += len(batch)
			batch = batch[:0]
		}
		return nil
	})
	if err == nil {
		w.tab.dumped(g, batch)
		total += len(batch)
	}
	removed := w.tab.endResync(g, err == nil)
	if err != nil {
		w.resyncErrs.Add(1)
		return fmt.Errorf("conntrack dump: %w", err)
	}
	d := time.Since(start)
	w.resyncs.Add(1)
	w.mu.Lock()
	w.dumpDur, w.dumpN, w.dumpRm, w.lastSync = d, total, removed, time.Now()
	w.mu.Unlock()
	w.log.Debug("conntrack table dumped", "entries", total, "removed", removed, "duration_seconds", d.Seconds())
	return nil
}

// Resync dumps the table now and reconciles the in-memory copy with it.
func (w *Watcher) Resync() error {
	if w.closed.Load() {
		return ErrClosed
	}
	return w.resync()
}

func (w *Watcher) statsLoop(ctx context.Context) {
	defer w.wg.Done()
	t := time.NewTicker(w.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := w.Sample(ctx); err != nil && ctx.Err() == nil {
			w.log.Error("conntrack stats sample failed", "err", err)
		}
		w.evMu.Lock()
		w.checkDrops(w.ev)
		w.evMu.Unlock()
	}
}

// Sample reads the global stats (entries, nf_conntrack_max) and the per-CPU
// counters now, and updates the growth rate. Each query is bounded by
// Config.QueryTimeout: one that does not answer in time fails with
// ErrTimeout and its socket is replaced.
func (w *Watcher) Sample(ctx context.Context) error {
	if w.closed.Load() {
		return ErrClosed
	}
	w.statMu.Lock()
	defer w.statMu.Unlock()
	err := w.sampleLocked(ctx)
	if err != nil {
		w.statsErrs.Add(1)
	}
	return err
}

func (w *Watcher) sampleLocked(ctx context.Context) error {
	type result struct {
		g   ct.StatsGlobal
		cpu []CPUStats
		err error
	}
	glob, statS := w.glob, w.statS
	done := make(chan result, 1)
	go func() {
		var r result
		r.g, r.err = glob.StatsGlobal()
		if r.err != nil {
			r.err = fmt.Errorf("conntrack global stats: %w", r.err)
			done <- r
			return
		}
		buf := make([]byte, 16<<10)
		r.err = statS.dump(ctMsgGetStatsCPU, buf, func(_, _ uint16, p []byte) error {
			var s CPUStats
			if err := parseCPUStats(p, &s); err != nil {
				return err
			}
			r.cpu = append(r.cpu, s)
			return nil
		})
		if r.err != nil {
			r.err = fmt.Errorf("conntrack per-CPU stats: %w", r.err)
		}
		done <- r
	}()
	timer := time.NewTimer(w.cfg.QueryTimeout)
	defer timer.Stop()
	var r result
	select {
	case r = <-done:
	case <-timer.C:
		r.err = ErrTimeout
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	if r.err != nil {
		if errors.Is(r.err, ErrTimeout) || errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded) {
			// The query may still be blocked: closing its sockets ends it.
			glob.Close()
			statS.close()
			<-done
			if !w.closed.Load() {
				var err error
				if w.statS, err = dialSock(w.netns, 0); err != nil {
					return errors.Join(r.err, err)
				}
				if w.glob, err = ct.Dial(&netlink.Config{NetNS: w.netns}); err != nil {
					return errors.Join(r.err, err)
				}
			}
		}
		return r.err
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := sample{at: now, entries: int(r.g.Entries), limit: int(r.g.MaxEntries)}
	if prev := w.sample; !prev.at.IsZero() {
		if dt := now.Sub(prev.at).Seconds(); dt > 0 {
			inst := float64(cur.entries-prev.entries) / dt
			if !w.haveRate {
				w.rate, w.haveRate = inst, true
			} else {
				a := 1 - math.Exp(-dt/w.cfg.RateWindow.Seconds())
				w.rate += a * (inst - w.rate)
			}
		}
	}
	w.sample = cur
	w.perCPU = r.cpu
	w.markLocked(now, r.cpu)
	return nil
}

// Snapshot returns the current view of the table and of the Watcher's
// health. Counts by protocol and state are kept up to date by the event
// path; the top holders cost one pass over the table (see Config.TopN).
func (w *Watcher) Snapshot() Snapshot {
	var s Snapshot
	w.mu.Lock()
	s.Sampled = w.sample.at
	s.Entries, s.Limit = w.sample.entries, w.sample.limit
	s.PerCPU = append([]CPUStats(nil), w.perCPU...)
	s.GrowthRate = w.rate
	s.Health = Health{
		LastDump: w.dumpDur, LastDumpEntries: w.dumpN, LastDumpRemoved: w.dumpRm,
		LastResync: w.lastSync, ReadBuffer: w.rcvbuf,
	}
	w.mu.Unlock()
	for i := range s.PerCPU {
		s.PerCPU[i].addTo(&s.Stats)
	}
	s.Stats.CPU = -1
	if s.Limit > 0 {
		s.FillRatio = float64(s.Entries) / float64(s.Limit)
	}
	s.ExhaustionETA = eta(s.Entries, s.Limit, s.GrowthRate)
	h := &s.Health
	h.EventsNew, h.EventsUpdate, h.EventsDestroy = w.evNew.Load(), w.evUpdate.Load(), w.evDestroy.Load()
	h.EventsLost, h.Overflows, h.ParseErrors = w.lost.Load(), w.overflows.Load(), w.parseErrors.Load()
	h.Resyncs, h.ResyncErrors, h.Reconnects = w.resyncs.Load(), w.resyncErrs.Load(), w.reconns.Load()
	h.StatsErrors = w.statsErrs.Load()
	w.tab.fill(&s, w.cfg.TopN)
	return s
}

// eta is the time to exhaustion in seconds: 0 when full, +Inf when the
// table does not grow or the limit is unknown.
func eta(entries, limit int, rate float64) float64 {
	switch {
	case limit <= 0:
		return math.Inf(1)
	case entries >= limit:
		return 0
	case rate <= 0:
		return math.Inf(1)
	}
	return float64(limit-entries) / rate
}

// Lookup returns the conntrack entry a flow key belongs to, in the zone 0:
// the key may be either direction of either side of a NAT (see Match), so
// a capture before DNAT (client→ClusterIP) and one after it (client→pod)
// find the same entry and can be joined on its original tuple.
func (w *Watcher) Lookup(k flow.Key) (NAT, bool) {
	return w.tab.lookup(tupleOfKey(k), 0)
}

// LookupZone is Lookup in a conntrack zone.
func (w *Watcher) LookupZone(k flow.Key, zone uint16) (NAT, bool) {
	return w.tab.lookup(tupleOfKey(k), zone)
}
