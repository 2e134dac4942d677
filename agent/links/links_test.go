package links

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/layerscope/layerscope/agent/flow"
)

// topology builds a small node in a fresh namespace:
//
//	cbr0    bridge 10.244.0.1/24
//	vpod0   veth enslaved to cbr0 (peer in a pod namespace)
//	cali1   veth with a host route 10.244.5.7/32 (routed CNI)
//	eth0    veth "NIC" 10.0.0.10/24 with the default route via 10.0.0.1
//	und0    veth 192.168.7.1/24, underlay of vxlan0
//	vxlan0  VXLAN VNI 42, port 4789, dev und0, MTU 1450
//	lone0   veth whose peer lone1 is here too (a node-internal pair)
func topology(t *testing.T) *testNS {
	node, pod, peer := newNS(t), newNS(t), newNS(t)
	br := addBridge(t, node, "cbr0")
	addr, _ := netlink.ParseAddr("10.244.0.1/24")
	require.NoError(t, node.H.AddrAdd(br, addr))
	vethPair(t, node, "vpod0", "10.99.1.1/30", pod, "eth0", "10.244.0.5/24")
	require.NoError(t, node.H.LinkSetMaster(node.Link(t, "vpod0"), br))
	cali := vethPair(t, node, "cali1", "169.254.1.1/32", pod, "eth1", "10.244.5.7/32")
	require.NoError(t, node.H.RouteAdd(&netlink.Route{LinkIndex: cali, Dst: &net.IPNet{IP: net.IPv4(10, 244, 5, 7), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}))
	vethPair(t, node, "eth0", "10.0.0.10/24", peer, "eth0", "10.0.0.1/24")
	require.NoError(t, node.H.RouteAdd(&netlink.Route{Gw: net.IPv4(10, 0, 0, 1)}))
	und := vethPair(t, node, "und0", "192.168.7.1/24", peer, "und0", "192.168.7.2/24")
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan0", MTU: 1450}, VxlanId: 42, Port: 4789, VtepDevIndex: und}
	require.NoError(t, node.H.LinkAdd(vx))
	require.NoError(t, node.H.LinkSetUp(node.Link(t, "vxlan0")))
	vethPair(t, node, "lone0", "10.98.0.1/30", node, "lone1", "10.98.0.2/30")
	return node
}

func byName(ls []Link) map[string]Link {
	m := map[string]Link{}
	for _, l := range ls {
		m[l.Name] = l
	}
	return m
}

func TestListClassifies(t *testing.T) {
	node := topology(t)
	ls, err := List(Config{NetNS: node.Enter})
	require.NoError(t, err)
	m := byName(ls)
	tests := []struct {
		name string
		kind Kind
		role flow.Role
	}{
		{"lo", KindLoopback, flow.RoleOther},
		{"cbr0", KindBridge, flow.RoleBridge},
		{"vpod0", KindVeth, flow.RolePod},
		{"cali1", KindVeth, flow.RolePod},
		{"eth0", KindVeth, flow.RoleUplink},
		{"und0", KindVeth, flow.RoleUplink},
		{"vxlan0", KindVXLAN, flow.RoleOverlay},
		{"lone0", KindVeth, flow.RoleOther},
		{"lone1", KindVeth, flow.RoleOther},
	}
	require.Len(t, ls, len(tests), "links: %v", m)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := m[tt.name]
			require.True(t, ok, "link missing")
			require.Equal(t, tt.kind, l.Kind, "kind")
			require.Equal(t, tt.role, l.Role, "role")
			nl := node.Link(t, tt.name).Attrs()
			require.Equal(t, nl.Index, l.Index)
			require.Equal(t, nl.MTU, l.MTU)
			if len(nl.HardwareAddr) > 0 {
				require.Equal(t, nl.HardwareAddr.String(), l.MAC.String())
			}
			require.Equal(t, nl.MasterIndex, l.MasterIndex)
		})
	}
	require.Equal(t, "cbr0", m["vpod0"].MasterName)
	require.Equal(t, KindBridge, m["vpod0"].MasterKind)
	require.Equal(t, 1, m["cali1"].HostRoutes)
	require.True(t, m["vpod0"].PeerNetNS)
	require.False(t, m["lone0"].PeerNetNS)
	require.Equal(t, m["lone1"].Index, m["lone0"].PeerIndex)
	require.True(t, m["eth0"].DefaultRoute)
	require.Equal(t, Tunnel{VNI: 42, Port: 4789, UnderlayIndex: m["und0"].Index, UnderlayName: "und0"}, m["vxlan0"].Tunnel)
	require.Equal(t, 1450, m["vxlan0"].MTU)
	require.Equal(t, "vxlan", m["vxlan0"].Driver)
	require.True(t, m["eth0"].Up)
	require.Equal(t, OperUp, m["eth0"].OperState)
}

