package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/bpf"

	"github.com/layerscope/layerscope/agent/attach"
	"github.com/layerscope/layerscope/agent/capture"
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/agent/mtu"
	"github.com/layerscope/layerscope/agent/pipeline"
	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/parser"
	"github.com/layerscope/layerscope/internal/nsenter"
)

// CaptureConfig says what the agent captures. The zero value captures the
// pod, overlay and uplink interfaces with DefaultSnapLen-byte snapshots.
type CaptureConfig struct {
	// Disabled turns packet capture off (the agent still serves link
	// metrics).
	Disabled bool
	// Roles are the interface roles captured; empty means
	// attach.DefaultRoles (pod, overlay and uplink).
	Roles []flow.Role
	// Include and Exclude are interface name patterns (path.Match) that
	// narrow the selection; empty Include means every name.
	Include, Exclude []string
	// SnapLen is the number of bytes kept per frame; 0 means the ring's
	// default (capture.DefaultSnapLen).
	SnapLen int
	// Filter is a tcpdump expression (the subset ondemand.CompileFilter
	// takes): only matching frames are captured. Empty captures every
	// frame.
	Filter string
	// FilterFile is a file holding a classic BPF program as printed by
	// `tcpdump -dd` (or -ddd), for what Filter cannot say; empty means
	// none. At most one of Filter and FilterFile.
	FilterFile string
	// Decoders configures the decoders' ports (VXLAN, Geneve, DNS).
	Decoders parser.Config
	// FlowTable configures the flow table; nil means the table's defaults
	// (flowtable.DefaultMaxEntries entries).
	FlowTable *flowtable.Config
	// Offload turns on the capture's in-kernel fast path on every ring
	// (capture.Config.Offload): an eBPF socket filter hands the workers
	// only the frames that change a flow's state and counts the others
	// per flow in the kernel, merged into the flow table and the counters
	// at every PublishInterval. Where eBPF is not allowed the rings
	// capture every frame, logged and counted (OffloadFallbacks).
	Offload bool
	// OffloadFlows is the number of flow directions each ring's kernel
	// map holds; 0 means capture.DefaultOffloadFlows.
	OffloadFlows int
	// PendingGrace is how long a selected interface may go without a ring
	// (its attach failing and retried) before the agent reports not ready;
	// 0 means DefaultPendingGrace.
	PendingGrace time.Duration
}

// Defaults of CaptureConfig.
const (
	DefaultPendingGrace = 10 * time.Second
)

// PublishInterval bounds how stale the per-layer counters of a scrape are.
const PublishInterval = 250 * time.Millisecond

// Config configures a Set.
type Config struct {
	Capture CaptureConfig
	NetNS   *nsenter.NS
	Logger  *slog.Logger
	// OnRecords receives the records the flow table reports (see
	// flowtable.Config.OnRecords): the agent's correlate.Fanout.
	OnRecords func([]flow.Record)
	// Translate attributes PMTU reports to their connection through
	// conntrack; nil leaves them unattributed.
	Translate correlate.Translator
	// MTU and PMTU receive the path ticker's results; nil means none.
	MTU  *mtu.Monitor
	PMTU *mtu.PMTULog
	// CompileFilter compiles CaptureConfig.Filter; it must be set when
	// Filter is.
	CompileFilter func(expr string) ([]bpf.RawInstruction, error)
}

// Set is the packet half of the agent: one ring and one worker per captured
// interface, all feeding one flow table, and the one ticker that follows
// the links for the workers' path checks, the MTU check and the PMTU
// reports.
type Set struct {
	cfg     Config
	log     *slog.Logger
	table   *flowtable.Table
	workers *pipeline.Set
	manager *attach.Manager
	links   links.Current
	started atomic.Bool // the interfaces present at start are captured, and Run runs
	wg      sync.WaitGroup

	mu      sync.Mutex
	retired [flow.NumRoles]capture.Stats // rings closed so far, by role
	live    map[int]*liveWorker          // by interface index
	kick    chan struct{}                // an interface was attached
	gone    map[int]goneLink             // detached interfaces, for names of late records
	pmtuBuf []pipeline.PMTUEvent

	offMu        sync.Mutex
	offFallbacks map[string]uint64    // rings that asked for the fast path and run without, by reason
	offRetired   capture.OffloadStats // closed rings' offload counters
}

// goneLink remembers a detached interface for a while, so that records of
// flows that end after it went still name it.
type goneLink struct {
	link links.Link
	at   time.Time
}

// goneKeep is how long a detached interface's name is kept.
const goneKeep = 5 * time.Minute

