// Package links lists and watches the network interfaces of one network
// namespace over rtnetlink and classifies each by kind (veth, vxlan, geneve,
// bridge, device, loopback) and by role in the node's network (pod, overlay,
// uplink, bridge, other).
//
// # Kinds and roles
//
// The kind comes from the driver (IFLA_INFO_KIND) and the hardware type: an
// Ethernet interface without a driver kind is a device (a NIC). The role
// comes from topology, never from the driver alone, because in a lab the
// node's NIC may itself be a veth:
//
//   - overlay: a VXLAN or Geneve device;
//   - uplink: the underlay device of an overlay (IFLA_VXLAN_LINK), or a device
//     that holds a default route (IPv4 or IPv6, any table but local);
//   - bridge: a bridge that is not an uplink;
//   - pod: a veth enslaved to a bridge, or a veth with a host route (/32 or
//     /128) through it, as routed CNIs set up (Calico, Cilium in routing
//     mode);
//   - other: everything else, loopback included.
//
// Roles change with topology: a veth created on its own is "other" until it
// is enslaved to a bridge or gets a host route, and Watch reports the change.
//
// # Watching
//
// [Watch] subscribes to link and route notifications, then dumps links and
// routes, delivers one [Snapshot] event with every link, and from then on
// [Added], [Changed] and [Removed] events. After each batch of notifications
// the whole namespace is reclassified and compared with what was delivered,
// so a route change that makes a veth a pod yields a Changed event for the
// veth. Changed is not reported for statistics alone: read them with [List]
// at scrape time. Some notifications (bridge port changes) lack the link's
// driver information; the kind last seen for that index is kept. When the
// kernel reports that notifications were lost (ENOBUFS), Watch dumps again
// and delivers the differences.
//
// # Concurrency
//
// Watch calls its function on its own goroutine, one event at a time, in
// order: Removed events of a batch first, then Added, then Changed, each in
// interface index order. The function should return quickly; the kernel
// queues notifications meanwhile. Link values are copies the receiver owns.
package links
