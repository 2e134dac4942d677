package links

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/agent/flow"
)

// rawLink is what rtnetlink said about one interface.
type rawLink struct {
	index    int
	name     string
	hwType   uint16
	flags    uint32
	mtu      int
	oper     OperState
	mac      net.HardwareAddr
	master   int
	driver   string
	tunnel   Tunnel // underlay index only; name filled at classification
	stats    Stats
	haveInfo bool
}

// routeKey identifies a route the way the kernel does for replacement.
type routeKey struct {
	family   uint8
	table    uint32
	dst      netip.Prefix
	priority uint32
	tos      uint8
}

type route struct {
	oifs      []int
	isDefault bool
	isHost    bool
}

// state is the kernel's view of one namespace, kept up to date from dumps
// and notifications.
type state struct {
	links  map[int]*rawLink
	routes map[routeKey]route
}

func newState() *state {
	return &state{links: map[int]*rawLink{}, routes: map[routeKey]route{}}
}

// applyLink records a RTM_NEWLINK message.
func (s *state) applyLink(m *rtnetlink.LinkMessage) {
	a := m.Attributes
	if a == nil || m.Index == 0 {
		return
	}
	idx := int(m.Index)
	old := s.links[idx]
	l := &rawLink{
		index:  idx,
		name:   a.Name,
		hwType: m.Type,
		flags:  m.Flags,
		mtu:    int(a.MTU),
		oper:   OperState(a.OperationalState),
		mac:    slices.Clone(a.Address),
	}
	if a.Master != nil {
		l.master = int(*a.Master)
	}
	if a.Stats64 != nil {
		st := a.Stats64
		l.stats = Stats{RxPackets: st.RXPackets, TxPackets: st.TXPackets, RxBytes: st.RXBytes, TxBytes: st.TXBytes,
			RxErrors: st.RXErrors, TxErrors: st.TXErrors, RxDropped: st.RXDropped, TxDropped: st.TXDropped}
	} else if a.Stats != nil {
		st := a.Stats
		l.stats = Stats{RxPackets: uint64(st.RXPackets), TxPackets: uint64(st.TXPackets), RxBytes: uint64(st.RXBytes),
			TxBytes: uint64(st.TXBytes), RxErrors: uint64(st.RXErrors), TxErrors: uint64(st.TXErrors),
			RxDropped: uint64(st.RXDropped), TxDropped: uint64(st.TXDropped)}
	}
	if a.CarrierChanges != nil {
		l.stats.CarrierChanges = *a.CarrierChanges
	}
	if a.Info != nil {
		l.haveInfo = true
		l.driver = a.Info.Kind
		if d, ok := a.Info.Data.(*rtnetlink.LinkData); ok {
			l.tunnel = parseTunnel(l.driver, d.Data)
		}
	} else if old != nil && old.haveInfo {
		// Bridge port notifications carry no IFLA_LINKINFO: keep the kind.
		l.haveInfo, l.driver, l.tunnel = true, old.driver, old.tunnel
	}
	s.links[idx] = l
}

// parseTunnel reads the VNI, port and underlay of IFLA_INFO_DATA.
func parseTunnel(driver string, data []byte) Tunnel {
	var t Tunnel
	if len(data) == 0 || (driver != "vxlan" && driver != "geneve") {
		return t
	}
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return t
	}
	for ad.Next() {
		b := ad.Bytes()
		switch {
		case driver == "vxlan" && ad.Type() == unix.IFLA_VXLAN_ID && len(b) == 4,
			driver == "geneve" && ad.Type() == unix.IFLA_GENEVE_ID && len(b) == 4:
			t.VNI = binary.NativeEndian.Uint32(b)
		case driver == "vxlan" && ad.Type() == unix.IFLA_VXLAN_PORT && len(b) == 2,
			driver == "geneve" && ad.Type() == unix.IFLA_GENEVE_PORT && len(b) == 2:
			t.Port = binary.BigEndian.Uint16(b)
		case driver == "vxlan" && ad.Type() == unix.IFLA_VXLAN_LINK && len(b) == 4:
			t.UnderlayIndex = int(binary.NativeEndian.Uint32(b))
		}
	}
	return t
}

