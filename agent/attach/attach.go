package attach

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/agent/capture"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/internal/nsenter"
)

// ErrPattern reports an invalid include or exclude pattern.
var ErrPattern = errors.New("attach: invalid interface name pattern")

// DefaultRoles are the roles captured when Config.Roles is empty.
var DefaultRoles = []flow.Role{flow.RolePod, flow.RoleOverlay, flow.RoleUplink}

// Config says which interfaces to capture and whom to tell. The zero value
// captures pod, overlay and uplink interfaces of the caller's namespace
// with default rings and no callbacks.
type Config struct {
	// NetNS is the namespace watched and captured in; nil means the
	// caller's.
	NetNS *nsenter.NS

	// Roles are the roles captured; empty means DefaultRoles.
	Roles []flow.Role

	// Include, when not empty, limits capture to interfaces whose name
	// matches one of these path.Match patterns ("veth*", "eth0").
	Include []string
	// Exclude skips interfaces whose name matches one of these patterns,
	// after Include.
	Exclude []string

	// Ring returns the ring configuration for a link; nil means
	// DefaultRing. Its NetNS is replaced by Config.NetNS.
	Ring func(links.Link) capture.Config

	// OnAttach is called with each newly opened ring; OnDetach after the
	// ring was closed. Either may be nil.
	OnAttach func(links.Link, *capture.Ring)
	OnDetach func(links.Link, *capture.Ring)
	// OnEvent, when not nil, receives every event of the Manager's link
	// watch before the Manager acts on it (links.Current.Apply: the
	// watch is the agent's one source of link state).
	OnEvent func(links.Event)

	// RetryMin and RetryMax bound the delay between attempts to open the
	// ring of a selected interface after a failure (EMFILE, ENOMEM, ...):
	// it starts at RetryMin and doubles up to RetryMax, each delay drawn
	// at random from its upper half. Zero means DefaultRetryMin and
	// DefaultRetryMax.
	RetryMin, RetryMax time.Duration

	// Logger receives attach and detach at Debug, the first failure of an
	// interface at Error, retries at Debug and a success after failures
	// at Info; nil means slog.Default().
	Logger *slog.Logger
}

// Default retry bounds.
const (
	DefaultRetryMin = 200 * time.Millisecond
	DefaultRetryMax = 10 * time.Second
)

// DefaultRing returns the ring configuration used for a link of this role.
func DefaultRing(l links.Link) capture.Config {
	switch l.Role {
	case flow.RolePod:
		return capture.Config{BlockSize: 128 << 10, NumBlocks: 8}
	case flow.RoleOverlay, flow.RoleUplink:
		return capture.Config{BlockSize: 256 << 10, NumBlocks: 32}
	}
	return capture.Config{}
}

// Attachment is one captured interface.
type Attachment struct {
	Link links.Link
	Ring *capture.Ring
}

// Pending is a selected interface whose ring could not be opened yet. The
// Manager tries again until it succeeds or the interface is gone or no
// longer selected.
type Pending struct {
	Link     links.Link
	Since    time.Time // the first failed attempt
	Attempts int       // failed attempts so far
	Err      error     // the last attempt's error
	Next     time.Time // when the next attempt is due
}

// Manager attaches rings as links come and go. Create it with New, start it
// with Run.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	roles [flow.NumRoles]bool
	ready chan struct{}
	wake  chan struct{} // a retry was scheduled

	op sync.Mutex // held while handling an event or retrying: callbacks run one at a time

	mu       sync.Mutex // guards attached and pending
	attached map[int]Attachment
	pending  map[int]*Pending
}

// New checks cfg and returns a Manager.
func New(cfg Config) (*Manager, error) {
	for _, p := range slices.Concat(cfg.Include, cfg.Exclude) {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: %q", ErrPattern, p)
		}
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	m := &Manager{cfg: cfg, ready: make(chan struct{}), wake: make(chan struct{}, 1),
		attached: map[int]Attachment{}, pending: map[int]*Pending{}}
	roles := cfg.Roles
	if len(roles) == 0 {
		roles = DefaultRoles
	}
	for _, r := range roles {
		if r < flow.NumRoles {
			m.roles[r] = true
		}
	}
	m.log = cfg.Logger
	if m.log == nil {
		m.log = slog.Default()
	}
	m.log = m.log.With("component", "attach", "netns", cfg.NetNS.Name())
	return m, nil
}

// Selected reports whether the Manager captures l.
func (m *Manager) Selected(l links.Link) bool {
	if l.Role >= flow.NumRoles || !m.roles[l.Role] {
		return false
	}
	if len(m.cfg.Include) > 0 && !matchAny(m.cfg.Include, l.Name) {
		return false
	}
	return !matchAny(m.cfg.Exclude, l.Name)
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// Ready is closed once the interfaces present at start have been attached,
// or have failed once and are retried (see Pending).
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// Pending returns the selected interfaces that have no ring because opening
// it failed, in index order. They are retried with backoff.
func (m *Manager) Pending() []Pending {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Pending, 0, len(m.pending))
	for _, p := range m.pending {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Pending) int { return a.Link.Index - b.Link.Index })
	return out
}

// Attached returns the interfaces captured now, in index order.
func (m *Manager) Attached() []Attachment {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Attachment, 0, len(m.attached))
	for _, a := range m.attached {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Attachment) int { return a.Link.Index - b.Link.Index })
	return out
}

