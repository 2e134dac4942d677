package mtu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/internal/nsenter"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

func listLinks(t *testing.T, ns *nsenter.NS) []links.Link {
	t.Helper()
	ls, err := links.List(links.Config{NetNS: ns})
	require.NoError(t, err)
	return ls
}

func linkNamed(t *testing.T, ls []links.Link, name string) links.Link {
	t.Helper()
	for _, l := range ls {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no link %s", name)
	return links.Link{}
}

// The kernel gives a VXLAN bound to a device, and created without an MTU,
// the device's MTU minus its own headroom (50 over IPv4, 70 over IPv6):
// Families and Check must compute exactly that. Lowering the underlay
// afterwards leaves the overlays too large, and Check names them and the
// pod veth above them.
func TestKernelVXLANDefaultsAgree(t *testing.T) {
	testns.RequireRoot(t)
	n := testns.Make(t, "lsmtu")
	require.NoError(t, n.H.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ul0", MTU: 1500}, PeerName: "ul0p"}))
	ul := n.Link(t, "ul0")
	addVX := func(name string, vni int, local, group net.IP) {
		t.Helper()
		vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: name}, VxlanId: vni, VtepDevIndex: ul.Attrs().Index,
			SrcAddr: local, Group: group, Port: 4789}
		require.NoError(t, n.H.LinkAdd(vx), name)
	}
	addVX("vx4", 4, net.ParseIP("10.1.0.1").To4(), nil)
	addVX("vx6", 6, net.ParseIP("fd00::1"), nil)
	addVX("vx6g", 7, nil, net.ParseIP("ff05::100"))
	addVX("vxnone", 8, nil, nil)
	// A pod veth: its peer in a pod namespace, enslaved to a bridge.
	pod := testns.Make(t, "lsmtu")
	require.NoError(t, n.H.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}))
	require.NoError(t, n.H.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth-p", MTU: 1450}, PeerName: "veth-p-peer",
		PeerNamespace: netlink.NsFd(int(pod.Fd))}))
	require.NoError(t, n.H.LinkSetMaster(n.Link(t, "veth-p"), n.Link(t, "br0")))

	ls := listLinks(t, n.Enter)
	fams, err := Families(n.Enter, ls)
	require.NoError(t, err)
	idx := func(name string) int { return linkNamed(t, ls, name).Index }
	require.Equal(t, map[int]Family{idx("vx4"): IPv4, idx("vx6"): IPv6, idx("vx6g"): IPv6, idx("vxnone"): IPv4}, fams)

	r := Check(ls, &Config{Families: fams})
	require.Len(t, r.Overlays, 4)
	for _, o := range r.Overlays {
		require.Equal(t, "ul0", o.Underlay, o.Interface)
		require.Equal(t, o.MTU, o.Expected, "%s: the kernel's default MTU is the expected inner MTU", o.Interface)
	}
	require.Equal(t, 1450, linkNamed(t, ls, "vx4").MTU)
	require.Equal(t, 1430, linkNamed(t, ls, "vx6").MTU)
	require.Equal(t, 1430, r.PodLimit)
	require.Equal(t, []Mismatch{{Interface: "veth-p", Index: idx("veth-p"), Role: flow.RolePod, Expected: 1430, Actual: 1450,
		Reason: ReasonPodAboveOverlay, Source: "vx6"}}, r.Mismatches)

	// The kernel does not shrink a VXLAN when its device shrinks.
	require.NoError(t, n.H.LinkSetMTU(ul, 1400))
	ls = listLinks(t, n.Enter)
	r = Check(ls, &Config{Families: fams})
	var flagged []string
	for _, m := range r.Mismatches {
		flagged = append(flagged, m.Interface)
		if m.Role == flow.RoleOverlay {
			require.Equal(t, ReasonOverlayAboveUnderlay, m.Reason)
			require.Equal(t, linkNamed(t, ls, m.Interface).MTU, m.Actual)
			require.Equal(t, 1400-OverheadIPv4-20*int(fams[m.Index]), m.Expected, m.Interface)
		}
	}
	require.ElementsMatch(t, []string{"vx4", "vx6", "vx6g", "vxnone", "veth-p"}, flagged)
	require.Equal(t, 1330, r.PodLimit)
}

// On the lab: pod-b's host veth at 1500 on the 1450 VXLAN is the one
// mismatch of node-1, and putting it back clears it.
func TestLabPodAboveOverlay(t *testing.T) {
	testns.RequireRoot(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.New(ctx, &lab.Config{Prefix: "mtu" + hex.EncodeToString(b[:]) + "-", StateDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, l.Close()) })

	ns, err := l.Namespace(lab.Node1)
	require.NoError(t, err)
	podB, ok := l.Pod(lab.PodB)
	require.True(t, ok)
	fd, err := netns.GetFromName(l.NetNS(lab.Node1))
	require.NoError(t, err)
	defer fd.Close()
	h, err := netlink.NewHandleAt(fd)
	require.NoError(t, err)
	defer h.Close()
	veth, err := h.LinkByName(podB.HostVeth)
	require.NoError(t, err)

	var tr Tracker
	check := func() (Report, Change) {
		ls := listLinks(t, ns)
		fams, err := Families(ns, ls)
		require.NoError(t, err)
		r := Check(ls, &Config{Families: fams})
		return r, tr.Update(r)
	}

	r, c := check()
	require.Empty(t, r.Mismatches, "the lab starts consistent")
	require.True(t, c.Empty())
	require.Len(t, r.Overlays, 1)
	o := r.Overlays[0]
	require.Equal(t, lab.VXLANName, o.Interface)
	require.Equal(t, lab.NodeIface, o.Underlay)
	require.Equal(t, IPv4, o.Family)
	require.Equal(t, lab.NodeMTU, o.UnderlayMTU)
	require.Equal(t, lab.PodMTU, o.Expected)

	require.NoError(t, h.LinkSetMTU(veth, lab.NodeMTU))
	t.Cleanup(func() { _ = h.LinkSetMTU(veth, lab.PodMTU) })
	r, c = check()
	want := Mismatch{Interface: podB.HostVeth, Index: veth.Attrs().Index, Role: flow.RolePod, Expected: 1450, Actual: 1500,
		Reason: ReasonPodAboveOverlay, Source: lab.VXLANName}
	require.Equal(t, []Mismatch{want}, r.Mismatches)
	require.Equal(t, "veth-pod-b", want.Interface)
	require.Equal(t, []Mismatch{want}, c.Added)
	require.Empty(t, c.Cleared)
	_, c = check()
	require.True(t, c.Empty(), "an unchanged mismatch is reported once")

	require.NoError(t, h.LinkSetMTU(veth, lab.PodMTU))
	r, c = check()
	require.Empty(t, r.Mismatches)
	require.Empty(t, c.Added)
	require.Equal(t, []Mismatch{want}, c.Cleared)
}
