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
	pair     pairAttrs
}

// pairAttrs are the attributes of an ifinfomsg that rtnetlink.LinkMessage
// does not decode: where the other end of a veth or netkit pair is, and,
// in the RTM_DELLINK of an interface moved to another namespace, where it
// went.
type pairAttrs struct {
	link       int   // IFLA_LINK: the peer's index (in the peer's namespace)
	netnsID    int32 // IFLA_LINK_NETNSID, when hasNetNS
	hasNetNS   bool  // the peer is in another namespace than the interface
	newNetnsID int32 // IFLA_NEW_NETNSID, when moved
	moved      bool  // IFLA_NEW_NETNSID present: the interface left for another namespace
	newIfindex int   // IFLA_NEW_IFINDEX: its index there, 0 if not given
}

// parsePairAttrs reads the pair attributes of a RTM_NEWLINK or RTM_DELLINK
// payload (ifinfomsg and attributes). Malformed attributes are ignored:
// rtnetlink.LinkMessage has already validated the message.
func parsePairAttrs(data []byte) pairAttrs {
	var p pairAttrs
	if len(data) <= unix.SizeofIfInfomsg {
		return p
	}
	ad, err := netlink.NewAttributeDecoder(data[unix.SizeofIfInfomsg:])
	if err != nil {
		return p
	}
	for ad.Next() {
		b := ad.Bytes()
		if len(b) != 4 {
			continue
		}
		v := binary.NativeEndian.Uint32(b)
		switch ad.Type() {
		case unix.IFLA_LINK:
			p.link = int(v)
		case unix.IFLA_LINK_NETNSID:
			p.netnsID, p.hasNetNS = int32(v), true
		case unix.IFLA_NEW_NETNSID:
			p.newNetnsID, p.moved = int32(v), true
		case unix.IFLA_NEW_IFINDEX:
			p.newIfindex = int(v)
		}
	}
	return p
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

// applyLink records a RTM_NEWLINK message; p holds its pair attributes.
func (s *state) applyLink(m *rtnetlink.LinkMessage, p pairAttrs) {
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
		pair:   pairAttrs{link: p.link, netnsID: p.netnsID, hasNetNS: p.hasNetNS},
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
	if isPair(l) && !p.hasNetNS && p.link != 0 {
		// The peer is here. If it just arrived from another namespace,
		// its partner's last notification still says it is away: the
		// kernel does not notify a pair's end when the other moves.
		if o := s.links[p.link]; o != nil && o.pair.hasNetNS && isPair(o) {
			o.pair = pairAttrs{link: idx}
		}
	}
}

// deleteLink records a RTM_DELLINK message. An interface moved to another
// namespace is deleted here too, with IFLA_NEW_NETNSID: if it was one end
// of a pair whose other end stays, that end's peer is now in the other
// namespace, which its own (stale) attributes cannot tell, since the
// kernel sends no notification for it.
func (s *state) deleteLink(idx int, p pairAttrs) {
	delete(s.links, idx)
	if !p.moved {
		return
	}
	for _, l := range s.links {
		if isPair(l) && !l.pair.hasNetNS && l.pair.link == idx {
			l.pair = pairAttrs{link: p.newIfindex, netnsID: p.newNetnsID, hasNetNS: true}
		}
	}
}

// isPair reports whether l is one end of an interface pair (veth, netkit).
func isPair(l *rawLink) bool {
	k := kindOf(l)
	return k == KindVeth || k == KindNetkit
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
	case "netkit":
		return KindNetkit
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
		if isPair(l) {
			ln.PeerIndex, ln.PeerNetNS, ln.PeerNetNSID = l.pair.link, l.pair.hasNetNS, l.pair.netnsID
		}
		ln.Role = roleOf(roleFacts{kind: k, uplink: uplinks[idx], peerNetNS: ln.PeerNetNS})
		out[idx] = ln
	}
	return out
}

// roleFacts are the kernel facts a role is decided from.
type roleFacts struct {
	kind Kind
	// uplink: the interface holds a default route or is the underlay of
	// an overlay device.
	uplink bool
	// peerNetNS: a veth or netkit whose other end is in another network
	// namespace (IFLA_LINK_NETNSID present).
	peerNetNS bool
}

// roleOf decides an interface's role. The first rule that matches wins:
//
//  1. loopback: other;
//  2. VXLAN or Geneve: overlay;
//  3. the device of a default route or of an overlay's underlay: uplink.
//     This comes before the pod rule because a node's NIC can itself be the
//     host end of a veth into another namespace (a node that is a network
//     namespace, a container runtime's "eth0");
//  4. a bridge: bridge;
//  5. the host end of a veth or netkit pair whose peer is in another
//     namespace: pod. Every CNI wires a pod so (Linux bridge, /32 route
//     with proxy ARP, routed veth holding the gateway address, Cilium's
//     lxc veths with no route, Open vSwitch ports, netkit); masters and
//     routes are not consulted. Pairs with both ends here (cilium_host and
//     cilium_net) are node-internal and not pods;
//  6. anything else: other.
func roleOf(f roleFacts) flow.Role {
	switch {
	case f.kind == KindLoopback:
		return flow.RoleOther
	case f.kind == KindVXLAN || f.kind == KindGeneve:
		return flow.RoleOverlay
	case f.uplink:
		return flow.RoleUplink
	case f.kind == KindBridge:
		return flow.RoleBridge
	case (f.kind == KindVeth || f.kind == KindNetkit) && f.peerNetNS:
		return flow.RolePod
	}
	return flow.RoleOther
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