// applyRoute records a RTM_NEWROUTE (del false) or RTM_DELROUTE message.
func (s *state) applyRoute(m *rtnetlink.RouteMessage, del bool) {
	a := &m.Attributes
	table := uint32(m.Table)
	if a.Table != 0 {
		table = a.Table
	}
	if table == unix.RT_TABLE_LOCAL || m.Flags&unix.RTM_F_CLONED != 0 {
		return
	}
	var dst netip.Prefix
	addr, ok := netip.AddrFromSlice(a.Dst)
	switch {
	case ok:
		dst = netip.PrefixFrom(addr.Unmap(), int(m.DstLength))
	case m.Family == unix.AF_INET:
		dst = netip.PrefixFrom(netip.IPv4Unspecified(), int(m.DstLength))
	case m.Family == unix.AF_INET6:
		dst = netip.PrefixFrom(netip.IPv6Unspecified(), int(m.DstLength))
	default:
		return
	}
	k := routeKey{family: m.Family, table: table, dst: dst, priority: a.Priority, tos: m.Tos}
	if del {
		delete(s.routes, k)
		return
	}
	if m.Type != unix.RTN_UNICAST {
		return
	}
	r := route{isDefault: m.DstLength == 0, isHost: (m.Family == unix.AF_INET && m.DstLength == 32) || (m.Family == unix.AF_INET6 && m.DstLength == 128)}
	if a.OutIface != 0 {
		r.oifs = append(r.oifs, int(a.OutIface))
	}
	for _, nh := range a.Multipath {
		r.oifs = append(r.oifs, int(nh.Hop.IfIndex))
	}
	if !r.isDefault && !r.isHost {
		delete(s.routes, k) // not interesting; forget a replaced one
		return
	}
	s.routes[k] = r
}

// kindOf returns the kind of a raw link.
func kindOf(l *rawLink) Kind {
	switch l.driver {
	case "veth":
		return KindVeth
	case "bridge":
		return KindBridge
	case "vxlan":
		return KindVXLAN
	case "geneve":
		return KindGeneve
	case "":
		switch l.hwType {
		case unix.ARPHRD_LOOPBACK:
			return KindLoopback
		case unix.ARPHRD_ETHER:
			if l.flags&unix.IFF_LOOPBACK == 0 {
				return KindDevice
			}
			return KindLoopback
		}
	}
	return KindOther
}

// classify builds the Link of every interface.
func (s *state) classify() map[int]Link {
	defaults := map[int]bool{}
	hostRoutes := map[int]int{}
	for _, r := range s.routes {
		for _, oif := range r.oifs {
			if r.isDefault {
				defaults[oif] = true
			}
			if r.isHost {
				hostRoutes[oif]++
			}
		}
	}
	uplinks := map[int]bool{}
	for i := range defaults {
		uplinks[i] = true
	}
	for _, l := range s.links {
		if k := kindOf(l); (k == KindVXLAN || k == KindGeneve) && l.tunnel.UnderlayIndex != 0 {
			uplinks[l.tunnel.UnderlayIndex] = true
		}
	}
	out := make(map[int]Link, len(s.links))
	for idx, l := range s.links {
		k := kindOf(l)
		ln := Link{
			Index: idx, Name: l.name, Kind: k, Driver: l.driver,
			MTU: l.mtu, Up: l.flags&unix.IFF_UP != 0, Carrier: l.flags&unix.IFF_LOWER_UP != 0,
			OperState: l.oper, MAC: l.mac, MasterIndex: l.master, Tunnel: l.tunnel,
			HostRoutes: hostRoutes[idx], DefaultRoute: defaults[idx], Stats: l.stats,
		}
		if m := s.links[l.master]; m != nil {
			ln.MasterName, ln.MasterKind = m.name, kindOf(m)
		}
		if u := s.links[l.tunnel.UnderlayIndex]; u != nil {
			ln.Tunnel.UnderlayName = u.name
		}
		switch {
		case k == KindLoopback:
			ln.Role = flow.RoleOther
		case k == KindVXLAN || k == KindGeneve:
			ln.Role = flow.RoleOverlay
		case uplinks[idx]:
			ln.Role = flow.RoleUplink
		case k == KindBridge:
			ln.Role = flow.RoleBridge
		case k == KindVeth && (ln.MasterKind == KindBridge || ln.HostRoutes > 0):
			ln.Role = flow.RolePod
		default:
			ln.Role = flow.RoleOther
		}
		out[idx] = ln
	}
	return out
}

// sorted returns the links of m in index order.
func sorted(m map[int]Link) []Link {
	out := make([]Link, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Link) int { return a.Index - b.Index })
	return out
}

// diff returns the events that turn prev into next.
func diff(prev, next map[int]Link) []Event {
	var removed, added, changed []Event
	for idx, old := range prev {
		if _, ok := next[idx]; !ok {
			removed = append(removed, Event{Type: Removed, Link: old})
		}
	}
	for idx, l := range next {
		old, ok := prev[idx]
		switch {
		case !ok:
			added = append(added, Event{Type: Added, Link: l})
		case !old.sameAs(&l):
			changed = append(changed, Event{Type: Changed, Link: l, Old: old})
		}
	}
	byIndex := func(a, b Event) int { return a.Link.Index - b.Link.Index }
	slices.SortFunc(removed, byIndex)
	slices.SortFunc(added, byIndex)
	slices.SortFunc(changed, byIndex)
	return append(append(removed, added...), changed...)
}
