package links

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/stretchr/testify/require"
	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/agent/flow"
)

func sysctl(t *testing.T, n *testNS, key, val string) {
	t.Helper()
	path := filepath.Join("/proc/sys", filepath.FromSlash(key))
	require.NoError(t, n.Enter.Do(func() error { return os.WriteFile(path, []byte(val), 0o644) }), "sysctl %s", key)
}

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// podVeth makes a veth hostName in node whose peer eth0 is in pod, both up,
// with no address.
func podVeth(t *testing.T, node, pod *testNS, hostName string) (host, peer vnl.Link) {
	t.Helper()
	require.NoError(t, node.H.LinkAdd(&vnl.Veth{LinkAttrs: vnl.LinkAttrs{Name: hostName}, PeerName: "eth0", PeerNamespace: vnl.NsFd(int(pod.Fd))}))
	host, peer = node.Link(t, hostName), pod.Link(t, "eth0")
	require.NoError(t, node.H.LinkSetUp(host))
	require.NoError(t, pod.H.LinkSetUp(peer))
	return host, peer
}

func addAddr(t *testing.T, n *testNS, l vnl.Link, s string) {
	t.Helper()
	a, err := vnl.ParseAddr(s)
	require.NoError(t, err)
	require.NoError(t, n.H.AddrAdd(l, a))
}

func listed(t *testing.T, n *testNS) map[string]Link {
	t.Helper()
	ls, err := List(Config{NetNS: n.Enter})
	require.NoError(t, err)
	return byName(ls)
}

