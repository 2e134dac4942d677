package mtu

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/links"
)

func nic(idx int, name string, mtu int) links.Link {
	return links.Link{Index: idx, Name: name, Kind: links.KindDevice, Role: flow.RoleUplink, MTU: mtu, DefaultRoute: true}
}

func vxlan(idx int, name string, mtu, underlay int) links.Link {
	return links.Link{Index: idx, Name: name, Kind: links.KindVXLAN, Driver: "vxlan", Role: flow.RoleOverlay, MTU: mtu,
		Tunnel: links.Tunnel{VNI: 1, Port: 4789, UnderlayIndex: underlay}}
}

func geneve(idx int, name string, mtu int) links.Link {
	return links.Link{Index: idx, Name: name, Kind: links.KindGeneve, Driver: "geneve", Role: flow.RoleOverlay, MTU: mtu,
		Tunnel: links.Tunnel{VNI: 2, Port: 6081}}
}

func pod(idx int, name string, mtu int) links.Link {
	return links.Link{Index: idx, Name: name, Kind: links.KindVeth, Driver: "veth", Role: flow.RolePod, MTU: mtu, MasterIndex: 4, MasterName: "cbr0"}
}

func bridge(idx int, mtu int) links.Link {
	return links.Link{Index: idx, Name: "cbr0", Kind: links.KindBridge, Driver: "bridge", Role: flow.RoleBridge, MTU: mtu}
}

func lo() links.Link {
	return links.Link{Index: 1, Name: "lo", Kind: links.KindLoopback, Role: flow.RoleOther, MTU: 65536}
}

func podMismatch(idx int, name string, expected, actual int, reason Reason, source string) Mismatch {
	return Mismatch{Interface: name, Index: idx, Role: flow.RolePod, Expected: expected, Actual: actual, Reason: reason, Source: source}
}