func TestListStats(t *testing.T) {
	a, b := newNS(t), newNS(t)
	vethPair(t, a, "s0", "10.97.0.1/24", b, "s1", "10.97.0.2/24")
	send := func(n int) {
		t.Helper()
		err := a.Enter.Do(func() error {
			c, err := net.ListenUDP("udp4", nil)
			if err != nil {
				return err
			}
			defer c.Close()
			for i := 0; i < n; i++ {
				if _, err := c.WriteToUDP(make([]byte, 100), &net.UDPAddr{IP: net.IPv4(10, 97, 0, 2), Port: 9}); err != nil {
					return err
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	// Resolve the peer's address first: datagrams sent while ARP is
	// pending are queued, and partly dropped, by the neighbour layer.
	start, err := List(Config{NetNS: a.Enter})
	require.NoError(t, err)
	send(1)
	require.Eventually(t, func() bool {
		now, err := List(Config{NetNS: a.Enter})
		return err == nil && byName(now)["s0"].Stats.TxPackets > byName(start)["s0"].Stats.TxPackets+1 // ARP request + datagram
	}, 3*time.Second, 10*time.Millisecond, "ARP for 10.97.0.2 never resolved")
	before, err := List(Config{NetNS: a.Enter})
	require.NoError(t, err)
	// Ten datagrams out of s0. A veth counts them when its peer has
	// received them, in softirq context: wait for that.
	send(10)
	s0 := byName(before)["s0"].Stats
	var s1 Stats
	require.Eventually(t, func() bool {
		after, err := List(Config{NetNS: a.Enter})
		if err != nil {
			return false
		}
		s1 = byName(after)["s0"].Stats
		return s1.TxPackets-s0.TxPackets >= 10
	}, 3*time.Second, 10*time.Millisecond, "tx packets of s0 grew by %d, want 10", s1.TxPackets-s0.TxPackets)
	require.GreaterOrEqual(t, s1.TxPackets-s0.TxPackets, uint64(10))
	require.GreaterOrEqual(t, s1.TxBytes-s0.TxBytes, uint64(10*(14+20+8+100)))
	require.GreaterOrEqual(t, s1.CarrierChanges, uint32(1), "setting the veth up changed its carrier")
}

// watch runs Watch in the background and returns its events.
func watch(t *testing.T, n *testNS) (<-chan Event, []Link) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan Event, 256)
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, Config{NetNS: n.Enter}, func(e Event) { ch <- e }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(2 * time.Second):
			t.Error("Watch did not return after cancel")
		}
	})
	select {
	case e := <-ch:
		require.Equal(t, Snapshot, e.Type)
		return ch, e.Links
	case <-time.After(3 * time.Second):
		t.Fatal("no snapshot")
	}
	return nil, nil
}

// next returns the next event about name, skipping others.
func next(t *testing.T, ch <-chan Event, name string) Event {
	t.Helper()
	return until(t, ch, name, func(Event) bool { return true })
}

// until returns the first event about name for which ok holds. Events
// about name that do not satisfy ok must be Changed events (operational
// state settling, for instance).
func until(t *testing.T, ch <-chan Event, name string, ok func(Event) bool) Event {
	t.Helper()
	timeout := time.After(3 * time.Second)
	for {
		select {
		case e := <-ch:
			if e.Link.Name != name {
				continue
			}
			if ok(e) {
				return e
			}
			require.Equal(t, Changed, e.Type, "unexpected %s event for %s", e.Type, name)
		case <-timeout:
			t.Fatalf("no event for %s", name)
		}
	}
}