// TestPodWirings builds, in fresh namespaces, the ways CNIs wire a pod and
// checks that the host end of each is a pod, whatever its master or routes.
func TestPodWirings(t *testing.T) {
	t.Run("bridge", func(t *testing.T) {
		node, pod := newNS(t), newNS(t)
		br := addBridge(t, node, "cni0")
		addAddr(t, node, br, "10.244.2.1/24")
		host, peer := podVeth(t, node, pod, "veth1a2b3c")
		require.NoError(t, node.H.LinkSetMaster(host, br))
		addAddr(t, pod, peer, "10.244.2.5/24")
		m := listed(t, node)
		require.Equal(t, flow.RolePod, m["veth1a2b3c"].Role)
		require.Equal(t, KindBridge, m["veth1a2b3c"].MasterKind)
		require.Equal(t, flow.RoleBridge, m["cni0"].Role)
	})

	t.Run("calico", func(t *testing.T) {
		// /32 route to the pod, proxy ARP on the host end, which has no
		// address; the pod's gateway is 169.254.1.1, which nothing holds.
		node, pod, up := newNS(t), newNS(t), newNS(t)
		idx := vethPair(t, node, "eth0", "10.0.0.10/24", up, "eth0", "10.0.0.1/24")
		require.NoError(t, node.H.RouteAdd(&vnl.Route{Gw: net.IPv4(10, 0, 0, 1), LinkIndex: idx}))
		sysctl(t, node, "net/ipv4/ip_forward", "1")
		host, peer := podVeth(t, node, pod, "cali12ab34cd")
		sysctl(t, node, "net/ipv4/conf/cali12ab34cd/proxy_arp", "1")
		require.NoError(t, node.H.RouteAdd(&vnl.Route{LinkIndex: host.Attrs().Index, Dst: cidr("10.244.5.7/32"), Scope: vnl.SCOPE_LINK}))
		addAddr(t, pod, peer, "10.244.5.7/32")
		require.NoError(t, pod.H.RouteAdd(&vnl.Route{LinkIndex: peer.Attrs().Index, Dst: cidr("169.254.1.1/32"), Scope: vnl.SCOPE_LINK}))
		require.NoError(t, pod.H.RouteAdd(&vnl.Route{LinkIndex: peer.Attrs().Index, Gw: net.IPv4(169, 254, 1, 1)}))

		// The wiring works: the pod resolves its gateway to the host end
		// by proxy ARP and reaches the node.
		sendUDPFrom(t, pod, "10.0.0.10:9")
		require.Eventually(t, func() bool {
			ns, err := pod.H.NeighList(peer.Attrs().Index, vnl.FAMILY_V4)
			if err != nil {
				return false
			}
			for _, n := range ns {
				if n.IP.Equal(net.IPv4(169, 254, 1, 1)) && n.HardwareAddr.String() == host.Attrs().HardwareAddr.String() {
					return true
				}
			}
			return false
		}, 3*time.Second, 20*time.Millisecond, "proxy ARP never answered for 169.254.1.1")

		m := listed(t, node)
		require.Equal(t, flow.RolePod, m["cali12ab34cd"].Role)
		require.Equal(t, 1, m["cali12ab34cd"].HostRoutes)
		require.Equal(t, flow.RoleUplink, m["eth0"].Role, "the node's NIC is a veth into another namespace too: the default route decides")
	})

	t.Run("routed-gateway", func(t *testing.T) {
		// ptp/host-local style: the host end holds the pod subnet's
		// gateway address; a connected route, no /32.
		node, pod := newNS(t), newNS(t)
		host, peer := podVeth(t, node, pod, "veth9f8e7d")
		addAddr(t, node, host, "10.244.3.1/24")
		addAddr(t, pod, peer, "10.244.3.5/24")
		require.NoError(t, pod.H.RouteAdd(&vnl.Route{LinkIndex: peer.Attrs().Index, Gw: net.IPv4(10, 244, 3, 1)}))
		sendUDPFrom(t, pod, "10.244.3.1:9")
		m := listed(t, node)
		require.Equal(t, flow.RolePod, m["veth9f8e7d"].Role)
		require.Zero(t, m["veth9f8e7d"].HostRoutes)
		require.Zero(t, m["veth9f8e7d"].MasterIndex)
	})

	t.Run("cilium", func(t *testing.T) {
		// An lxc veth with no address and no route through it; the pod
		// CIDR goes via cilium_host, one end of a pair whose other end,
		// cilium_net, is in the node namespace too.
		node, pod := newNS(t), newNS(t)
		require.NoError(t, node.H.LinkAdd(&vnl.Veth{LinkAttrs: vnl.LinkAttrs{Name: "cilium_host"}, PeerName: "cilium_net"}))
		ch, cn := node.Link(t, "cilium_host"), node.Link(t, "cilium_net")
		require.NoError(t, node.H.LinkSetUp(ch))
		require.NoError(t, node.H.LinkSetUp(cn))
		addAddr(t, node, ch, "10.244.4.1/32")
		require.NoError(t, node.H.RouteAdd(&vnl.Route{LinkIndex: ch.Attrs().Index, Dst: cidr("10.244.4.0/24"), Scope: vnl.SCOPE_LINK}))
		_, peer := podVeth(t, node, pod, "lxc5e6f7a8b9c")
		addAddr(t, pod, peer, "10.244.4.23/32")
		m := listed(t, node)
		require.Equal(t, flow.RolePod, m["lxc5e6f7a8b9c"].Role)
		require.Zero(t, m["lxc5e6f7a8b9c"].HostRoutes)
		require.Equal(t, flow.RoleOther, m["cilium_host"].Role, "node-internal pair")
		require.Equal(t, flow.RoleOther, m["cilium_net"].Role, "node-internal pair")
		require.False(t, m["cilium_host"].PeerNetNS)
		require.Equal(t, m["cilium_net"].Index, m["cilium_host"].PeerIndex)
	})

	t.Run("peer-moved", func(t *testing.T) {
		node, pod := newNS(t), newNS(t)
		require.NoError(t, node.H.LinkAdd(&vnl.Veth{LinkAttrs: vnl.LinkAttrs{Name: "vethmv"}, PeerName: "tmp0"}))
		require.Equal(t, flow.RoleOther, listed(t, node)["vethmv"].Role)
		require.NoError(t, node.H.LinkSetNsFd(node.Link(t, "tmp0"), int(pod.Fd)))
		require.Equal(t, flow.RolePod, listed(t, node)["vethmv"].Role)
	})
}

