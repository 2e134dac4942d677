package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Direction is a policy type.
type Direction string

// Directions.
const (
	Ingress Direction = "ingress"
	Egress  Direction = "egress"
)

// Flow is a connection attempt between pods as NetworkPolicies see it:
// the source before any SNAT, the destination after DNAT (the backend, not
// the Service), the protocol and the destination port.
type Flow struct {
	Src, Dst netip.Addr
	// Protocol is TCP, UDP or SCTP; empty means TCP. Any other value
	// (ICMP) only matches rules without ports.
	Protocol corev1.Protocol
	Port     uint16
}

func (f Flow) proto() corev1.Protocol {
	if f.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return f.Protocol
}

func (f Flow) String() string {
	return fmt.Sprintf("%s %s -> %s", f.proto(), f.Src, netip.AddrPortFrom(f.Dst, f.Port))
}

// Evidence is what the agent observed of the drop. The store does not
// read it; it is carried into the Explanation.
type Evidence struct {
	// Attempts is the number of unanswered first packets (SYNs).
	Attempts    int
	First, Last time.Time
	// SeenOn lists the hops the packets crossed, in path order, and
	// MissingAt the first hop they did not reach.
	SeenOn    []string
	MissingAt string
}

// Observation is a dropped flow and its evidence.
type Observation struct {
	Flow
	Evidence Evidence
}

// Verdict is the answer of Explain.
type Verdict string

// Verdicts.
const (
	// VerdictUnknown: the store has no complete copy of the policies,
	// namespaces and pods yet; nothing can be said.
	VerdictUnknown Verdict = "unknown"
	// VerdictPolicy: NetworkPolicies deny the flow (Explanation.Denials).
	VerdictPolicy Verdict = "policy"
	// VerdictUnexplained: the policies allow the flow, or none applies
	// to its pods: whatever dropped it was not a NetworkPolicy (the CNI,
	// the node's firewall, routing).
	VerdictUnexplained Verdict = "unexplained"
)

// Explanation is the answer of Explain for one observation.
type Explanation struct {
	Verdict Verdict
	Flow    Flow
	// Src and Dst name the flow's pods; zero when an address is not a
	// known pod.
	Src, Dst Ref
	// Denials has one entry per direction that denies the flow: egress
	// from the source first, then ingress to the destination.
	Denials []Denial
	// AllowedBy lists, for VerdictUnexplained, the rule of each isolating
	// direction that allows the flow.
	AllowedBy []RuleRef
	Evidence  Evidence
}

// Denial is one direction that denies the flow: Pod is selected by
// Policies, and none of their rules allows the peer and port.
type Denial struct {
	Direction Direction
	Pod       Ref
	// Policies are every policy of this direction selecting Pod, in name
	// order.
	Policies []Ref
	// Isolating are the Policies with no rule of this direction: pure
	// default-deny policies.
	Isolating []Ref
	// Rules is every rule of Policies with what of it matched the flow.
	Rules []RuleMatch
	// Change is the rule that comes closest to allowing the flow (half
	// matched: the peer or the port), else the first rule; its Rule is
	// -1 when no selecting policy has a rule (add one).
	Change RuleMatch
}

// Blame is the policy a denial is reported under: the first isolating
// policy, else the first selecting one.
func (d Denial) Blame() Ref {
	if len(d.Isolating) > 0 {
		return d.Isolating[0]
	}
	return d.Policies[0]
}

// RuleRef names a rule: spec.ingress[Rule] or spec.egress[Rule] of Policy.
type RuleRef struct {
	Policy    Ref
	Direction Direction
	Rule      int
}

func (r RuleRef) String() string {
	if r.Rule < 0 {
		return fmt.Sprintf("%s (no %s rule)", r.Policy, r.Direction)
	}
	return fmt.Sprintf("%s spec.%s[%d]", r.Policy, r.Direction, r.Rule)
}

// RuleMatch is a rule and whether its peers (from or to) and its ports
// matched the flow.
type RuleMatch struct {
	RuleRef
	PeerMatched, PortMatched bool
}

// What says what of the rule does not match.
func (m RuleMatch) What() string {
	switch {
	case m.Rule < 0:
		return "no rule allows anything"
	case !m.PeerMatched && !m.PortMatched:
		return "neither peer nor port matches"
	case !m.PeerMatched:
		if m.Direction == Ingress {
			return "port matches, no from peer selects the source"
		}
		return "port matches, no to peer selects the destination"
	case !m.PortMatched:
		return "peer matches, no port matches"
	}
	return "matches"
}

// String is a one-line summary for logs and diagnose.
func (e Explanation) String() string {
	var b strings.Builder
	switch e.Verdict {
	case VerdictPolicy:
		for i, d := range e.Denials {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s of %s denied by %s", d.Direction, d.Pod, d.Blame())
			if len(d.Policies) > 1 {
				fmt.Fprintf(&b, " (selected by %d policies, none allows it)", len(d.Policies))
			}
			fmt.Fprintf(&b, "; to change: %s: %s", d.Change.RuleRef, d.Change.What())
		}
	case VerdictUnexplained:
		if len(e.AllowedBy) == 0 {
			b.WriteString("no NetworkPolicy selects the source or the destination: not dropped by a policy")
		} else {
			b.WriteString("allowed by ")
			for i, r := range e.AllowedBy {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(r.String())
			}
			b.WriteString(": not dropped by a policy")
		}
	default:
		b.WriteString("NetworkPolicies, namespaces and pods not synced yet")
	}
	return b.String()
}

