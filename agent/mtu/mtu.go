package mtu

import (
	"cmp"
	"log/slog"
	"slices"
	"strconv"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/links"
)

// Encapsulation overheads in bytes: outer Ethernet (14) + IP header + UDP (8)
// + VXLAN or Geneve base header (8).
const (
	OverheadIPv4 = 14 + 20 + 8 + 8 // 50
	OverheadIPv6 = 14 + 40 + 8 + 8 // 70
)

// Family is the address family of an overlay's underlay.
type Family uint8

// Families. IPv4 is the zero value: an overlay without addresses is IPv4.
const (
	IPv4 Family = iota
	IPv6
)

// String returns "ipv4" or "ipv6".
func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// Reason says why an interface is a mismatch.
type Reason uint8

// Reasons, in the order Check reports them for one interface.
const (
	// ReasonOverlayAboveUnderlay: the overlay's MTU exceeds its underlay's
	// MTU minus the encapsulation overhead.
	ReasonOverlayAboveUnderlay Reason = iota
	// ReasonPodAboveOverlay: the pod veth's MTU exceeds the smallest inner
	// MTU of the node's overlays.
	ReasonPodAboveOverlay
	// ReasonPodAboveUplink: the node has no overlay and the pod veth's MTU
	// exceeds the smallest uplink MTU.
	ReasonPodAboveUplink
	numReasons
)

var reasonNames = [numReasons]string{"overlay_above_underlay", "pod_above_overlay", "pod_above_uplink"}

// String returns the reason as a label value.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "reason" + strconv.Itoa(int(r))
}

// Config tunes Check. A nil *Config means the zero value.
type Config struct {
	// Families maps an overlay's interface index to its underlay's address
	// family (see Families). An overlay not in the map is IPv4; nil means
	// every overlay is IPv4.
	Families map[int]Family

	// GeneveOptions is the number of option bytes the node's Geneve tunnels
	// add after the 8-byte base header. Zero means none (the overhead is
	// then the same as VXLAN's).
	GeneveOptions int
}

// Overlay is the MTU expectation for one VXLAN or Geneve device.
type Overlay struct {
	Interface string
	Index     int
	Kind      links.Kind // KindVXLAN or KindGeneve
	MTU       int        // the overlay's own MTU

	// Underlay is the device the expectation is computed from: the
	// tunnel's bound device, else the uplink of smallest MTU. Its fields are
	// zero when the node has neither.
	Underlay      string
	UnderlayIndex int
	UnderlayMTU   int

	Family   Family
	Overhead int // encapsulation bytes: 50 or 70, plus Geneve options

	// Expected is UnderlayMTU − Overhead, 0 when the underlay is unknown.
	Expected int
	// Limit is the largest inner packet that crosses the overlay whole:
	// min(Expected, MTU), or MTU when Expected is unknown.
	Limit int
}

// Mismatch is one interface whose MTU exceeds what it can carry.
type Mismatch struct {
	Interface string
	Index     int
	Role      flow.Role // RolePod or RoleOverlay
	Expected  int       // the largest MTU that fits
	Actual    int       // the interface's MTU
	Reason    Reason
	// Source names the interface Expected comes from: the underlay for an
	// overlay, the limiting overlay or uplink for a pod.
	Source string
}

// LogValue renders the mismatch as a group of slog attributes.
func (m Mismatch) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("interface", m.Interface),
		slog.Int("index", m.Index),
		slog.String("role", m.Role.String()),
		slog.Int("expected", m.Expected),
		slog.Int("actual", m.Actual),
		slog.String("reason", m.Reason.String()),
		slog.String("source", m.Source),
	)
}

// Report is the result of one Check.
type Report struct {
	// Overlays holds one expectation per VXLAN or Geneve device, in index
	// order.
	Overlays []Overlay
	// PodLimit is the MTU no pod veth should exceed: the smallest Limit of
	// the overlays, else the smallest uplink MTU; 0 when the node has
	// neither. PodLimitSource names the interface it comes from.
	PodLimit       int
	PodLimitSource string
	// Mismatches are ordered by interface index, then Reason.
	Mismatches []Mismatch
}

