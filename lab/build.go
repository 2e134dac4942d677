package lab

import (
	"context"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/internal/nsenter"
)

// build creates the namespaces, links, routes, VXLAN, kube-proxy rules and
// servers. Everything it makes is recorded so that Close can undo it.
func (l *Lab) build(ctx context.Context) error {
	for _, m := range l.members() {
		if err := createNamedNS(m.netns); err != nil {
			return err
		}
		l.created = append(l.created, m.netns)
		ns, err := nsenter.Open(m.netns)
		if err != nil {
			return err
		}
		l.ns[m.name] = ns
	}
	if err := os.MkdirAll(l.stateDir(), 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if err := l.writePID(); err != nil {
		return err
	}
	handles := map[string]*netlink.Handle{}
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	for _, m := range l.members() {
		h, err := l.handle(m.name)
		if err != nil {
			return err
		}
		handles[m.name] = h
		lo, err := h.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("lo in %s: %w", m.netns, err)
		}
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("lo up in %s: %w", m.netns, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n1, n2 := l.nodes[0], l.nodes[1]
	// The node network: one veth pair, eth0 in each node namespace.
	if err := handles[n1.Name].LinkAdd(&netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: NodeIface, MTU: NodeMTU},
		PeerName:      NodeIface,
		PeerMTU:       NodeMTU,
		PeerNamespace: netlink.NsFd(l.ns[n2.Name].Fd()),
	}); err != nil {
		return fmt.Errorf("node veth: %w", err)
	}
	for _, n := range l.nodes {
		if err := l.buildNode(handles[n.Name], n); err != nil {
			return err
		}
	}
	for _, p := range l.pods {
		if err := l.buildPod(handles[p.Node], handles[p.Name], p); err != nil {
			return err
		}
	}
	for i, n := range l.nodes {
		if err := l.buildVXLAN(handles[n.Name], n, l.nodes[1-i]); err != nil {
			return err
		}
	}
	if l.cfg.Kubernetes {
		if err := l.buildControlPlaneNet(handles); err != nil {
			return err
		}
	} else {
		for _, n := range l.nodes {
			if err := l.applyKubeProxy(ctx, n); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pki, err := newPKI(l.pods)
	if err != nil {
		return err
	}
	l.pki = pki
	if err := pki.save(l.stateDir()); err != nil {
		return err
	}
	l.servers = &servers{lab: l, http: map[string]*podServer{}}
	if err := l.servers.start(); err != nil {
		return err
	}
	if l.cfg.Kubernetes {
		if err := l.startKubernetes(ctx); err != nil {
			return err
		}
	}
	if err := l.startControl(); err != nil {
		// Attached processes then cannot stop backends; the lab still works.
		l.log.Warn("no control socket", "err", err)
	}
	return nil
}

func (l *Lab) buildNode(h *netlink.Handle, n Node) error {
	ns := l.ns[n.Name]
	for key, val := range map[string]string{
		"net.ipv4.ip_forward":             "1",
		"net.ipv4.conf.all.rp_filter":     "0",
		"net.ipv4.conf.default.rp_filter": "0",
	} {
		if err := writeSysctl(ns, key, val); err != nil {
			return err
		}
	}
	// Route bridged pod traffic through iptables where br_netfilter is there
	// (per namespace since Linux 5.3). Without it a backend's reply to a
	// client on the same bridge would be bridged past conntrack and never
	// un-DNATed, so the rules then masquerade all Service traffic, as
	// kube-proxy's --masquerade-all does.
	if err := writeSysctl(ns, "net.bridge.bridge-nf-call-iptables", "1"); err != nil {
		l.log.Info("br_netfilter not available: Service traffic is masqueraded (kube-proxy --masquerade-all)", "node", n.Name, "err", err)
		l.masqueradeAll = true
	}
	eth, err := h.LinkByName(NodeIface)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", NodeIface, n.NetNS, err)
	}
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(n.IP, NodeCIDR.Bits())}); err != nil {
		return fmt.Errorf("address on %s in %s: %w", NodeIface, n.NetNS, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("%s up in %s: %w", NodeIface, n.NetNS, err)
	}
	if l.cfg.Wiring == WiringRouted {
		// Proxy ARP answers only for a target routed through another
		// device than the one asking: give the pods' gateway such a route
		// (a real node has its default route). Nothing is sent to it.
		if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: ipNet(RoutedGateway, 32), Scope: netlink.SCOPE_LINK}); err != nil {
			return fmt.Errorf("route to %s in %s: %w", RoutedGateway, n.NetNS, err)
		}
		return nil
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName, MTU: PodMTU}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("bridge in %s: %w", n.NetNS, err)
	}
	if err := h.AddrAdd(br, &netlink.Addr{IPNet: ipNet(n.BridgeIP, n.PodCIDR.Bits())}); err != nil {
		return fmt.Errorf("bridge address in %s: %w", n.NetNS, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("bridge up in %s: %w", n.NetNS, err)
	}
	return nil
}

