package attach

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"sync"

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

	// Logger receives attach and detach at Debug, failures at Error; nil
	// means slog.Default().
	Logger *slog.Logger
}

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

// Manager attaches rings as links come and go. Create it with New, start it
// with Run.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	roles [flow.NumRoles]bool
	ready chan struct{}

	mu       sync.Mutex // guards attached
	attached map[int]Attachment
}

// New checks cfg and returns a Manager.
func New(cfg Config) (*Manager, error) {
	for _, p := range slices.Concat(cfg.Include, cfg.Exclude) {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: %q", ErrPattern, p)
		}
	}
	m := &Manager{cfg: cfg, ready: make(chan struct{}), attached: map[int]Attachment{}}
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

// Ready is closed once the interfaces present at start have been attached.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

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
	defer m.detachAll()
	return links.Watch(ctx, links.Config{NetNS: m.cfg.NetNS, Logger: m.cfg.Logger}, m.handle)
}

func (m *Manager) handle(e links.Event) {
	switch e.Type {
	case links.Snapshot:
		for _, l := range e.Links {
			if m.Selected(l) {
				m.attach(l)
			}
		}
		close(m.ready)
	case links.Added, links.Changed:
		m.mu.Lock()
		a, ok := m.attached[e.Link.Index]
		if ok {
			a.Link = e.Link
			m.attached[e.Link.Index] = a
		}
		m.mu.Unlock()
		switch sel := m.Selected(e.Link); {
		case sel && !ok:
			m.attach(e.Link)
		case !sel && ok:
			m.detach(e.Link.Index)
		}
	case links.Removed:
		m.detach(e.Link.Index)
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
			m.log.Debug("interface gone before attach", "ifname", l.Name, "ifindex", l.Index)
		} else {
			m.log.Error("attach failed", "ifname", l.Name, "ifindex", l.Index, "role", l.Role.String(), "err", err)
		}
		return
	}
	m.mu.Lock()
	m.attached[l.Index] = Attachment{Link: l, Ring: r}
	m.mu.Unlock()
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