// Check computes the overlays' expected inner MTUs from ls (one namespace's
// links, as links.List returns them) and reports every mismatch. cfg may be
// nil. Check does not retain ls.
func Check(ls []links.Link, cfg *Config) Report {
	if cfg == nil {
		cfg = &Config{}
	}
	var r Report
	byIndex := make(map[int]int, len(ls))
	uplink := -1 // position in ls of the uplink of smallest MTU
	for i := range ls {
		l := &ls[i]
		byIndex[l.Index] = i
		if l.Role == flow.RoleUplink && l.Kind != links.KindVXLAN && l.Kind != links.KindGeneve && l.MTU > 0 {
			if uplink < 0 || l.MTU < ls[uplink].MTU || (l.MTU == ls[uplink].MTU && l.Index < ls[uplink].Index) {
				uplink = i
			}
		}
	}

	for i := range ls {
		l := &ls[i]
		if l.Kind != links.KindVXLAN && l.Kind != links.KindGeneve {
			continue
		}
		o := Overlay{Interface: l.Name, Index: l.Index, Kind: l.Kind, MTU: l.MTU, Family: cfg.Families[l.Index]}
		o.Overhead = OverheadIPv4
		if o.Family == IPv6 {
			o.Overhead = OverheadIPv6
		}
		if l.Kind == links.KindGeneve {
			o.Overhead += max(cfg.GeneveOptions, 0)
		}
		u := -1
		if j, ok := byIndex[l.Tunnel.UnderlayIndex]; ok && l.Tunnel.UnderlayIndex != 0 && ls[j].MTU > 0 {
			u = j
		} else if uplink >= 0 {
			u = uplink
		}
		if u >= 0 {
			o.Underlay, o.UnderlayIndex, o.UnderlayMTU = ls[u].Name, ls[u].Index, ls[u].MTU
			o.Expected = max(o.UnderlayMTU-o.Overhead, 0)
		}
		o.Limit = o.MTU
		if o.Expected > 0 {
			o.Limit = min(o.Expected, o.MTU)
			if o.MTU > o.Expected {
				r.Mismatches = append(r.Mismatches, Mismatch{
					Interface: o.Interface, Index: o.Index, Role: flow.RoleOverlay,
					Expected: o.Expected, Actual: o.MTU, Reason: ReasonOverlayAboveUnderlay, Source: o.Underlay,
				})
			}
		}
		if o.Limit > 0 && (r.PodLimit == 0 || o.Limit < r.PodLimit) {
			r.PodLimit, r.PodLimitSource = o.Limit, o.Interface
		}
		r.Overlays = append(r.Overlays, o)
	}

	reason := ReasonPodAboveOverlay
	if len(r.Overlays) == 0 && uplink >= 0 {
		r.PodLimit, r.PodLimitSource = ls[uplink].MTU, ls[uplink].Name
		reason = ReasonPodAboveUplink
	}
	if r.PodLimit > 0 {
		for i := range ls {
			l := &ls[i]
			if l.Role == flow.RolePod && l.MTU > r.PodLimit {
				r.Mismatches = append(r.Mismatches, Mismatch{
					Interface: l.Name, Index: l.Index, Role: flow.RolePod,
					Expected: r.PodLimit, Actual: l.MTU, Reason: reason, Source: r.PodLimitSource,
				})
			}
		}
	}
	slices.SortFunc(r.Overlays, func(a, b Overlay) int { return cmp.Compare(a.Index, b.Index) })
	slices.SortFunc(r.Mismatches, compareMismatch)
	return r
}

func compareMismatch(a, b Mismatch) int {
	if c := cmp.Compare(a.Index, b.Index); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Reason, b.Reason); c != 0 {
		return c
	}
	return cmp.Compare(a.Interface, b.Interface)
}
