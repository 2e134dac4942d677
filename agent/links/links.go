package links

import (
	"bytes"
	"net"
	"strconv"

	"github.com/layerscope/layerscope/agent/flow"
)

// Kind is the type of an interface.
type Kind uint8

// Kinds. KindOther is the zero value.
const (
	KindOther    Kind = iota // any other driver (dummy, macvlan, tun, bond, ...)
	KindDevice               // Ethernet device without a driver kind: a NIC
	KindLoopback             // lo
	KindVeth                 // one end of a veth pair
	KindBridge               // Linux bridge
	KindVXLAN                // VXLAN tunnel device
	KindGeneve               // Geneve tunnel device
	KindNetkit               // one end of a netkit pair
	NumKinds                 // number of kinds; for sizing arrays
)

var kindNames = [NumKinds]string{"other", "device", "loopback", "veth", "bridge", "vxlan", "geneve", "netkit"}

// String returns the kind's metric label value.
func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return "other"
}

// OperState is the RFC 2863 operational state of an interface (IF_OPER_*).
type OperState uint8

// Operational states.
const (
	OperUnknown OperState = iota
	OperNotPresent
	OperDown
	OperLowerLayerDown
	OperTesting
	OperDormant
	OperUp
)

var operNames = [...]string{"unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"}

// String returns the state as ip-link(8) prints it, in lower case.
func (s OperState) String() string {
	if int(s) < len(operNames) {
		return operNames[s]
	}
	return "state" + strconv.Itoa(int(s))
}

// Tunnel describes a VXLAN or Geneve device.
type Tunnel struct {
	VNI  uint32 // virtual network identifier
	Port uint16 // UDP destination port (4789 for VXLAN, 6081 for Geneve by default)
	// UnderlayIndex is the device the tunnel sends through (VXLAN "dev"),
	// 0 when none was given; UnderlayName is its name when known.
	UnderlayIndex int
	UnderlayName  string
}

// Stats are the interface's kernel counters (IFLA_STATS64) and carrier
// change count, as of the message the Link was built from.
type Stats struct {
	RxPackets, TxPackets uint64
	RxBytes, TxBytes     uint64
	RxErrors, TxErrors   uint64
	RxDropped, TxDropped uint64
	CarrierChanges       uint32
}

// Link is one interface, classified. It is a value owned by its receiver.
type Link struct {
	Index  int
	Name   string
	Kind   Kind
	Driver string // IFLA_INFO_KIND: "veth", "vxlan", ...; "" for a NIC or lo
	Role   flow.Role

	MTU       int
	Up        bool // administratively up (IFF_UP)
	Carrier   bool // IFF_LOWER_UP
	OperState OperState
	MAC       net.HardwareAddr

	// MasterIndex is the index of the bridge (or bond) the link is
	// enslaved to, 0 if none; MasterName and MasterKind describe it.
	MasterIndex int
	MasterName  string
	MasterKind  Kind

	Tunnel Tunnel // set for KindVXLAN and KindGeneve

	// PeerIndex is the interface index of the other end of a veth or
	// netkit pair (IFLA_LINK), 0 when unknown. It is an index in the
	// peer's namespace: in this one only when PeerNetNS is false.
	PeerIndex int
	// PeerNetNS reports that the pair's other end lives in another network
	// namespace (IFLA_LINK_NETNSID is present); PeerNetNSID is that
	// namespace's id as seen from this one.
	PeerNetNS   bool
	PeerNetNSID int32

	// HostRoutes is the number of /32 and /128 unicast routes through the
	// link; DefaultRoute reports a default route through it.
	HostRoutes   int
	DefaultRoute bool

	Stats Stats
}

// sameAs reports whether l and o are equal except for their statistics.
func (l *Link) sameAs(o *Link) bool {
	return l.Index == o.Index && l.Name == o.Name && l.Kind == o.Kind && l.Driver == o.Driver &&
		l.Role == o.Role && l.MTU == o.MTU && l.Up == o.Up && l.Carrier == o.Carrier &&
		l.OperState == o.OperState && bytes.Equal(l.MAC, o.MAC) &&
		l.MasterIndex == o.MasterIndex && l.MasterName == o.MasterName && l.MasterKind == o.MasterKind &&
		l.Tunnel == o.Tunnel && l.PeerIndex == o.PeerIndex && l.PeerNetNS == o.PeerNetNS &&
		l.PeerNetNSID == o.PeerNetNSID && l.HostRoutes == o.HostRoutes && l.DefaultRoute == o.DefaultRoute
}

// EventType says what an Event reports.
type EventType uint8

// Event types.
const (
	Snapshot EventType = iota // Links holds every link; delivered first, once
	Added                     // Link appeared
	Changed                   // Link changed (Old is its previous state)
	Removed                   // Link is gone (Link is its last state)
)

var eventNames = [...]string{"snapshot", "added", "changed", "removed"}

func (t EventType) String() string {
	if int(t) < len(eventNames) {
		return eventNames[t]
	}
	return "event" + strconv.Itoa(int(t))
}

// Event is one change delivered by Watch.
type Event struct {
	Type  EventType
	Link  Link   // Added, Changed, Removed
	Old   Link   // Changed
	Links []Link // Snapshot, in index order
}
