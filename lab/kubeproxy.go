package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"os/exec"
	"strings"
)

// Chain names and marks of kube-proxy's iptables mode.
const (
	ChainServices    = "KUBE-SERVICES"
	ChainNodePorts   = "KUBE-NODEPORTS"
	ChainPostrouting = "KUBE-POSTROUTING"
	ChainMarkMasq    = "KUBE-MARK-MASQ"
	masqMark         = "0x4000"
)

// chainHash is kube-proxy's servicePortChainName/servicePortEndpointChainName
// hash: base32 of sha256 over the service port name, protocol and (for an
// endpoint) its address, truncated to 16 characters.
func chainHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "")))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}

// ServiceChain is the KUBE-SVC-… chain of the lab's Service.
func ServiceChain() string { return "KUBE-SVC-" + chainHash(ServicePortName, "tcp") }

// ExternalChain is the KUBE-EXT-… chain of the lab's NodePort.
func ExternalChain() string { return "KUBE-EXT-" + chainHash(ServicePortName, "tcp") }

// EndpointChain is the KUBE-SEP-… chain of one backend pod.
func EndpointChain(p Pod) string {
	return "KUBE-SEP-" + chainHash(ServicePortName, "tcp", fmt.Sprintf("%s:%d", p.IP, ServicePort))
}

// UDPServiceChain and UDPEndpointChain are the chains of the Service's UDP
// port (the same port number over UDP, as DNS services have both).
func UDPServiceChain() string { return "KUBE-SVC-" + chainHash(ServiceUDPPortName, "udp") }

// UDPEndpointChain is the KUBE-SEP-… chain of one backend of the UDP port.
func UDPEndpointChain(p Pod) string {
	return "KUBE-SEP-" + chainHash(ServiceUDPPortName, "udp", fmt.Sprintf("%s:%d", p.IP, ServicePort))
}

// KubeProxyRules returns the iptables-restore input (nat table) that
// kube-proxy's iptables mode writes for the lab's Service and NodePort on a
// node (with --masquerade-all where br_netfilter is missing). It is applied
// with --noflush so that it only adds the KUBE-* chains
// and the jumps to them.
func (l *Lab) KubeProxyRules() string {
	var b strings.Builder
	svc, ext := ServiceChain(), ExternalChain()
	backends := l.Backends()
	comment := ServicePortName
	b.WriteString("*nat\n")
	for _, c := range []string{ChainServices, ChainNodePorts, ChainPostrouting, ChainMarkMasq, svc, ext} {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	fmt.Fprintf(&b, ":%s - [0:0]\n", UDPServiceChain())
	for _, p := range backends {
		fmt.Fprintf(&b, ":%s - [0:0]\n", EndpointChain(p))
		fmt.Fprintf(&b, ":%s - [0:0]\n", UDPEndpointChain(p))
	}
	b.WriteString(`-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --or-mark ` + masqMark + `
-A KUBE-POSTROUTING -m mark ! --mark ` + masqMark + `/` + masqMark + ` -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark ` + masqMark + `
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
`)
	fmt.Fprintf(&b, "-A %s -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport %d -j %s\n",
		ChainServices, ServiceVIP, comment, ServicePort, svc)
	fmt.Fprintf(&b, "-A %s -d %s/32 -p udp -m comment --comment \"%s cluster IP\" -m udp --dport %d -j %s\n",
		ChainServices, ServiceVIP, ServiceUDPPortName, ServicePort, UDPServiceChain())
	fmt.Fprintf(&b, "-A %s -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j %s\n",
		ChainServices, ChainNodePorts)
	fmt.Fprintf(&b, "-A %s -p tcp -m comment --comment \"%s\" -m tcp --dport %d -j %s\n", ChainNodePorts, comment, NodePort, ext)
	fmt.Fprintf(&b, "-A %s -m comment --comment \"masquerade traffic for %s external destinations\" -j %s\n", ext, comment, ChainMarkMasq)
	fmt.Fprintf(&b, "-A %s -j %s\n", ext, svc)
	if l.masqueradeAll {
		fmt.Fprintf(&b, "-A %s -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport %d -j %s\n",
			svc, ServiceVIP, comment, ServicePort, ChainMarkMasq)
	} else {
		fmt.Fprintf(&b, "-A %s ! -s %s -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport %d -j %s\n",
			svc, ClusterCIDR, ServiceVIP, comment, ServicePort, ChainMarkMasq)
	}
	writeEndpoints(&b, backends, comment, "tcp", svc, EndpointChain)
	writeEndpoints(&b, backends, ServiceUDPPortName, "udp", UDPServiceChain(), UDPEndpointChain)
	b.WriteString("COMMIT\n")
	return b.String()
}

// writeEndpoints writes a service port's load balancing as kube-proxy does:
// the KUBE-SVC chain jumps to endpoint i of n with probability 1/(n-i), and
// each KUBE-SEP chain marks hairpin traffic for masquerade and DNATs.
func writeEndpoints(b *strings.Builder, backends []Pod, comment, proto, svc string, sepChain func(Pod) string) {
	for i, p := range backends {
		left := len(backends) - i
		fmt.Fprintf(b, "-A %s -m comment --comment \"%s -> %s:%d\"", svc, comment, p.IP, ServicePort)
		if left > 1 {
			fmt.Fprintf(b, " -m statistic --mode random --probability %0.10f", 1/float64(left))
		}
		fmt.Fprintf(b, " -j %s\n", sepChain(p))
	}
	for _, p := range backends {
		sep := sepChain(p)
		fmt.Fprintf(b, "-A %s -s %s/32 -m comment --comment \"%s\" -j %s\n", sep, p.IP, comment, ChainMarkMasq)
		fmt.Fprintf(b, "-A %s -p %s -m comment --comment \"%s\" -m %s -j DNAT --to-destination %s:%d\n", sep, proto, comment, proto, p.IP, ServicePort)
	}
}

// applyKubeProxy loads the rules into a node's nat table with
// iptables-restore run inside the node namespace, as kube-proxy does.
func (l *Lab) applyKubeProxy(ctx context.Context, n Node) error {
	_, err := l.runIn(ctx, n.NetNS, []byte(l.KubeProxyRules()), "iptables-restore", "-w", "--noflush")
	if err != nil {
		return fmt.Errorf("kube-proxy rules on %s: %w", n.Name, err)
	}
	return nil
}

// runIn runs a command inside a named namespace with `ip netns exec`.
func (l *Lab) runIn(ctx context.Context, netns string, stdin []byte, name string, args ...string) ([]byte, error) {
	return RunInNetNS(ctx, netns, stdin, name, args...)
}

// RunInNetNS runs name with args inside the named namespace (`ip netns exec
// NETNS name args…`) and returns its standard output. The error carries the
// command's standard error.
func RunInNetNS(ctx context.Context, netns string, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns, name}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s in %s: %w: %s", name, netns, err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}
