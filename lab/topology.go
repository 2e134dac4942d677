package lab

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
)

// DefaultPrefix is the namespace name prefix of the lab built by the CLI.
const DefaultPrefix = "ls-"

// Fixed parameters of the lab network.
const (
	ServicePort = 8080  // TCP port of the Service and of each backend's HTTP server
	TLSPort     = 8443  // TCP port of each backend's TLS server
	NodePort    = 30080 // NodePort of the Service on every node IP
	DNSPort     = 53    // UDP and TCP port of the DNS server pod
	VXLANPort   = 4789  // UDP destination port of the overlay
	VNI         = 1     // VXLAN network identifier
	PodMTU      = 1450  // MTU of pod interfaces, host veths, bridges and vxlan0
	NodeMTU     = 1500  // MTU of the node network (eth0 in each node)
	MTUTestPort = 9000  // UDP port pod-c listens on during the mtu scenario

	NodeIface   = "eth0"   // the node's "physical" NIC, in each node namespace
	BridgeName  = "cbr0"   // pod bridge, in each node namespace
	VXLANName   = "vxlan0" // overlay device, in each node namespace
	PodIface    = "eth0"   // the pod end of each pod veth, in the pod namespace
	ServiceName = "my-service.default.svc.cluster.local."
	// ServicePortName is the kube-proxy service port name the chain hashes
	// are derived from.
	ServicePortName = "default/my-service:http"
	// ServiceUDPPortName names the Service's UDP port (same number, 8080):
	// the mtu scenario sends datagrams through it.
	ServiceUDPPortName = "default/my-service:udp"
	// BrokenZone is the zone the DNS server answers SERVFAIL for.
	BrokenZone = "broken.svc.cluster.local."
)

// Well-known addresses of the lab.
var (
	ServiceVIP   = netip.MustParseAddr("10.96.0.42")
	ClusterCIDR  = netip.MustParsePrefix("10.244.0.0/16")
	NodeCIDR     = netip.MustParsePrefix("10.0.0.0/24")
	DNSServerIP  = netip.MustParseAddr("10.244.0.10")
	ServiceAddr  = netip.AddrPortFrom(ServiceVIP, ServicePort)
	DNSAddr      = netip.AddrPortFrom(DNSServerIP, DNSPort)
	prefixSyntax = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,11}$`)
)

// Node describes one node namespace of the lab.
type Node struct {
	Name     string       // "node-1" or "node-2"
	NetNS    string       // namespace name under /run/netns (prefix + Name)
	IP       netip.Addr   // address on eth0 (the node network)
	PodCIDR  netip.Prefix // pods on this node's bridge
	BridgeIP netip.Addr   // cbr0 address, the pods' default gateway
	VTEPIP   netip.Addr   // vxlan0 address (network address of PodCIDR, as flannel does)
	VTEPMAC  net.HardwareAddr
}

// Pod describes one pod namespace of the lab.
type Pod struct {
	Name     string     // "pod-a", "pod-b", "pod-c" or "dns"
	NetNS    string     // namespace name under /run/netns (prefix + Name)
	Node     string     // name of the node whose bridge it is on
	IP       netip.Addr // address on eth0
	HostVeth string     // host end of its veth, in the node namespace, on cbr0
	Backend  bool       // an endpoint of the Service (serves HTTP :8080 and TLS :8443)
}

// Names of the lab's members.
const (
	Node1  = "node-1"
	Node2  = "node-2"
	PodA   = "pod-a"
	PodB   = "pod-b"
	PodC   = "pod-c"
	PodDNS = "dns"
)

func checkPrefix(prefix string) error {
	if !prefixSyntax.MatchString(prefix) {
		return fmt.Errorf("%w %q: want 1-12 characters of [a-z0-9-], starting with a letter or digit", ErrBadPrefix, prefix)
	}
	return nil
}

// topology returns the nodes and pods of a lab with the given prefix.
func topology(prefix string) ([]Node, []Pod) {
	nodes := []Node{
		{Name: Node1, IP: netip.MustParseAddr("10.0.0.10"), PodCIDR: netip.MustParsePrefix("10.244.0.0/24"),
			BridgeIP: netip.MustParseAddr("10.244.0.1"), VTEPIP: netip.MustParseAddr("10.244.0.0"),
			VTEPMAC: net.HardwareAddr{0x0a, 0x4c, 0x53, 0x00, 0x00, 0x01}},
		{Name: Node2, IP: netip.MustParseAddr("10.0.0.11"), PodCIDR: netip.MustParsePrefix("10.244.1.0/24"),
			BridgeIP: netip.MustParseAddr("10.244.1.1"), VTEPIP: netip.MustParseAddr("10.244.1.0"),
			VTEPMAC: net.HardwareAddr{0x0a, 0x4c, 0x53, 0x00, 0x00, 0x02}},
	}
	pods := []Pod{
		{Name: PodA, Node: Node1, IP: netip.MustParseAddr("10.244.0.5"), Backend: true},
		{Name: PodB, Node: Node1, IP: netip.MustParseAddr("10.244.0.8"), Backend: true},
		{Name: PodC, Node: Node2, IP: netip.MustParseAddr("10.244.1.8"), Backend: true},
		{Name: PodDNS, Node: Node1, IP: DNSServerIP},
	}
	for i := range nodes {
		nodes[i].NetNS = prefix + nodes[i].Name
	}
	for i := range pods {
		pods[i].NetNS = prefix + pods[i].Name
		pods[i].HostVeth = "veth-" + pods[i].Name
	}
	return nodes, pods
}

// NamespaceNames returns the names of every namespace a lab with this
// prefix creates, nodes first.
func NamespaceNames(prefix string) []string {
	nodes, pods := topology(prefix)
	var out []string
	for _, n := range nodes {
		out = append(out, n.NetNS)
	}
	for _, p := range pods {
		out = append(out, p.NetNS)
	}
	return out
}
