// Package flow holds the leaf types shared by the agent's packages: the
// fixed-size flow key, packet direction, interface role and OSI layer enums.
//
// # Ownership
//
// Every type here is a plain value: it never aliases a capture buffer. Code
// that decodes a frame copies addresses into netip.Addr values before it
// builds a Key, so a Key stays valid after the frame it came from has been
// overwritten by the next read from the ring.
//
// This package imports the standard library only; every other package of the
// agent may import it.
package flow

import (
	"net/netip"
	"strconv"
)

// Key identifies one direction-agnostic transport flow as seen on the wire:
// addresses, ports and IP protocol number. The zero value is the empty key.
// Key is comparable and may be used as a map key.
type Key struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
}

// Reverse returns the key of the opposite direction.
func (k Key) Reverse() Key {
	return Key{Src: k.Dst, Dst: k.Src, SrcPort: k.DstPort, DstPort: k.SrcPort, Proto: k.Proto}
}

// Canonical returns the key ordered so that both directions of one flow map
// to the same value, and whether k had to be reversed to get it.
func (k Key) Canonical() (Key, bool) {
	if c := k.Src.Compare(k.Dst); c > 0 || (c == 0 && k.SrcPort > k.DstPort) {
		return k.Reverse(), true
	}
	return k, false
}

// String formats the key as "proto src:port -> dst:port".
func (k Key) String() string {
	return ProtoName(k.Proto) + " " +
		netip.AddrPortFrom(k.Src, k.SrcPort).String() + " -> " +
		netip.AddrPortFrom(k.Dst, k.DstPort).String()
}

// IP protocol numbers the agent names.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// ProtoName returns the lower-case name of an IP protocol number, or its
// decimal value when it has none here.
func ProtoName(p uint8) string {
	switch p {
	case ProtoICMP:
		return "icmp"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMPv6:
		return "icmpv6"
	case ProtoSCTP:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// Direction is the direction of a captured packet relative to the interface
// it was captured on.
type Direction uint8

// Directions. DirUnknown is the zero value (replayed captures carry none).
const (
	DirUnknown Direction = iota
	DirIn                // received by the interface
	DirOut               // sent by the interface
)

// String returns "in", "out" or "unknown".
func (d Direction) String() string {
	switch d {
	case DirIn:
		return "in"
	case DirOut:
		return "out"
	}
	return "unknown"
}

// Role is the part an interface plays in the node's network.
type Role uint8

// Roles. RoleOther is the zero value.
const (
	RoleOther   Role = iota
	RolePod          // host end of a pod's veth
	RoleOverlay      // VXLAN or Geneve device
	RoleUplink       // the node's NIC: overlay underlay or default-route device
	RoleBridge       // a bridge (cbr0, cni0, ...)
	RoleReplay       // a capture file replayed offline
	NumRoles         // number of roles; for sizing arrays
)

var roleNames = [NumRoles]string{"other", "pod", "overlay", "uplink", "bridge", "replay"}

// String returns the role's metric label value.
func (r Role) String() string {
	if r < NumRoles {
		return roleNames[r]
	}
	return "other"
}

// ParseRole returns the role named s and whether s named one.
func ParseRole(s string) (Role, bool) {
	for i, n := range roleNames {
		if n == s {
			return Role(i), true
		}
	}
	return RoleOther, false
}

// Layer is an OSI layer, 1 to 7.
type Layer uint8

// OSI layers.
const (
	L1 Layer = iota + 1
	L2
	L3
	L4
	L5
	L6
	L7
)

// String returns "l1" … "l7".
func (l Layer) String() string {
	if l >= L1 && l <= L7 {
		return "l" + strconv.Itoa(int(l))
	}
	return "unknown"
}