// liveWorker is the worker of one captured interface.
type liveWorker struct {
	link links.Link
	w    *pipeline.Worker
	off  *capture.Offload // nil: no fast path
	pmtu uint64           // last PMTU event sequence read
}

// New checks cfg and returns a Set whose rings open when it runs.
func New(cfg Config) (*Set, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Set{cfg: cfg, log: cfg.Logger.With("component", "workers"), workers: pipeline.NewSet(), live: map[int]*liveWorker{},
		kick: make(chan struct{}, 1), gone: map[int]goneLink{}, offFallbacks: map[string]uint64{}}
	cc := cfg.Capture
	var ftc flowtable.Config
	if cc.FlowTable != nil {
		ftc = *cc.FlowTable
	}
	ftc.Logger = cfg.Logger
	ftc.OnRecords = cfg.OnRecords
	var err error
	if c.table, err = flowtable.New(&ftc); err != nil {
		return nil, fmt.Errorf("flow table: %w", err)
	}
	// Check the decoder configuration once, before any ring opens.
	if _, err := parser.New(cc.Decoders); err != nil {
		return nil, fmt.Errorf("decoder ports: %w", err)
	}
	filter, err := loadFilter(&cfg)
	if err != nil {
		return nil, err
	}
	ring := attach.DefaultRing
	if cc.SnapLen != 0 || filter != nil || cc.Offload {
		snap := cc.SnapLen
		var off *capture.OffloadConfig
		if cc.Offload {
			off = &capture.OffloadConfig{MaxFlows: cc.OffloadFlows, DNSPorts: cc.Decoders.DNSPorts, VXLANPorts: cc.Decoders.VXLANPorts}
		}
		ring = func(l links.Link) capture.Config {
			rc := attach.DefaultRing(l)
			if snap != 0 {
				rc.SnapLen = snap
			}
			rc.Filter = filter
			rc.Offload = off
			return rc
		}
	}
	if cc.Disabled {
		return c, nil
	}
	c.manager, err = attach.New(attach.Config{
		NetNS:    cfg.NetNS,
		Roles:    cc.Roles,
		Include:  cc.Include,
		Exclude:  cc.Exclude,
		Ring:     ring,
		OnAttach: c.attached,
		OnEvent:  c.links.Apply,
		Logger:   cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("--capture-include/--capture-exclude: %w", err)
	}
	return c, nil
}

// loadFilter returns the always-on capture filter: the compiled expression,
// or the program of the filter file.
func loadFilter(cfg *Config) ([]bpf.RawInstruction, error) {
	cc := &cfg.Capture
	switch {
	case cc.Filter != "" && cc.FilterFile != "":
		return nil, errors.New("--capture-filter and --capture-filter-file: give one of them")
	case cc.Filter != "":
		if cfg.CompileFilter == nil {
			return nil, errors.New("--capture-filter: no filter compiler")
		}
		prog, err := cfg.CompileFilter(cc.Filter)
		if err != nil {
			return nil, fmt.Errorf("--capture-filter %q: %w", cc.Filter, err)
		}
		return prog, nil
	case cc.FilterFile != "":
		text, err := os.ReadFile(cc.FilterFile)
		if err != nil {
			return nil, fmt.Errorf("--capture-filter-file: %w", err)
		}
		prog, err := capture.ParseFilter(string(text))
		if err != nil {
			return nil, fmt.Errorf("--capture-filter-file %s: %w", cc.FilterFile, err)
		}
		return prog, nil
	}
	return nil, nil
}

// Table returns the flow table the workers feed.
func (c *Set) Table() *flowtable.Table { return c.table }

// Workers returns the set of live workers (their summed counters).
func (c *Set) Workers() *pipeline.Set { return c.workers }

// Links returns the namespace's links as the watch last published them.
func (c *Set) Links() ([]links.Link, bool) { return c.links.Links() }

// LinkOf returns the captured or recently detached link of index idx, else
// links.Unknown(idx) and false.
func (c *Set) LinkOf(idx int) (links.Link, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if lw, ok := c.live[idx]; ok {
		return lw.link, true
	}
	if g, ok := c.gone[idx]; ok {
		return g.link, true
	}
	return links.Unknown(idx), false
}

// forgetGone drops the names of interfaces detached before now-goneKeep.
func (c *Set) forgetGone(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for idx, g := range c.gone {
		if now.Sub(g.at) > goneKeep {
			delete(c.gone, idx)
		}
	}
}

// attached starts the worker of a new ring. It runs on the manager's
// goroutine and returns at once.
func (c *Set) attached(l links.Link, r *capture.Ring) {
	w, err := pipeline.NewWorker(c.cfg.Capture.Decoders, c.table)
	if err != nil { // checked in New
		r.Close()
		return
	}
	off := c.offload(l, r, w)
	c.workers.Add(w)
	c.mu.Lock()
	c.live[l.Index] = &liveWorker{link: l, w: w, off: off}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	c.wg.Add(1)
	go c.read(l, r, w, off)
}

// offload returns the fast path of a new ring, telling its worker, or nil;
// a ring that asked for it and runs without is logged and counted.
func (c *Set) offload(l links.Link, r *capture.Ring, w *pipeline.Worker) *capture.Offload {
	if !c.cfg.Capture.Offload {
		return nil
	}
	if o := r.Offload(); o != nil {
		w.SetFilterSeq(true)
		return o
	}
	reason, err := r.OffloadFallback()
	c.offMu.Lock()
	c.offFallbacks[reason]++
	first := c.offFallbacks[reason] == 1
	c.offMu.Unlock()
	log := c.log.Debug
	if first {
		log = c.log.Warn
	}
	log("eBPF fast path not used: capturing every frame in user space", "interface", l.Name, "reason", reason, "error", err)
	return nil
}

// drainOffload merges what the kernel counted on w's ring into w and the
// flow table, and removes the kernel's entries of flows that left the
// table.
func drainOffload(o *capture.Offload, l links.Link, w *pipeline.Worker) error {
	return o.Drain(func(d *capture.Drained) {
		d.IfIndex, d.Role = int32(l.Index), l.Role
		w.Merge(&d.Counted)
	}, func(k *flow.Key) bool { return !w.Tracks(k) })
}

// OffloadStatus is the state of the eBPF fast path over the rings.
type OffloadStatus struct {
	// Requested: CaptureConfig.Offload is set.
	Requested bool
	// Rings is the number of open rings using it.
	Rings int
	// Fallbacks counts the rings that asked for it and capture every
	// frame instead, by reason (capture.OffloadReason*).
	Fallbacks map[string]uint64
	// Stats sums the offload counters of the open rings and the closed.
	capture.OffloadStats
}

// Offload returns the state of the eBPF fast path.
func (c *Set) Offload() OffloadStatus {
	st := OffloadStatus{Requested: c.cfg.Capture.Offload, Fallbacks: map[string]uint64{}}
	c.offMu.Lock()
	for k, v := range c.offFallbacks {
		st.Fallbacks[k] = v
	}
	st.OffloadStats = c.offRetired
	c.offMu.Unlock()
	c.mu.Lock()
	for _, lw := range c.live {
		if lw.off != nil {
			st.Rings++
			addOffloadStats(&st.OffloadStats, lw.off.Stats())
		}
	}
	c.mu.Unlock()
	return st
}

func addOffloadStats(dst *capture.OffloadStats, s capture.OffloadStats) {
	dst.Flows += s.Flows
	dst.MapFull += s.MapFull
	dst.Counted += s.Counted
	dst.CountedBytes += s.CountedBytes
	dst.Removed += s.Removed
	dst.Drains += s.Drains
	dst.DrainErrors += s.DrainErrors
}

// read is one capture worker: it owns r's frames, w and its counters. It
// publishes the counters every PublishInterval, and once more when the ring
// closes, before it leaves the set.
func (c *Set) read(l links.Link, r *capture.Ring, w *pipeline.Worker, off *capture.Offload) {
	defer c.wg.Done()
	drain := func() {
		if off == nil {
			return
		}
		if err := drainOffload(off, l, w); err != nil {
			c.log.Debug("draining the eBPF fast path", "interface", l.Name, "error", err)
		}
	}
	m := pipeline.Meta{IfIndex: int32(l.Index), Role: l.Role, LinkType: decoders.LinkEthernet}
	handle := func(frame []byte, cm *capture.Meta) {
		m.Time, m.Len, m.Dir = cm.Timestamp.UnixNano(), uint32(cm.Length), cm.Direction
		w.Handle(frame, &m)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), PublishInterval)
		err := r.Run(ctx, handle)
		cancel()
		drain()
		w.Publish()
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		break // closed by the manager (detach or shutdown), or failed
	}
	w.FlushFragments()
	drain() // the socket is closed: what the kernel counted last
	w.Publish()
	c.mu.Lock()
	delete(c.live, l.Index)
	c.gone[l.Index] = goneLink{link: l, at: time.Now()}
	c.mu.Unlock()
	if off != nil {
		c.offMu.Lock()
		st := off.Stats()
		st.Flows = 0
		addOffloadStats(&c.offRetired, st)
		c.offMu.Unlock()
		off.Close()
	}
	c.workers.Remove(w)
	if st, err := r.Stats(); err == nil {
		c.mu.Lock()
		addStats(&c.retired[min(l.Role, flow.NumRoles-1)], &st)
		c.mu.Unlock()
	}
}