func (l *Lab) buildPod(nodeH, podH *netlink.Handle, p Pod) error {
	node, _ := l.Node(p.Node)
	if err := nodeH.LinkAdd(&netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: p.HostVeth, MTU: PodMTU},
		PeerName:      PodIface,
		PeerMTU:       PodMTU,
		PeerNamespace: netlink.NsFd(l.ns[p.Name].Fd()),
	}); err != nil {
		return fmt.Errorf("veth of %s: %w", p.Name, err)
	}
	host, err := nodeH.LinkByName(p.HostVeth)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", p.HostVeth, node.NetNS, err)
	}
	eth, err := podH.LinkByName(PodIface)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", PodIface, p.NetNS, err)
	}
	if l.cfg.Wiring == WiringRouted {
		return l.routePod(nodeH, podH, host, eth, p)
	}
	br, err := nodeH.LinkByName(BridgeName)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", BridgeName, node.NetNS, err)
	}
	if err := nodeH.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("enslave %s: %w", p.HostVeth, err)
	}
	// Hairpin lets a pod reach itself through the Service (pod-a → VIP →
	// pod-a), as kubelet's bridge plugins do.
	if err := nodeH.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("hairpin on %s: %w", p.HostVeth, err)
	}
	if err := nodeH.LinkSetUp(host); err != nil {
		return fmt.Errorf("%s up: %w", p.HostVeth, err)
	}
	if err := podH.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(p.IP, node.PodCIDR.Bits())}); err != nil {
		return fmt.Errorf("address of %s: %w", p.Name, err)
	}
	if err := podH.LinkSetUp(eth); err != nil {
		return fmt.Errorf("%s up in %s: %w", PodIface, p.NetNS, err)
	}
	if err := podH.RouteAdd(&netlink.Route{
		LinkIndex: eth.Attrs().Index,
		Gw:        node.BridgeIP.AsSlice(),
	}); err != nil {
		return fmt.Errorf("default route of %s: %w", p.Name, err)
	}
	return nil
}

// routePod wires a pod the way Calico does: the host end has no address
// and answers ARP by proxy (at once: proxy_delay 0), the node routes the
// pod's /32 through it, and the pod holds a /32 with its default route via
// RoutedGateway, reached through eth0.
func (l *Lab) routePod(nodeH, podH *netlink.Handle, host, eth netlink.Link, p Pod) error {
	node, _ := l.Node(p.Node)
	nodeNS := l.ns[p.Node]
	for key, val := range map[string]string{
		"net.ipv4.conf." + p.HostVeth + ".proxy_arp":    "1",
		"net.ipv4.neigh." + p.HostVeth + ".proxy_delay": "0",
	} {
		if err := writeSysctl(nodeNS, key, val); err != nil {
			return err
		}
	}
	if err := nodeH.LinkSetUp(host); err != nil {
		return fmt.Errorf("%s up: %w", p.HostVeth, err)
	}
	if err := nodeH.RouteAdd(&netlink.Route{LinkIndex: host.Attrs().Index, Dst: ipNet(p.IP, 32), Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("route to %s in %s: %w", p.Name, node.NetNS, err)
	}
	if err := podH.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(p.IP, 32)}); err != nil {
		return fmt.Errorf("address of %s: %w", p.Name, err)
	}
	if err := podH.LinkSetUp(eth); err != nil {
		return fmt.Errorf("%s up in %s: %w", PodIface, p.NetNS, err)
	}
	if err := podH.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: ipNet(RoutedGateway, 32), Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("gateway route of %s: %w", p.Name, err)
	}
	if err := podH.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: RoutedGateway.AsSlice()}); err != nil {
		return fmt.Errorf("default route of %s: %w", p.Name, err)
	}
	return nil
}

