package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/net/bpf"

	"github.com/layerscope/layerscope/agent/attach"
	"github.com/layerscope/layerscope/agent/capture"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/agent/pipeline"
	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/parser"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// CaptureConfig says what the agent captures. The zero value captures the
// pod, overlay and uplink interfaces with 256-byte snapshots.
type CaptureConfig struct {
	// Disabled turns packet capture off (the agent still serves link
	// metrics).
	Disabled bool
	// Roles are the interface roles captured; empty means pod, overlay and
	// uplink.
	Roles []flow.Role
	// Include and Exclude are interface name patterns (path.Match) that
	// narrow the selection; empty Include means every name.
	Include, Exclude []string
	// SnapLen is the number of bytes kept per frame; 0 means 256.
	SnapLen int
	// FilterFile is a file holding a classic BPF program as printed by
	// `tcpdump -dd` (or -ddd); empty captures every frame.
	FilterFile string
	// Decoders configures the decoders' ports (VXLAN, Geneve, DNS).
	Decoders parser.Config
	// FlowTable configures the flow table; nil means MaxEntries 65536 and
	// the table's other defaults.
	FlowTable *flowtable.Config
	// PendingGrace is how long a selected interface may go without a ring
	// (its attach failing and retried) before the agent reports not ready;
	// 0 means DefaultPendingGrace.
	PendingGrace time.Duration
}

// DefaultPendingGrace is the default CaptureConfig.PendingGrace.
const DefaultPendingGrace = 10 * time.Second

// publishInterval bounds how stale the per-layer counters of a scrape are.
const publishInterval = 250 * time.Millisecond

// captureSet is the packet half of the agent: one ring and one worker per
// captured interface, all feeding one flow table.
type captureSet struct {
	cfg     CaptureConfig
	table   *flowtable.Table
	workers *pipeline.Set
	manager *attach.Manager
	wg      sync.WaitGroup

	mu      sync.Mutex
	retired [flow.NumRoles]capture.Stats // rings closed so far, by role
	live    map[int]*liveWorker          // by interface index
	kick    chan struct{}                // an interface was attached
	gone    map[int]goneLink             // detached interfaces, for names of late records
}

// goneLink remembers a detached interface for a while, so that records of
// flows that end after it went still name it.
type goneLink struct {
	link links.Link
	at   time.Time
}

// goneKeep is how long a detached interface's name is kept.
const goneKeep = 5 * time.Minute

// linkOf returns the captured or recently detached link of index idx.
func (c *captureSet) linkOf(idx int) (links.Link, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if lw, ok := c.live[idx]; ok {
		return lw.link, true
	}
	g, ok := c.gone[idx]
	return g.link, ok
}

// forgetGone drops the names of interfaces detached before now-goneKeep.
func (c *captureSet) forgetGone(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for idx, g := range c.gone {
		if now.Sub(g.at) > goneKeep {
			delete(c.gone, idx)
		}
	}
}

// liveWorker is the worker of one captured interface.
type liveWorker struct {
	link links.Link
	w    *pipeline.Worker
	pmtu uint64 // last PMTU event sequence read
}