func TestWatchEvents(t *testing.T) {
	node := topology(t)
	peer := newNS(t)
	ch, snap := watch(t, node)
	require.Equal(t, flow.RolePod, byName(snap)["vpod0"].Role)

	// A veth created with its peer in another namespace is a pod at once.
	idx := vethPair(t, node, "w0", "10.96.0.1/30", peer, "w0", "10.96.0.2/30")
	e := next(t, ch, "w0")
	require.Equal(t, Added, e.Type)
	require.Equal(t, idx, e.Link.Index)
	require.Equal(t, KindVeth, e.Link.Kind)
	require.Equal(t, flow.RolePod, e.Link.Role)
	require.True(t, e.Link.PeerNetNS)
	until(t, ch, "w0", func(e Event) bool { return e.Link.Up && e.Link.OperState == OperUp })

	// Bridges are evidence, not the rule: enslaving keeps it a pod, and so
	// does leaving the bridge.
	require.NoError(t, node.H.LinkSetMaster(node.Link(t, "w0"), node.Link(t, "cbr0")))
	e = until(t, ch, "w0", func(e Event) bool { return e.Link.MasterIndex != 0 })
	require.Equal(t, flow.RolePod, e.Link.Role)
	require.Equal(t, "cbr0", e.Link.MasterName)
	require.Equal(t, KindVeth, e.Link.Kind, "kind kept across bridge port notifications")

	require.NoError(t, node.H.LinkSetMTU(node.Link(t, "w0"), 1400))
	e = until(t, ch, "w0", func(e Event) bool { return e.Link.MTU != 1500 })
	require.Equal(t, Changed, e.Type)
	require.Equal(t, 1400, e.Link.MTU)
	require.Equal(t, 1500, e.Old.MTU)
	require.Equal(t, flow.RolePod, e.Link.Role)

	require.NoError(t, node.H.LinkSetNoMaster(node.Link(t, "w0")))
	e = until(t, ch, "w0", func(e Event) bool { return e.Link.MasterIndex == 0 })
	require.Equal(t, Changed, e.Type)
	require.Equal(t, flow.RolePod, e.Link.Role)

	// Routes are evidence too: a host route through a node-internal pair
	// does not make it a pod.
	lone := node.Link(t, "lone0")
	rt := &netlink.Route{LinkIndex: lone.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4(10, 244, 9, 9), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}
	require.NoError(t, node.H.RouteAdd(rt))
	e = next(t, ch, "lone0")
	require.Equal(t, Changed, e.Type)
	require.Equal(t, 1, e.Link.HostRoutes)
	require.Equal(t, flow.RoleOther, e.Link.Role)
	require.NoError(t, node.H.RouteDel(rt))
	e = next(t, ch, "lone0")
	require.Zero(t, e.Link.HostRoutes)

	require.NoError(t, node.H.LinkDel(node.Link(t, "w0")))
	e = until(t, ch, "w0", func(e Event) bool { return e.Type == Removed })
	require.Equal(t, Removed, e.Type)
	require.Equal(t, idx, e.Link.Index)
}

// TestWatchPeerMoved: a pair created here is node-internal until one end
// moves to a pod namespace (the kernel tells only that end's namespace),
// and again when it comes back.
func TestWatchPeerMoved(t *testing.T) {
	node, pod := newNS(t), newNS(t)
	ch, _ := watch(t, node)
	require.NoError(t, node.H.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "mv0"}, PeerName: "mvpeer"}))
	e := until(t, ch, "mv0", func(e Event) bool { return e.Type == Added })
	require.Equal(t, flow.RoleOther, e.Link.Role)
	require.False(t, e.Link.PeerNetNS)

	start := time.Now()
	require.NoError(t, node.H.LinkSetNsFd(node.Link(t, "mvpeer"), int(pod.Fd)))
	e = until(t, ch, "mv0", func(e Event) bool { return e.Link.Role == flow.RolePod })
	t.Logf("mv0 became a pod %v after its peer moved", time.Since(start))
	require.Equal(t, Changed, e.Type)
	require.True(t, e.Link.PeerNetNS)
	require.Equal(t, pod.Link(t, "mvpeer").Attrs().Index, e.Link.PeerIndex)
	ls, err := List(Config{NetNS: node.Enter})
	require.NoError(t, err)
	require.Equal(t, e.Link.PeerNetNSID, byName(ls)["mv0"].PeerNetNSID, "the dump agrees")

	require.NoError(t, pod.H.LinkSetNsFd(pod.Link(t, "mvpeer"), int(node.Fd)))
	e = until(t, ch, "mv0", func(e Event) bool { return e.Link.Role != flow.RolePod })
	require.Equal(t, flow.RoleOther, e.Link.Role)
	require.False(t, e.Link.PeerNetNS)
	require.Equal(t, node.Link(t, "mvpeer").Attrs().Index, e.Link.PeerIndex)
}

func TestDiffOrder(t *testing.T) {
	prev := map[int]Link{1: {Index: 1, Name: "a"}, 2: {Index: 2, Name: "b", MTU: 1500}, 5: {Index: 5, Name: "e"}}
	next := map[int]Link{2: {Index: 2, Name: "b", MTU: 1400}, 3: {Index: 3, Name: "c"}, 4: {Index: 4, Name: "d"},
		5: {Index: 5, Name: "e", Stats: Stats{RxPackets: 9}}}
	var got []string
	for _, e := range diff(prev, next) {
		got = append(got, e.Type.String()+":"+e.Link.Name)
	}
	require.Equal(t, []string{"removed:a", "added:c", "added:d", "changed:b"}, got, "stats alone are no change")
}

func TestParseTunnel(t *testing.T) {
	// IFLA_GENEVE_ID 7, IFLA_GENEVE_PORT 6081 (big endian).
	data := []byte{8, 0, 1, 0, 7, 0, 0, 0, 6, 0, 5, 0, 0x17, 0xc1, 0, 0}
	require.Equal(t, Tunnel{VNI: 7, Port: 6081}, parseTunnel("geneve", data))
	require.Equal(t, Tunnel{}, parseTunnel("veth", data))
	require.Equal(t, Tunnel{}, parseTunnel("geneve", []byte{1, 2, 3}))
}
