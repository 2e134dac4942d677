package otlp

import (
	"net/netip"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// The lab's cross-node path: pod-a on node-1 asks the Service
// 10.96.0.42:8080, DNATed on node-1 to pod-c on node-2.
var (
	podA    = netip.MustParseAddr("10.244.0.5")
	podC    = netip.MustParseAddr("10.244.1.8")
	service = netip.MustParseAddrPort("10.96.0.42:8080")
	backend = netip.AddrPortFrom(podC, 8080)
)

// hopAt is a hop seen from t0+at to t0+at+dur.
func hopAt(t0 int64, name, kind string, role flow.Role, dir flow.Direction, at, dur time.Duration) Hop {
	h := Hop{
		Interface: name, Kind: kind, Role: role, Dir: dir,
		First: t0 + int64(at), Last: t0 + int64(at+dur),
		Packets: [2]uint64{6, 4}, Bytes: [2]uint64{600, 2400},
	}
	if kind == "vxlan" || (kind == "device" && name == "eth0") {
		h.Encap, h.VNI = flow.EncapVXLAN, 1
	}
	return h
}

// clientConn is node-1's view of a TCP connection from pod-a's port to the
// Service, DNATed to pod-c: pod veth, then VXLAN device, then NIC (given out
// of order: the exporter orders them).
func clientConn(t0 int64, port uint16, isn uint32, outcome flow.Outcome) *Conn {
	d := 5 * time.Millisecond
	return &Conn{
		Node: "node-1", Side: SideClient, Proto: flow.ProtoTCP,
		Client: netip.AddrPortFrom(podA, port), Service: service, ServiceName: "default/web",
		Backend: backend, Outcome: outcome, First: t0, Last: t0 + int64(d) + 300_000,
		ISN: isn, HasISN: true,
		Hops: []Hop{
			hopAt(t0, "eth0", "device", flow.RoleUplink, flow.DirOut, 45*time.Microsecond, d),
			hopAt(t0, "veth-pod-a", "veth", flow.RolePod, flow.DirIn, 0, d),
			hopAt(t0, "vxlan0", "vxlan", flow.RoleOverlay, flow.DirOut, 30*time.Microsecond, d),
		},
		NAT: []NAT{{Time: t0 + 10_000, Kind: DNAT, From: service, To: backend, ConntrackID: 4242}},
	}
}

// serverConn is node-2's view of the same connection: NIC, VXLAN device, then
// pod-c's veth, 200 µs later.
func serverConn(t0 int64, port uint16, isn uint32, outcome flow.Outcome) *Conn {
	d := 5 * time.Millisecond
	return &Conn{
		Node: "node-2", Side: SideServer, Proto: flow.ProtoTCP,
		Client: netip.AddrPortFrom(podA, port), Backend: backend, Outcome: outcome,
		First: t0 + 200_000, Last: t0 + int64(d) + 250_000,
		ISN: isn, HasISN: true,
		Hops: []Hop{
			hopAt(t0, "veth-pod-c", "veth", flow.RolePod, flow.DirOut, 230*time.Microsecond, d),
			hopAt(t0, "eth0", "device", flow.RoleUplink, flow.DirIn, 200*time.Microsecond, d),
			hopAt(t0, "vxlan0", "vxlan", flow.RoleOverlay, flow.DirIn, 215*time.Microsecond, d),
		},
	}
}

var (
	clientHops = []string{"veth-pod-a", "vxlan0", "eth0"}
	serverHops = []string{"eth0", "vxlan0", "veth-pod-c"}
)
