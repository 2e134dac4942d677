package policy

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// compiled is a NetworkPolicy with its selectors parsed and its defaults
// applied.
type compiled struct {
	ref      Ref
	selector labels.Selector
	ingress  *direction // nil: the policy has no Ingress type
	egress   *direction // nil: the policy has no Egress type
}

// direction is the rules of one policy type; no rules allow nothing.
type direction struct{ rules []rule }

type rule struct {
	peers []peer // nil: every peer
	ports []port // nil: every port
}

// peer is one from/to entry. With ipBlock set the selectors are unused; a
// nil selector is an absent one.
type peer struct {
	pods, namespaces labels.Selector
	block            *ipBlock
}

type ipBlock struct {
	cidr   netip.Prefix
	except []netip.Prefix
}

type port struct {
	protocol corev1.Protocol
	any      bool   // no port: every port of the protocol
	name     string // a named port
	from, to uint16 // numeric port range, inclusive
}

// compile parses np. An error names the field that does not parse.
func compile(np *networkingv1.NetworkPolicy) (*compiled, error) {
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		return nil, fmt.Errorf("spec.podSelector: %w", err)
	}
	c := &compiled{ref: Ref{Namespace: np.Namespace, Name: np.Name}, selector: sel}
	ingress, egress := false, false
	if len(np.Spec.PolicyTypes) == 0 {
		ingress, egress = true, len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		}
	}
	if ingress {
		c.ingress = &direction{}
		for i, r := range np.Spec.Ingress {
			cr, err := compileRule(r.From, r.Ports)
			if err != nil {
				return nil, fmt.Errorf("spec.ingress[%d]: %w", i, err)
			}
			c.ingress.rules = append(c.ingress.rules, cr)
		}
	}
	if egress {
		c.egress = &direction{}
		for i, r := range np.Spec.Egress {
			cr, err := compileRule(r.To, r.Ports)
			if err != nil {
				return nil, fmt.Errorf("spec.egress[%d]: %w", i, err)
			}
			c.egress.rules = append(c.egress.rules, cr)
		}
	}
	return c, nil
}

func compileRule(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) (rule, error) {
	var r rule
	for i, p := range peers {
		var cp peer
		if p.IPBlock != nil {
			b, err := compileBlock(p.IPBlock)
			if err != nil {
				return r, fmt.Errorf("peer %d: %w", i, err)
			}
			cp.block = b
		} else {
			if p.PodSelector == nil && p.NamespaceSelector == nil {
				// Rejected by the API server; matches nothing.
				return r, fmt.Errorf("peer %d: %w", i, errEmptyPeer)
			}
			var err error
			if p.PodSelector != nil {
				if cp.pods, err = metav1.LabelSelectorAsSelector(p.PodSelector); err != nil {
					return r, fmt.Errorf("peer %d podSelector: %w", i, err)
				}
			}
			if p.NamespaceSelector != nil {
				if cp.namespaces, err = metav1.LabelSelectorAsSelector(p.NamespaceSelector); err != nil {
					return r, fmt.Errorf("peer %d namespaceSelector: %w", i, err)
				}
			}
		}
		r.peers = append(r.peers, cp)
	}
	for i, p := range ports {
		cp := port{protocol: corev1.ProtocolTCP}
		if p.Protocol != nil {
			cp.protocol = *p.Protocol
		}
		switch {
		case p.Port == nil:
			cp.any = true
		case p.Port.Type == intstr.String:
			cp.name = p.Port.StrVal
		default:
			v := p.Port.IntVal
			if v < 1 || v > 65535 {
				return r, fmt.Errorf("port %d: %w: %d", i, errBadPort, v)
			}
			cp.from, cp.to = uint16(v), uint16(v)
			if p.EndPort != nil {
				if *p.EndPort < v || *p.EndPort > 65535 {
					return r, fmt.Errorf("port %d: %w: endPort %d", i, errBadPort, *p.EndPort)
				}
				cp.to = uint16(*p.EndPort)
			}
		}
		r.ports = append(r.ports, cp)
	}
	return r, nil
}

func compileBlock(b *networkingv1.IPBlock) (*ipBlock, error) {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return nil, fmt.Errorf("ipBlock.cidr: %w", err)
	}
	out := &ipBlock{cidr: cidr.Masked()}
	for _, e := range b.Except {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("ipBlock.except: %w", err)
		}
		out.except = append(out.except, p.Masked())
	}
	return out, nil
}

func (b *ipBlock) contains(a netip.Addr) bool {
	if !a.IsValid() || !b.cidr.Contains(a.Unmap()) {
		return false
	}
	for _, e := range b.except {
		if e.Contains(a.Unmap()) {
			return false
		}
	}
	return true
}