func addStats(dst, src *capture.Stats) {
	dst.Packets += src.Packets
	dst.Drops += src.Drops
	dst.QueueFreezes += src.QueueFreezes
}

// Run sweeps the flow table, follows the interfaces and runs the path
// ticker until ctx is done, then waits for every worker.
func (c *Set) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.table.Run(ctx) })
	wg.Go(func() { c.followPaths(ctx) })
	wg.Go(func() {
		select {
		case <-c.ready():
			c.started.Store(true)
			c.log.Info("capturing", "interfaces", c.AttachedCount())
		case <-ctx.Done():
			return
		}
		<-ctx.Done()
		c.started.Store(false)
	})
	var err error
	if c.manager != nil {
		err = c.manager.Run(ctx)
	} else {
		err = links.Watch(ctx, links.Config{NetNS: c.cfg.NetNS, Logger: c.cfg.Logger}, c.links.Apply)
	}
	c.wg.Wait()
	wg.Wait()
	return err
}

// Started reports whether the interfaces present at start are captured
// (their attach done or failed once and retried) and Run still runs.
func (c *Set) Started() bool { return c.started.Load() }

// Ready reports readiness, what /readyz answers: Started, and no selected
// interface has gone without a ring for longer than
// CaptureConfig.PendingGrace.
func (c *Set) Ready() bool { return c.started.Load() && len(c.Stuck(time.Now())) == 0 }