// sendUDPFrom sends one datagram from inside n.
func sendUDPFrom(t *testing.T, n *testNS, dst string) {
	t.Helper()
	require.NoError(t, n.Enter.Do(func() error {
		c, err := net.Dial("udp4", dst)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("wiring"))
		return err
	}))
}

// recordedLink is an RTM_NEWLINK (or, with del, RTM_DELLINK) as the kernel
// sends it: ifinfomsg, then the attributes the role rule reads.
type recordedLink struct {
	index        int
	name, driver string
	hwType       uint16
	master       int
	link         int    // IFLA_LINK, 0 for none
	netnsID      *int32 // IFLA_LINK_NETNSID
	newNetnsID   *int32 // IFLA_NEW_NETNSID (with del)
	newIfindex   int
	del          bool
}

func (r recordedLink) message(t *testing.T) netlink.Message {
	t.Helper()
	hdr := make([]byte, unix.SizeofIfInfomsg)
	hdr[0] = unix.AF_UNSPEC
	hw := r.hwType
	if hw == 0 {
		hw = unix.ARPHRD_ETHER
	}
	binary.NativeEndian.PutUint16(hdr[2:], hw)
	binary.NativeEndian.PutUint32(hdr[4:], uint32(r.index))
	binary.NativeEndian.PutUint32(hdr[8:], unix.IFF_UP)
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, r.name)
	ae.Uint32(unix.IFLA_MTU, 1500)
	if r.link != 0 {
		ae.Uint32(unix.IFLA_LINK, uint32(r.link))
	}
	if r.master != 0 {
		ae.Uint32(unix.IFLA_MASTER, uint32(r.master))
	}
	if r.netnsID != nil {
		ae.Int32(unix.IFLA_LINK_NETNSID, *r.netnsID)
	}
	if r.newNetnsID != nil {
		ae.Int32(unix.IFLA_NEW_NETNSID, *r.newNetnsID)
		ae.Int32(unix.IFLA_NEW_IFINDEX, int32(r.newIfindex))
	}
	if r.driver != "" {
		ae.Nested(unix.IFLA_LINKINFO, func(nae *netlink.AttributeEncoder) error {
			nae.String(unix.IFLA_INFO_KIND, r.driver)
			return nil
		})
	}
	b, err := ae.Encode()
	require.NoError(t, err)
	typ := uint16(unix.RTM_NEWLINK)
	if r.del {
		typ = unix.RTM_DELLINK
	}
	return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(typ)}, Data: append(hdr, b...)}
}

func nsid(v int32) *int32 { return &v }