func newCaptureSet(a *Agent) (*captureSet, error) {
	c := &captureSet{cfg: a.cfg.Capture, workers: pipeline.NewSet(), live: map[int]*liveWorker{}, kick: make(chan struct{}, 1), gone: map[int]goneLink{}}
	ftc := flowtable.Config{MaxEntries: 65536}
	if c.cfg.FlowTable != nil {
		ftc = *c.cfg.FlowTable
	}
	ftc.Logger = a.cfg.Logger
	ftc.OnRecords = a.onRecords
	var err error
	if c.table, err = flowtable.New(&ftc); err != nil {
		return nil, fmt.Errorf("flow table: %w", err)
	}
	// Check the decoder configuration once, before any ring opens.
	if _, err := parser.New(c.cfg.Decoders); err != nil {
		return nil, fmt.Errorf("decoder ports: %w", err)
	}
	ring := attach.DefaultRing
	if c.cfg.SnapLen != 0 || c.cfg.FilterFile != "" {
		var filter []bpf.RawInstruction
		if c.cfg.FilterFile != "" {
			text, err := os.ReadFile(c.cfg.FilterFile)
			if err != nil {
				return nil, fmt.Errorf("--capture-filter-file: %w", err)
			}
			if filter, err = capture.ParseFilter(string(text)); err != nil {
				return nil, fmt.Errorf("--capture-filter-file %s: %w", c.cfg.FilterFile, err)
			}
		}
		snap := c.cfg.SnapLen
		ring = func(l links.Link) capture.Config {
			rc := attach.DefaultRing(l)
			if snap != 0 {
				rc.SnapLen = snap
			}
			rc.Filter = filter
			return rc
		}
	}
	if c.cfg.Disabled {
		return c, nil
	}
	c.manager, err = attach.New(attach.Config{
		NetNS:    a.ns,
		Roles:    c.cfg.Roles,
		Include:  c.cfg.Include,
		Exclude:  c.cfg.Exclude,
		Ring:     ring,
		OnAttach: c.attached,
		Logger:   a.cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("--capture-include/--capture-exclude: %w", err)
	}
	return c, nil
}

// attached starts the worker of a new ring. It runs on the manager's
// goroutine and returns at once.
func (c *captureSet) attached(l links.Link, r *capture.Ring) {
	w, err := pipeline.NewWorker(c.cfg.Decoders, c.table)
	if err != nil { // checked in newCaptureSet
		r.Close()
		return
	}
	c.workers.Add(w)
	c.mu.Lock()
	c.live[l.Index] = &liveWorker{link: l, w: w}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	c.wg.Add(1)
	go c.read(l, r, w)
}

// read is one capture worker: it owns r's frames, w and its counters. It
// publishes the counters every publishInterval, and once more when the ring
// closes, before it leaves the set.
func (c *captureSet) read(l links.Link, r *capture.Ring, w *pipeline.Worker) {
	defer c.wg.Done()
	m := pipeline.Meta{IfIndex: int32(l.Index), Role: l.Role, LinkType: decoders.LinkEthernet}
	handle := func(frame []byte, cm *capture.Meta) {
		m.Time, m.Len, m.Dir = cm.Timestamp.UnixNano(), uint32(cm.Length), cm.Direction
		w.Handle(frame, &m)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), publishInterval)
		err := r.Run(ctx, handle)
		cancel()
		w.Publish()
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		break // closed by the manager (detach or shutdown), or failed
	}
	w.FlushFragments()
	w.Publish()
	c.mu.Lock()
	delete(c.live, l.Index)
	c.gone[l.Index] = goneLink{link: l, at: time.Now()}
	c.mu.Unlock()
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

// run sweeps the flow table and follows the interfaces until ctx is done,
// then waits for every worker.
func (c *captureSet) run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.table.Run(ctx) })
	var err error
	if c.manager != nil {
		err = c.manager.Run(ctx)
	}
	c.wg.Wait()
	wg.Wait()
	return err
}

// ready is closed once the interfaces present at start are captured.
func (c *captureSet) ready() <-chan struct{} {
	if c.manager == nil {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return c.manager.Ready()
}

// source is the metrics source of the rings: kernel drops and freezes by
// role, and the number of interfaces captured.
func (c *captureSet) source() prom.Source {
	return prom.SourceFunc{SourceName: "capture", Fn: func(e *prom.Emitter) error {
		c.mu.Lock()
		totals := c.retired
		c.mu.Unlock()
		var attached, pending [flow.NumRoles]int
		if c.manager != nil {
			for _, at := range c.manager.Attached() {
				role := min(at.Link.Role, flow.NumRoles-1)
				attached[role]++
				if st, err := at.Ring.Stats(); err == nil {
					addStats(&totals[role], &st)
				}
			}
			for _, p := range c.manager.Pending() {
				pending[min(p.Link.Role, flow.NumRoles-1)]++
			}
		}
		for r := range flow.NumRoles {
			if r == flow.RoleReplay {
				continue
			}
			e.Counter(metricdef.CaptureDrops, float64(totals[r].Drops), r.String())
			e.Counter(metricdef.CaptureFreezes, float64(totals[r].QueueFreezes), r.String())
			e.Gauge(metricdef.AgentCaptureAttached, float64(attached[r]), r.String())
			e.Gauge(metricdef.AgentCapturePending, float64(pending[r]), r.String())
		}
		return nil
	}}
}

// stuck returns the selected interfaces that have had no ring, their attach
// failing, for longer than the grace period, as of now.
func (c *captureSet) stuck(now time.Time) []attach.Pending {
	if c.manager == nil {
		return nil
	}
	grace := c.cfg.PendingGrace
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

// attachedCount returns the number of interfaces captured now.
func (c *captureSet) attachedCount() int {
	if c.manager == nil {
		return 0
	}
	return len(c.manager.Attached())
}