// ready is closed once the interfaces present at start are captured.
func (c *Set) ready() <-chan struct{} {
	if c.manager == nil {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return c.manager.Ready()
}

// RingStats are the kernel's ring counters of one role.
type RingStats struct {
	capture.Stats
	Attached, Pending int
}

// RingStats returns the ring counters by role: the rings closed so far and
// the open ones.
func (c *Set) RingStats() [flow.NumRoles]RingStats {
	var out [flow.NumRoles]RingStats
	c.mu.Lock()
	for r := range out {
		out[r].Stats = c.retired[r]
	}
	c.mu.Unlock()
	if c.manager == nil {
		return out
	}
	for _, at := range c.manager.Attached() {
		role := min(at.Link.Role, flow.NumRoles-1)
		out[role].Attached++
		if st, err := at.Ring.Stats(); err == nil {
			addStats(&out[role].Stats, &st)
		}
	}
	for _, p := range c.manager.Pending() {
		out[min(p.Link.Role, flow.NumRoles-1)].Pending++
	}
	return out
}

// Captured is one interface captured now with its ring's counters.
type Captured struct {
	Link  links.Link
	Stats capture.Stats
	OK    bool // Stats could be read
}

// Captured returns the interfaces captured now, in index order, and the
// summed counters of the rings closed so far.
func (c *Set) Captured() (out []Captured, retired capture.Stats) {
	c.mu.Lock()
	for i := range c.retired {
		addStats(&retired, &c.retired[i])
	}
	c.mu.Unlock()
	if c.manager == nil {
		return nil, retired
	}
	for _, at := range c.manager.Attached() {
		st, err := at.Ring.Stats()
		out = append(out, Captured{Link: at.Link, Stats: st, OK: err == nil})
	}
	return out, retired
}

// Oversize is the last packet too big for its path that the pod of one
// captured interface sent.
type Oversize struct {
	Interface string
	pipeline.PathEvent
}

// Oversize returns the last oversize packet of each captured interface
// that saw one.
func (c *Set) Oversize() []Oversize {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Oversize
	for _, lw := range c.live {
		if ev, ok := lw.w.LastOversize(); ok {
			out = append(out, Oversize{Interface: lw.link.Name, PathEvent: ev})
		}
	}
	return out
}

// Stuck returns the selected interfaces that have had no ring, their
// attach failing, for longer than the grace period, as of now.
func (c *Set) Stuck(now time.Time) []attach.Pending {
	if c.manager == nil {
		return nil
	}
	grace := c.cfg.Capture.PendingGrace
	if grace <= 0 {
		grace = DefaultPendingGrace
	}
	var out []attach.Pending
	for _, p := range c.manager.Pending() {
		if now.Sub(p.Since) > grace {
			out = append(out, p)
		}
	}
	return out
}

// AttachedCount returns the number of interfaces captured now.
func (c *Set) AttachedCount() int {
	if c.manager == nil {
		return 0
	}
	return len(c.manager.Attached())
}

// Manager returns the attach manager; nil when capture is disabled.
func (c *Set) Manager() *attach.Manager { return c.manager }