// TestRoleRecorded applies link messages with the attributes kernels send
// for wirings this kernel cannot build (Open vSwitch ports, netkit) through
// the same parsing and rule as Watch and List.
func TestRoleRecorded(t *testing.T) {
	s := newState()
	msgs := []recordedLink{
		{index: 1, name: "lo", hwType: unix.ARPHRD_LOOPBACK},
		{index: 2, name: "ens5"}, // NIC: no driver kind
		// Antrea / OVN-Kubernetes: OVS datapath and bridges, internal gateway port, Geneve tunnel.
		{index: 3, name: "ovs-system", driver: "openvswitch"},
		{index: 4, name: "br-int", driver: "openvswitch", master: 3},
		{index: 5, name: "antrea-gw0", driver: "openvswitch", master: 3},
		{index: 6, name: "genev_sys_6081", driver: "geneve", master: 3},
		// Pod ports: veths enslaved to the OVS datapath, peers in pod namespaces.
		{index: 7, name: "coredns--5c7a6b", driver: "veth", master: 3, link: 2, netnsID: nsid(0)},
		{index: 8, name: "web-7d9f-a1b2c3", driver: "veth", master: 3, link: 2, netnsID: nsid(1)},
		// netkit: a pod's primary device here, its peer in the pod; and a
		// pair with both ends here.
		{index: 9, name: "nk-pod0", driver: "netkit", hwType: unix.ARPHRD_NONE, link: 2, netnsID: nsid(2)},
		{index: 10, name: "nk-a", driver: "netkit", hwType: unix.ARPHRD_NONE, link: 11},
		{index: 11, name: "nk-b", driver: "netkit", hwType: unix.ARPHRD_NONE, link: 10},
		// A veth pair created here, then its end 13 moved to namespace 3.
		{index: 12, name: "vmove", driver: "veth", link: 13},
		{index: 13, name: "vmove-peer", driver: "veth", link: 12},
		{index: 13, name: "vmove-peer", driver: "veth", link: 12, del: true, newNetnsID: nsid(3), newIfindex: 2},
	}
	for _, r := range msgs {
		require.NoError(t, s.apply(r.message(t)), r.name)
	}
	// The default route through ens5.
	rm := rtRoute(t, 2)
	require.NoError(t, s.apply(rm))

	got := map[string]flow.Role{}
	kinds := map[string]Kind{}
	for _, l := range s.classify() {
		got[l.Name], kinds[l.Name] = l.Role, l.Kind
	}
	want := map[string]flow.Role{
		"lo": flow.RoleOther, "ens5": flow.RoleUplink,
		"ovs-system": flow.RoleOther, "br-int": flow.RoleOther, "antrea-gw0": flow.RoleOther,
		"genev_sys_6081":  flow.RoleOverlay,
		"coredns--5c7a6b": flow.RolePod, "web-7d9f-a1b2c3": flow.RolePod,
		"nk-pod0": flow.RolePod, "nk-a": flow.RoleOther, "nk-b": flow.RoleOther,
		"vmove": flow.RolePod,
	}
	require.Equal(t, want, got)
	require.Equal(t, KindNetkit, kinds["nk-pod0"])
	require.Equal(t, "netkit", KindNetkit.String())
	l := s.classify()[12]
	require.Equal(t, int32(3), l.PeerNetNSID)
	require.Equal(t, 2, l.PeerIndex, "the moved end's index in its new namespace")
}

// rtRoute is an RTM_NEWROUTE for an IPv4 default route through oif.
func rtRoute(t *testing.T, oif int) netlink.Message {
	t.Helper()
	hdr := []byte{unix.AF_INET, 0, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.RTA_OIF, uint32(oif))
	ae.Bytes(unix.RTA_GATEWAY, []byte{10, 0, 0, 1})
	b, err := ae.Encode()
	require.NoError(t, err)
	return netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWROUTE}, Data: append(hdr, b...)}
}

// TestRoleOrder checks the precedence of the rule on its facts alone.
func TestRoleOrder(t *testing.T) {
	tests := []struct {
		name string
		f    roleFacts
		want flow.Role
	}{
		{"veth to another namespace", roleFacts{kind: KindVeth, peerNetNS: true}, flow.RolePod},
		{"netkit to another namespace", roleFacts{kind: KindNetkit, peerNetNS: true}, flow.RolePod},
		{"node NIC that is a veth", roleFacts{kind: KindVeth, peerNetNS: true, uplink: true}, flow.RoleUplink},
		{"node-internal veth pair", roleFacts{kind: KindVeth}, flow.RoleOther},
		{"vxlan with a default route", roleFacts{kind: KindVXLAN, uplink: true}, flow.RoleOverlay},
		{"bridge", roleFacts{kind: KindBridge}, flow.RoleBridge},
		{"NIC", roleFacts{kind: KindDevice}, flow.RoleOther},
		{"macvlan", roleFacts{kind: KindOther, peerNetNS: true}, flow.RoleOther},
		{"loopback", roleFacts{kind: KindLoopback, uplink: true}, flow.RoleOther},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, roleOf(tt.f), tt.name)
	}
}