func overlayMismatch(idx int, name string, expected, actual int, source string) Mismatch {
	return Mismatch{Interface: name, Index: idx, Role: flow.RoleOverlay, Expected: expected, Actual: actual, Reason: ReasonOverlayAboveUnderlay, Source: source}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name       string
		links      []links.Link
		cfg        *Config
		overlays   []Overlay
		podLimit   int
		limitFrom  string
		mismatches []Mismatch
	}{
		{
			name:      "lab: pod-b at 1500 on the 1450 VXLAN",
			links:     []links.Link{lo(), nic(2, "eth0", 1500), vxlan(3, "vxlan0", 1450, 2), bridge(4, 1450), pod(5, "veth-pod-a", 1450), pod(6, "veth-pod-b", 1500)},
			overlays:  []Overlay{{Interface: "vxlan0", Index: 3, Kind: links.KindVXLAN, MTU: 1450, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Overhead: 50, Expected: 1450, Limit: 1450}},
			podLimit:  1450,
			limitFrom: "vxlan0",
			mismatches: []Mismatch{
				podMismatch(6, "veth-pod-b", 1450, 1500, ReasonPodAboveOverlay, "vxlan0"),
			},
		},
		{
			name:      "lab: every pod at 1450",
			links:     []links.Link{lo(), nic(2, "eth0", 1500), vxlan(3, "vxlan0", 1450, 2), bridge(4, 1450), pod(5, "veth-pod-a", 1450), pod(6, "veth-pod-b", 1450)},
			overlays:  []Overlay{{Interface: "vxlan0", Index: 3, Kind: links.KindVXLAN, MTU: 1450, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Overhead: 50, Expected: 1450, Limit: 1450}},
			podLimit:  1450,
			limitFrom: "vxlan0",
		},
		{
			name:      "pods below the overlay are fine",
			links:     []links.Link{nic(2, "eth0", 1500), vxlan(3, "vxlan0", 1450, 2), pod(5, "veth-a", 1400)},
			overlays:  []Overlay{{Interface: "vxlan0", Index: 3, Kind: links.KindVXLAN, MTU: 1450, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Overhead: 50, Expected: 1450, Limit: 1450}},
			podLimit:  1450,
			limitFrom: "vxlan0",
		},
		{
			name:      "VXLAN left at 1500 on a 1500 underlay: overlay and pods flagged",
			links:     []links.Link{nic(2, "eth0", 1500), vxlan(3, "flannel.1", 1500, 2), pod(7, "veth2", 1500), pod(5, "veth1", 1500)},
			overlays:  []Overlay{{Interface: "flannel.1", Index: 3, Kind: links.KindVXLAN, MTU: 1500, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Overhead: 50, Expected: 1450, Limit: 1450}},
			podLimit:  1450,
			limitFrom: "flannel.1",
			mismatches: []Mismatch{
				overlayMismatch(3, "flannel.1", 1450, 1500, "eth0"),
				podMismatch(5, "veth1", 1450, 1500, ReasonPodAboveOverlay, "flannel.1"),
				podMismatch(7, "veth2", 1450, 1500, ReasonPodAboveOverlay, "flannel.1"),
			},
		},
		{
			name:      "IPv6 underlay costs 70: a 1450 VXLAN is 20 too large",
			links:     []links.Link{nic(2, "eth0", 1500), vxlan(3, "vxlan0", 1450, 2), pod(5, "veth-a", 1430), pod(6, "veth-b", 1450)},
			cfg:       &Config{Families: map[int]Family{3: IPv6}},
			overlays:  []Overlay{{Interface: "vxlan0", Index: 3, Kind: links.KindVXLAN, MTU: 1450, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Family: IPv6, Overhead: 70, Expected: 1430, Limit: 1430}},
			podLimit:  1430,
			limitFrom: "vxlan0",
			mismatches: []Mismatch{
				overlayMismatch(3, "vxlan0", 1430, 1450, "eth0"),
				podMismatch(6, "veth-b", 1430, 1450, ReasonPodAboveOverlay, "vxlan0"),
			},
		},
		{
			name:      "overlay MTU below the expectation limits pods by its own MTU",
			links:     []links.Link{nic(2, "eth0", 1500), vxlan(3, "vxlan0", 1400, 2), pod(5, "veth-a", 1450)},
			overlays:  []Overlay{{Interface: "vxlan0", Index: 3, Kind: links.KindVXLAN, MTU: 1400, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Overhead: 50, Expected: 1450, Limit: 1400}},
			podLimit:  1400,
			limitFrom: "vxlan0",
			mismatches: []Mismatch{
				podMismatch(5, "veth-a", 1400, 1450, ReasonPodAboveOverlay, "vxlan0"),
			},
		},
		{
			name:      "Geneve has no bound device: the uplink of smallest MTU, options unknown",
			links:     []links.Link{nic(2, "eth0", 9000), nic(3, "eth1", 1500), geneve(4, "genev_sys_6081", 1450), pod(5, "lxc1", 1450)},
			overlays:  []Overlay{{Interface: "genev_sys_6081", Index: 4, Kind: links.KindGeneve, MTU: 1450, Underlay: "eth1", UnderlayIndex: 3, UnderlayMTU: 1500, Overhead: 50, Expected: 1450, Limit: 1450}},
			podLimit:  1450,
			limitFrom: "genev_sys_6081",
		},
		{
			name:      "Geneve options add to the overhead",
			links:     []links.Link{nic(2, "eth0", 1500), geneve(4, "genev_sys_6081", 1450), pod(5, "lxc1", 1450), pod(6, "lxc2", 1400)},
			cfg:       &Config{GeneveOptions: 8},
			overlays:  []Overlay{{Interface: "genev_sys_6081", Index: 4, Kind: links.KindGeneve, MTU: 1450, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Overhead: 58, Expected: 1442, Limit: 1442}},
			podLimit:  1442,
			limitFrom: "genev_sys_6081",
			mismatches: []Mismatch{
				overlayMismatch(4, "genev_sys_6081", 1442, 1450, "eth0"),
				podMismatch(5, "lxc1", 1442, 1450, ReasonPodAboveOverlay, "genev_sys_6081"),
			},
		},
		{
			name:      "Geneve over IPv6 with options",
			links:     []links.Link{nic(2, "eth0", 1500), geneve(4, "gnv0", 1430), pod(5, "lxc1", 1430)},
			cfg:       &Config{GeneveOptions: 4, Families: map[int]Family{4: IPv6}},
			overlays:  []Overlay{{Interface: "gnv0", Index: 4, Kind: links.KindGeneve, MTU: 1430, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Family: IPv6, Overhead: 74, Expected: 1426, Limit: 1426}},
			podLimit:  1426,
			limitFrom: "gnv0",
			mismatches: []Mismatch{
				overlayMismatch(4, "gnv0", 1426, 1430, "eth0"),
				podMismatch(5, "lxc1", 1426, 1430, ReasonPodAboveOverlay, "gnv0"),
			},
		},
		{
			name: "two overlays: pods are held to the smaller",
			links: []links.Link{nic(2, "eth0", 1500), nic(3, "eth1", 9000), vxlan(10, "vxlan-a", 1450, 2), vxlan(11, "vxlan-b", 8950, 3),
				pod(20, "veth-a", 1450), pod(21, "veth-b", 8950)},
			overlays: []Overlay{
				{Interface: "vxlan-a", Index: 10, Kind: links.KindVXLAN, MTU: 1450, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Overhead: 50, Expected: 1450, Limit: 1450},
				{Interface: "vxlan-b", Index: 11, Kind: links.KindVXLAN, MTU: 8950, Underlay: "eth1", UnderlayIndex: 3, UnderlayMTU: 9000, Overhead: 50, Expected: 8950, Limit: 8950},
			},
			podLimit:  1450,
			limitFrom: "vxlan-a",
			mismatches: []Mismatch{
				podMismatch(21, "veth-b", 1450, 8950, ReasonPodAboveOverlay, "vxlan-a"),
			},
		},
		{
			name:      "bound device not among the links: the uplink stands in",
			links:     []links.Link{nic(2, "eth0", 1500), vxlan(3, "vxlan0", 1450, 99), pod(5, "veth-a", 1450)},
			overlays:  []Overlay{{Interface: "vxlan0", Index: 3, Kind: links.KindVXLAN, MTU: 1450, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Overhead: 50, Expected: 1450, Limit: 1450}},
			podLimit:  1450,
			limitFrom: "vxlan0",
		},
		{
			name:      "no underlay at all: the overlay's own MTU limits pods",
			links:     []links.Link{lo(), vxlan(3, "vxlan0", 1450, 0), pod(5, "veth-a", 1500)},
			overlays:  []Overlay{{Interface: "vxlan0", Index: 3, Kind: links.KindVXLAN, MTU: 1450, Overhead: 50, Limit: 1450}},
			podLimit:  1450,
			limitFrom: "vxlan0",
			mismatches: []Mismatch{
				podMismatch(5, "veth-a", 1450, 1500, ReasonPodAboveOverlay, "vxlan0"),
			},
		},
		{
			name:      "jumbo frames",
			links:     []links.Link{nic(2, "ens5", 9001), vxlan(3, "vxlan.calico", 8951, 2), pod(5, "cali1", 8951), pod(6, "cali2", 1500)},
			overlays:  []Overlay{{Interface: "vxlan.calico", Index: 3, Kind: links.KindVXLAN, MTU: 8951, Underlay: "ens5", UnderlayIndex: 2, UnderlayMTU: 9001, Overhead: 50, Expected: 8951, Limit: 8951}},
			podLimit:  8951,
			limitFrom: "vxlan.calico",
		},
		{
			name:      "routed CNI without overlay: pods against the uplink",
			links:     []links.Link{lo(), nic(2, "ens5", 9001), pod(5, "cali1", 9001), pod(6, "cali2", 9100)},
			podLimit:  9001,
			limitFrom: "ens5",
			mismatches: []Mismatch{
				podMismatch(6, "cali2", 9001, 9100, ReasonPodAboveUplink, "ens5"),
			},
		},
		{
			name:  "neither overlay nor uplink: nothing to compare with",
			links: []links.Link{lo(), pod(5, "veth-a", 9000)},
		},
		{
			name: "only pod veths are checked",
			links: []links.Link{nic(2, "eth0", 1500), vxlan(3, "vxlan0", 1450, 2),
				{Index: 7, Name: "veth-loose", Kind: links.KindVeth, Role: flow.RoleOther, MTU: 1500}, bridge(4, 1500)},
			overlays:  []Overlay{{Interface: "vxlan0", Index: 3, Kind: links.KindVXLAN, MTU: 1450, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Overhead: 50, Expected: 1450, Limit: 1450}},
			podLimit:  1450,
			limitFrom: "vxlan0",
		},
		{
			name:      "input order does not matter",
			links:     []links.Link{pod(9, "veth-z", 1500), pod(6, "veth-b", 1500), vxlan(3, "vxlan0", 1450, 2), nic(2, "eth0", 1500)},
			overlays:  []Overlay{{Interface: "vxlan0", Index: 3, Kind: links.KindVXLAN, MTU: 1450, Underlay: "eth0", UnderlayIndex: 2, UnderlayMTU: 1500, Overhead: 50, Expected: 1450, Limit: 1450}},
			podLimit:  1450,
			limitFrom: "vxlan0",
			mismatches: []Mismatch{
				podMismatch(6, "veth-b", 1450, 1500, ReasonPodAboveOverlay, "vxlan0"),
				podMismatch(9, "veth-z", 1450, 1500, ReasonPodAboveOverlay, "vxlan0"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]links.Link(nil), tt.links...)
			r := Check(tt.links, tt.cfg)
			require.Equal(t, tt.overlays, r.Overlays)
			require.Equal(t, tt.podLimit, r.PodLimit)
			require.Equal(t, tt.limitFrom, r.PodLimitSource)
			require.Equal(t, tt.mismatches, r.Mismatches)
			require.Equal(t, in, tt.links, "Check must not modify its input")
		})
	}
}