// Run watches the namespace and attaches and detaches rings until ctx is
// done (it returns nil) or watching fails. Either way every ring is closed
// and detached before it returns. Run may be called once.
func (m *Manager) Run(ctx context.Context) error {
	retryCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { m.retryLoop(retryCtx) })
	defer func() {
		stop()
		wg.Wait()
		m.detachAll()
	}()
	return links.Watch(ctx, links.Config{NetNS: m.cfg.NetNS, Logger: m.cfg.Logger}, m.handle)
}

// retryLoop attempts the pending attachments as they fall due, until ctx
// is done.
func (m *Manager) retryLoop(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		m.mu.Lock()
		var due time.Time
		for _, p := range m.pending {
			if due.IsZero() || p.Next.Before(due) {
				due = p.Next
			}
		}
		m.mu.Unlock()
		wait := time.Hour
		if !due.IsZero() {
			wait = max(time.Until(due), 0)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
			continue
		case <-t.C:
		}
		m.op.Lock()
		now := time.Now()
		m.mu.Lock()
		var ready []links.Link
		for _, p := range m.pending {
			if !p.Next.After(now) {
				ready = append(ready, p.Link)
			}
		}
		m.mu.Unlock()
		slices.SortFunc(ready, func(a, b links.Link) int { return a.Index - b.Index })
		for _, l := range ready {
			m.attach(l)
		}
		m.op.Unlock()
	}
}

func (m *Manager) handle(e links.Event) {
	m.op.Lock()
	defer m.op.Unlock()
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(e)
	}
	switch e.Type {
	case links.Snapshot:
		for _, l := range e.Links {
			if m.Selected(l) {
				m.attach(l)
			}
		}
		close(m.ready)
	case links.Added, links.Changed:
		sel := m.Selected(e.Link)
		m.mu.Lock()
		a, ok := m.attached[e.Link.Index]
		if ok {
			a.Link = e.Link
			m.attached[e.Link.Index] = a
		}
		p, retrying := m.pending[e.Link.Index]
		switch {
		case retrying && sel:
			p.Link = e.Link
		case retrying:
			delete(m.pending, e.Link.Index)
		}
		m.mu.Unlock()
		switch {
		case sel && !ok && !retrying:
			m.attach(e.Link)
		case !sel && ok:
			m.detach(e.Link.Index)
		}
	case links.Removed:
		m.mu.Lock()
		delete(m.pending, e.Link.Index)
		m.mu.Unlock()
		m.detach(e.Link.Index)
	}
}

// backoff returns the delay before attempt n+1 after n failed attempts:
// RetryMin doubled n-1 times, at most RetryMax, drawn from its upper half.
func (m *Manager) backoff(n int) time.Duration {
	d := m.cfg.RetryMax
	if n-1 < 32 {
		d = min(m.cfg.RetryMin<<(n-1), m.cfg.RetryMax)
	}
	return d/2 + rand.N(d/2+1)
}

// failed records a failed attempt for l and schedules the next.
func (m *Manager) failed(l links.Link, err error) {
	now := time.Now()
	m.mu.Lock()
	p, ok := m.pending[l.Index]
	if !ok {
		p = &Pending{Since: now}
		m.pending[l.Index] = p
	}
	p.Link, p.Err = l, err
	p.Attempts++
	p.Next = now.Add(m.backoff(p.Attempts))
	attempts, next := p.Attempts, p.Next.Sub(now)
	m.mu.Unlock()
	if attempts == 1 {
		m.log.Error("attach failed; retrying", "ifname", l.Name, "ifindex", l.Index, "role", l.Role.String(), "err", err, "retry_in", next.Round(time.Millisecond).String())
	} else {
		m.log.Debug("attach failed again", "ifname", l.Name, "ifindex", l.Index, "attempts", attempts, "err", err, "retry_in", next.Round(time.Millisecond).String())
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Manager) attach(l links.Link) {
	rc := DefaultRing(l)
	if m.cfg.Ring != nil {
		rc = m.cfg.Ring(l)
	}
	rc.NetNS = m.cfg.NetNS
	r, err := capture.Open(l.Index, rc)
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			// Its Removed event follows.
			m.mu.Lock()
			delete(m.pending, l.Index)
			m.mu.Unlock()
			m.log.Debug("interface gone before attach", "ifname", l.Name, "ifindex", l.Index)
			return
		}
		m.failed(l, err)
		return
	}
	m.mu.Lock()
	p, retried := m.pending[l.Index]
	delete(m.pending, l.Index)
	m.attached[l.Index] = Attachment{Link: l, Ring: r}
	m.mu.Unlock()
	if retried {
		m.log.Info("attached after failures", "ifname", l.Name, "ifindex", l.Index, "attempts", p.Attempts, "pending", time.Since(p.Since).Round(time.Millisecond).String())
	}
	m.log.Debug("attached", "ifname", l.Name, "ifindex", l.Index, "role", l.Role.String(), "kind", l.Kind.String())
	if m.cfg.OnAttach != nil {
		m.cfg.OnAttach(l, r)
	}
}

func (m *Manager) detach(index int) {
	m.mu.Lock()
	a, ok := m.attached[index]
	delete(m.attached, index)
	m.mu.Unlock()
	if !ok {
		return
	}
	if err := a.Ring.Close(); err != nil {
		m.log.Error("close ring", "ifname", a.Link.Name, "ifindex", index, "err", err)
	}
	m.log.Debug("detached", "ifname", a.Link.Name, "ifindex", index)
	if m.cfg.OnDetach != nil {
		m.cfg.OnDetach(a.Link, a.Ring)
	}
}

func (m *Manager) detachAll() {
	for _, a := range m.Attached() {
		m.detach(a.Link.Index)
	}
}
