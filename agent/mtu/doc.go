// Package mtu checks the MTU configuration of a node's interfaces: it computes
// the inner MTU each overlay (VXLAN, Geneve) can carry over its underlay and
// names every pod veth whose MTU exceeds what the node's overlays carry, the
// classic "50-byte VXLAN problem" behind fragmented or silently dropped pod
// traffic.
//
// # Expected inner MTU
//
// An overlay wraps each inner frame in outer headers. The expected inner MTU
// of an overlay is its underlay's MTU minus that overhead:
//
//   - VXLAN over IPv4: 50 bytes (outer Ethernet 14 + IPv4 20 + UDP 8 +
//     VXLAN 8); over IPv6: 70 bytes (IPv6 is 40);
//   - Geneve: the same 50 or 70 plus its option bytes (Config.GeneveOptions,
//     zero when unknown).
//
// The underlay is the device the tunnel was bound to (links.Tunnel's
// UnderlayIndex, VXLAN "dev"); when none was given (always for Geneve) it is
// the node's uplink of smallest MTU. The underlay's address family is not part
// of links.Link: Families reads it from the overlay's local and remote
// addresses (IFLA_VXLAN_LOCAL6/GROUP6, IFLA_GENEVE_REMOTE6) over rtnetlink.
// An overlay without any address is taken as IPv4, as the kernel itself does
// for VXLAN (it sets VXLAN_F_IPV6 only from an IPv6 local or remote address).
//
// # Mismatches
//
// Check reports, in interface index order:
//
//   - an overlay whose own MTU exceeds its expected inner MTU
//     (ReasonOverlayAboveUnderlay): its full-size frames do not fit the
//     underlay once encapsulated;
//   - a pod veth whose MTU exceeds the node's overlay limit
//     (ReasonPodAboveOverlay). The limit of one overlay is the smaller of its
//     expected inner MTU and its own MTU (a frame larger than either is
//     fragmented or dropped on the way), and the node's limit is the smallest
//     over its overlays;
//   - on a node without overlays (routed CNIs), a pod veth whose MTU exceeds
//     the smallest uplink MTU (ReasonPodAboveUplink).
//
// An overlay whose underlay cannot be found (no uplink at all) still limits
// pods by its own MTU.
//
// # Tracking changes
//
// A Tracker remembers the last set of mismatches and returns what was added
// and what cleared by each new Report, so that the agent logs every mismatch
// once per change rather than once per check.
//
// # Monitor and PMTU log
//
// The agent runs the check on one ticker (agent/workers: at once when a link
// changes, else every second) through a Monitor, which logs each mismatch
// once when it appears and once when it clears, and keeps the result for
// its readers: the metrics read Last, the status and diagnose read Recent
// (mismatches cleared within Recent are still listed, with when they were
// found and fixed). PMTULog keeps the latest ICMP fragmentation-needed and
// packet-too-big reports, one per flow, MTU and interface (at most
// MaxPMTUReports), for the API, the status and the traces.
//
// # Concurrency
//
// Check is a pure function of its arguments. A Tracker may be used from
// several goroutines, and so may a Monitor and a PMTULog. Families opens its own rtnetlink socket inside the
// namespace for each call.
package mtu