func TestReasonAndFamilyStrings(t *testing.T) {
	require.Equal(t, "pod_above_overlay", ReasonPodAboveOverlay.String())
	require.Equal(t, "pod_above_uplink", ReasonPodAboveUplink.String())
	require.Equal(t, "overlay_above_underlay", ReasonOverlayAboveUnderlay.String())
	require.Equal(t, "reason9", Reason(9).String())
	require.Equal(t, "ipv4", IPv4.String())
	require.Equal(t, "ipv6", IPv6.String())
	require.Equal(t, 50, OverheadIPv4)
	require.Equal(t, 70, OverheadIPv6)
}

func TestMismatchLogValue(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	log.Info("mtu mismatch", "mismatch", podMismatch(6, "veth-pod-b", 1450, 1500, ReasonPodAboveOverlay, "vxlan0"))
	require.Contains(t, b.String(), "mismatch.interface=veth-pod-b mismatch.index=6 mismatch.role=pod mismatch.expected=1450 mismatch.actual=1500 mismatch.reason=pod_above_overlay mismatch.source=vxlan0")
}

func BenchmarkCheck(b *testing.B) {
	ls := []links.Link{lo(), nic(2, "eth0", 1500), vxlan(3, "vxlan0", 1450, 2), bridge(4, 1450)}
	for i := range 200 {
		mtu := 1450
		if i%50 == 0 {
			mtu = 1500
		}
		ls = append(ls, pod(10+i, "veth"+string(rune('a'+i%26)), mtu))
	}
	b.ReportAllocs()
	for b.Loop() {
		r := Check(ls, nil)
		if len(r.Mismatches) != 4 {
			b.Fatal(len(r.Mismatches))
		}
	}
}
