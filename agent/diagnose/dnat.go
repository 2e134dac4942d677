package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
)

func dnatVerdict(in *Input, conns []conn, win string) (Verdict, bool) {
	var (
		toVIP, dnat, answered int
		svcNS, svcName        string // the Service TO's address belongs to, when the agents know it
	)
	for _, c := range conns {
		if c.c.Service != nil || c.c.NAT != nil && c.c.NAT.DNAT {
			dnat++
			continue
		}
		if in.To.has(c.c.Backend.IP, c.c.Backend.Port) {
			toVIP++
			if c.c.Backend.Service != "" {
				svcNS, svcName = c.c.Backend.Namespace, c.c.Backend.Service
			}
			if c.c.Packets.Server > 0 && c.c.Outcome != "refused" {
				answered++
			}
		}
	}
	// A service address that nobody translates and nobody answers from is
	// a service without endpoints (kube-proxy rejects) or without rules.
	if dnat > 0 || toVIP == 0 || answered > 0 || !(in.To.Service || svcName != "" || serviceSeen(in)) {
		return Verdict{}, false
	}
	failed := 0
	for _, c := range conns {
		if c.failed {
			failed++
		}
	}
	if failed == 0 {
		return Verdict{}, false
	}
	v := Verdict{Class: NoDNAT}
	v.Summary = fmt.Sprintf("service: %d connections from %s to %s in the last %s, none DNATed to a backend and none answered: the service has no endpoints, or %s is not a service address", toVIP, in.From.Arg, in.To.Arg, win, in.To.Arg)
	if ready, node, ok := readyEndpoints(in, svcNS, svcName); ok {
		if ready == 0 {
			v.Summary = fmt.Sprintf("service: %s/%s has no ready endpoints (its EndpointSlices are empty): %d connections from %s to %s in the last %s, none DNATed, none answered", svcNS, svcName, toVIP, in.From.Arg, in.To.Arg, win)
		}
		v.Evidence = append(v.Evidence, fmt.Sprintf("endpoints of %s/%s: %d ready (Kubernetes metadata of %s)", svcNS, svcName, ready, node))
	}
	v.Evidence = append(v.Evidence, outcomeLine(conns))
	v.Next = "kubectl get endpointslices -l kubernetes.io/service-name=<svc> (empty: check the Service's selector against the pods' labels and their readiness); on the node, kube-proxy's rules for <VIP>: iptables-save | grep <VIP> (iptables mode) or nft list table ip kube-proxy | grep <VIP> (nftables mode)"
	return v, true
}

// readyEndpoints returns the ready endpoint count of the Service
// namespace/name from the first agent whose status lists it.
func readyEndpoints(in *Input, namespace, name string) (ready int, node string, ok bool) {
	if name == "" {
		return 0, "", false
	}
	for ni := range in.Nodes {
		n := &in.Nodes[ni]
		if n.Status == nil {
			continue
		}
		for _, e := range n.Status.Endpoints {
			if e.Namespace == namespace && e.Service == name {
				return e.Ready, n.Node, true
			}
		}
	}
	return 0, "", false
}

// serviceSeen reports whether any agent saw a connection to TO's address
// DNATed (from any client, any port): TO is a service address.
func serviceSeen(in *Input) bool {
	for ni := range in.Nodes {
		for i := range in.Nodes[ni].Connections {
			c := &in.Nodes[ni].Connections[i]
			if c.Service == nil {
				continue
			}
			if a, err := netip.ParseAddr(c.Service.IP); err == nil && slices.Contains(in.To.Addrs, a.Unmap()) {
				return true
			}
		}
	}
	return false
}