// buildVXLAN makes vxlan0 on node n and points the remote node's pod CIDR
// at it the way flannel's vxlan backend does: an onlink route via the remote
// VTEP address, a permanent neighbour entry for that address and a permanent
// FDB entry sending its MAC to the remote node IP.
func (l *Lab) buildVXLAN(h *netlink.Handle, n, remote Node) error {
	eth, err := h.LinkByName(NodeIface)
	if err != nil {
		return err
	}
	vx := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: VXLANName, MTU: PodMTU, HardwareAddr: n.VTEPMAC},
		VxlanId:      VNI,
		VtepDevIndex: eth.Attrs().Index,
		SrcAddr:      n.IP.AsSlice(),
		Port:         VXLANPort,
		Learning:     false,
	}
	if err := h.LinkAdd(vx); err != nil {
		return fmt.Errorf("vxlan in %s: %w", n.NetNS, err)
	}
	link, err := h.LinkByName(VXLANName)
	if err != nil {
		return err
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(n.VTEPIP, 32)}); err != nil {
		return fmt.Errorf("vxlan address in %s: %w", n.NetNS, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("vxlan up in %s: %w", n.NetNS, err)
	}
	idx := link.Attrs().Index
	if err := h.NeighSet(&netlink.Neigh{
		LinkIndex:    idx,
		Family:       unix.AF_INET,
		State:        netlink.NUD_PERMANENT,
		IP:           remote.VTEPIP.AsSlice(),
		HardwareAddr: remote.VTEPMAC,
	}); err != nil {
		return fmt.Errorf("vxlan neighbour in %s: %w", n.NetNS, err)
	}
	if err := h.NeighSet(&netlink.Neigh{
		LinkIndex:    idx,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_PERMANENT,
		Flags:        netlink.NTF_SELF,
		IP:           remote.IP.AsSlice(),
		HardwareAddr: remote.VTEPMAC,
	}); err != nil {
		return fmt.Errorf("vxlan fdb in %s: %w", n.NetNS, err)
	}
	if err := h.RouteAdd(&netlink.Route{
		LinkIndex: idx,
		Dst:       prefixNet(remote.PodCIDR),
		Gw:        remote.VTEPIP.AsSlice(),
		Flags:     int(netlink.FLAG_ONLINK),
	}); err != nil {
		return fmt.Errorf("route to %s in %s: %w", remote.PodCIDR, n.NetNS, err)
	}
	return nil
}

// setMTU sets the MTU of a link in a member's namespace.
func (l *Lab) setMTU(member, ifname string, mtu int) error {
	h, err := l.handle(member)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", ifname, l.NetNS(member), err)
	}
	if err := h.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("mtu %d on %s in %s: %w", mtu, ifname, l.NetNS(member), err)
	}
	return nil
}

// linkMTU returns the MTU of a link in a member's namespace.
func (l *Lab) linkMTU(member, ifname string) (int, error) {
	h, err := l.handle(member)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return 0, fmt.Errorf("%s in %s: %w", ifname, l.NetNS(member), err)
	}
	return link.Attrs().MTU, nil
}