// Explain tells whether NetworkPolicies explain the drop of o.
func (s *Store) Explain(o Observation) Explanation {
	e := Explanation{Verdict: VerdictUnknown, Flow: o.Flow, Evidence: o.Evidence}
	if !s.Synced() {
		return e
	}
	f := o.Flow
	s.mu.RLock()
	defer s.mu.RUnlock()
	src, dst := s.byIP[f.Src.Unmap()], s.byIP[f.Dst.Unmap()]
	if src != nil {
		e.Src = Ref{src.Namespace, src.Name}
	}
	if dst != nil {
		e.Dst = Ref{dst.Namespace, dst.Name}
	}
	for _, dir := range [2]Direction{Egress, Ingress} {
		own, peer, peerAddr := src, dst, f.Dst
		if dir == Ingress {
			own, peer, peerAddr = dst, src, f.Src
		}
		selected, allowed, by := s.evaluate(dir, own, peer, peerAddr, dst, f)
		switch {
		case !selected:
		case allowed:
			e.AllowedBy = append(e.AllowedBy, by)
		default:
			e.Denials = append(e.Denials, s.deny(dir, own, peer, peerAddr, dst, f))
		}
	}
	if len(e.Denials) > 0 {
		e.Verdict = VerdictPolicy
	} else {
		e.Verdict = VerdictUnexplained
	}
	return e
}

// Allowed reports whether the policies allow f in both directions, and
// whether the store is synced (when it is not, allowed is true).
func (s *Store) Allowed(f Flow) (allowed, synced bool) {
	if !s.Synced() {
		return true, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	src, dst := s.byIP[f.Src.Unmap()], s.byIP[f.Dst.Unmap()]
	if sel, ok, _ := s.evaluate(Egress, src, dst, f.Dst, dst, f); sel && !ok {
		return false, true
	}
	if sel, ok, _ := s.evaluate(Ingress, dst, src, f.Src, dst, f); sel && !ok {
		return false, true
	}
	return true, true
}

// evaluate returns whether a policy of dir selects own and, if so, the
// first rule allowing the peer, if one does. dst is the flow's
// destination pod, whose container ports name ports.
func (s *Store) evaluate(dir Direction, own, peer *Pod, peerAddr netip.Addr, dst *Pod, f Flow) (selected, allowed bool, by RuleRef) {
	if own == nil || own.HostNetwork {
		return false, false, by
	}
	for _, c := range s.inNamespace(own.Namespace) {
		d := c.dir(dir)
		if d == nil || !c.selector.Matches(own.Labels()) {
			continue
		}
		selected = true
		for i, r := range d.rules {
			if s.portsMatch(r, dst, f) && s.peersMatch(r, c.ref.Namespace, peer, peerAddr) {
				return true, true, RuleRef{Policy: c.ref, Direction: dir, Rule: i}
			}
		}
	}
	return selected, false, by
}

// deny builds the Denial of a direction that evaluate found denying.
func (s *Store) deny(dir Direction, own, peer *Pod, peerAddr netip.Addr, dst *Pod, f Flow) Denial {
	d := Denial{Direction: dir, Pod: Ref{own.Namespace, own.Name}}
	half, first := -1, -1
	for _, c := range s.inNamespace(own.Namespace) {
		cd := c.dir(dir)
		if cd == nil || !c.selector.Matches(own.Labels()) {
			continue
		}
		d.Policies = append(d.Policies, c.ref)
		if len(cd.rules) == 0 {
			d.Isolating = append(d.Isolating, c.ref)
		}
		for i, r := range cd.rules {
			m := RuleMatch{
				RuleRef:     RuleRef{Policy: c.ref, Direction: dir, Rule: i},
				PeerMatched: s.peersMatch(r, c.ref.Namespace, peer, peerAddr),
				PortMatched: s.portsMatch(r, dst, f),
			}
			if half < 0 && m.PeerMatched != m.PortMatched {
				half = len(d.Rules)
			}
			if first < 0 {
				first = len(d.Rules)
			}
			d.Rules = append(d.Rules, m)
		}
	}
	switch {
	case half >= 0:
		d.Change = d.Rules[half]
	case first >= 0 && len(d.Isolating) == 0:
		d.Change = d.Rules[first]
	default:
		d.Change = RuleMatch{RuleRef: RuleRef{Policy: d.Blame(), Direction: dir, Rule: -1}}
	}
	return d
}

func (c *compiled) dir(d Direction) *direction {
	if d == Ingress {
		return c.ingress
	}
	return c.egress
}

func (s *Store) peersMatch(r rule, policyNS string, pod *Pod, addr netip.Addr) bool {
	if len(r.peers) == 0 {
		return true
	}
	for i := range r.peers {
		if s.peerMatches(&r.peers[i], policyNS, pod, addr) {
			return true
		}
	}
	return false
}

func (s *Store) peerMatches(p *peer, policyNS string, pod *Pod, addr netip.Addr) bool {
	if p.block != nil {
		return p.block.contains(addr)
	}
	if pod == nil || pod.HostNetwork {
		return false
	}
	if p.namespaces == nil {
		if pod.Namespace != policyNS {
			return false
		}
	} else if !p.namespaces.Empty() {
		nsLabels, ok := s.namespaces[pod.Namespace]
		if !ok || !p.namespaces.Matches(nsLabels) {
			return false
		}
	}
	return p.pods == nil || p.pods.Matches(pod.Labels())
}

func (s *Store) portsMatch(r rule, dst *Pod, f Flow) bool {
	if len(r.ports) == 0 {
		return true
	}
	proto := f.proto()
	for i := range r.ports {
		pt := &r.ports[i]
		if pt.protocol != proto {
			continue
		}
		switch {
		case pt.any:
			return true
		case pt.name != "":
			if dst == nil {
				continue
			}
			if port, ok := dst.namedPort(pt.name, proto); ok && port == f.Port {
				return true
			}
		case f.Port >= pt.from && f.Port <= pt.to:
			return true
		}
	}
	return false
}
