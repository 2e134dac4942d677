// Package links lists and watches the network interfaces of one network
// namespace over rtnetlink and classifies each by kind (veth, vxlan, geneve,
// bridge, netkit, device, loopback) and by role in the node's network (pod, overlay,
// uplink, bridge, other).
//
// # Kinds and roles
//
// The kind comes from the driver (IFLA_INFO_KIND) and the hardware type: an
// Ethernet interface without a driver kind is a device (a NIC). The role
// comes from kernel facts about topology, never from the driver alone,
// because in a lab the node's NIC may itself be a veth. The first rule that
// matches wins:
//
//   - other: loopback;
//   - overlay: a VXLAN or Geneve device;
//   - uplink: the underlay device of an overlay (IFLA_VXLAN_LINK), or a device
//     that holds a default route (IPv4 or IPv6, any table but local). It
//     comes before pod: a node's NIC may be a veth into another namespace;
//   - bridge: a bridge that is not an uplink;
//   - pod: the host end of a veth or netkit pair whose peer lives in another
//     network namespace (IFLA_LINK_NETNSID). That is what every CNI's pod
//     wiring shares: a Linux bridge (flannel, kubenet), a /32 route with
//     proxy ARP (Calico), a routed veth holding the gateway address (ptp),
//     a Cilium lxc veth with no route at all, an Open vSwitch port (Antrea,
//     OVN-Kubernetes). Masters and routes are reported (MasterKind,
//     HostRoutes) but do not decide. A pair with both ends in this namespace
//     (Cilium's cilium_host and cilium_net) is node-internal: other;
//   - other: everything else.
//
// Roles change with topology: a veth pair created here is "other" until one
// end moves to another namespace, and Watch reports the change. The kernel
// sends no notification for the end that stays; Watch learns the move from
// the RTM_DELLINK of the end that left (IFLA_NEW_NETNSID).
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
// # One owner of link state
//
// In the agent one Watch runs (the attach manager's), and [Current] is the
// one copy of its result: fed every event, it publishes the namespace's
// links as a snapshot and wakes its follower (the path ticker of
// agent/workers). Whoever needs the links reads that snapshot instead of
// listing them again; only the kernel counters of layer 1 are read with
// [List] at scrape time, since they change without an event.
//
// # Concurrency
//
// Watch calls its function on its own goroutine, one event at a time, in
// order: Removed events of a batch first, then Added, then Changed, each in
// interface index order. The function should return quickly; the kernel
// queues notifications meanwhile. Link values are copies the receiver owns.
package links
