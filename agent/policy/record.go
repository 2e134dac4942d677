package policy

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/layerscope/layerscope/agent/correlate"
	flowrec "github.com/layerscope/layerscope/agent/flow"
)

// Records explains the agent's failed connections from their flow records
// (correlate.Fanout.Policy, history.RunProgress) and counts the denials of
// the ended ones. Safe for concurrent use.
type Records struct {
	Store *Store
	// Denied, when not nil, counts the denials of Final.
	Denied *Denied
	// Backends, when not nil, appends to dst the endpoints (address and
	// target port) of the Service at svc over proto, none when svc is not
	// a Service (kube.Store.Backends). A connection conntrack does not
	// know, although it went to a Service, is evaluated against each of
	// them: a packet dropped before conntrack confirmed its entry (as an
	// enforcer in the netfilter hooks does) leaves no DNAT to read.
	Backends func(svc netip.AddrPort, proto uint8, dst []netip.AddrPort) []netip.AddrPort

	mu      sync.Mutex
	counted map[uint32]struct{} // conntrack IDs of connections counted lately
}

// maxCounted bounds Records.counted; past it the set starts over (a view
// of an older connection may then be counted a second time).
const maxCounted = 4096

// Final explains an ended failed connection and counts its denials. A
// DNATed connection ends once per view (before and after the DNAT): it is
// counted once, by its conntrack ID.
func (x *Records) Final(r *flowrec.Record, nat *correlate.Translation) *correlate.Policy {
	e, detail := x.explain(r, nat)
	if x.Denied != nil && e.Verdict == VerdictPolicy && x.first(nat) {
		x.Denied.Observe(e)
	}
	return layer(e, detail)
}

// first reports whether the connection of nat is counted for the first
// time (always true without conntrack).
func (x *Records) first(nat *correlate.Translation) bool {
	if nat == nil || nat.ID == 0 {
		return true
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.counted[nat.ID]; ok {
		return false
	}
	if x.counted == nil || len(x.counted) >= maxCounted {
		x.counted = make(map[uint32]struct{}, 64)
	}
	x.counted[nat.ID] = struct{}{}
	return true
}

// Active explains a connection still unanswered, without counting it (it
// is counted once, when it ends).
func (x *Records) Active(r *flowrec.Record, nat *correlate.Translation) *correlate.Policy {
	return layer(x.explain(r, nat))
}

// explain explains the connection of r; without a translation, when its
// destination is a Service, against each backend (see Records.Backends):
// the denials of the backends that deny it, else the rules that allow it.
// detail, when not empty, is the explanation's line.
func (x *Records) explain(r *flowrec.Record, nat *correlate.Translation) (Explanation, string) {
	o := ObservationOf(r, nat)
	if nat != nil || x.Backends == nil {
		return x.Store.Explain(o), ""
	}
	var buf [16]netip.AddrPort
	bs := x.Backends(netip.AddrPortFrom(o.Dst, o.Port), r.Key.Proto, buf[:0])
	if len(bs) == 0 {
		return x.Store.Explain(o), ""
	}
	var (
		out    Explanation
		denied int
		seen   = map[RuleRef]bool{}
	)
	for i, b := range bs {
		ob := o
		ob.Dst, ob.Port = b.Addr(), b.Port()
		e := x.Store.Explain(ob)
		switch {
		case i == 0:
			out = e
			out.Denials, out.AllowedBy = nil, nil
		case e.Verdict == VerdictUnknown:
			out.Verdict = VerdictUnknown
		case e.Verdict == VerdictPolicy && out.Verdict != VerdictUnknown:
			out.Verdict = VerdictPolicy
		}
		if e.Verdict == VerdictPolicy {
			denied++
			if out.Dst == (Ref{}) {
				out.Dst = e.Dst
			}
			for _, d := range e.Denials {
				k := RuleRef{Policy: d.Blame(), Direction: d.Direction}
				if d.Direction == Ingress {
					k.Policy.Name += "/" + d.Pod.Name // one denial per backend pod
				}
				if !seen[k] {
					seen[k] = true
					out.Denials = append(out.Denials, d)
				}
			}
		}
		for _, a := range e.AllowedBy {
			if !seen[a] {
				seen[a] = true
				out.AllowedBy = append(out.AllowedBy, a)
			}
		}
	}
	if out.Verdict == VerdictPolicy {
		out.AllowedBy = nil
	}
	if out.Verdict != VerdictPolicy {
		return out, ""
	}
	return out, fmt.Sprintf("service %s, %d of %d backends denied: %s", netip.AddrPortFrom(o.Dst, o.Port), denied, len(bs), out)
}

// ObservationOf is the observation of a flow record: the client and the
// backend after DNAT (from conntrack's translation when it has one), the
// protocol, the backend's port, and the attempts and times.
func ObservationOf(r *flowrec.Record, nat *correlate.Translation) Observation {
	src, dst := netip.AddrPortFrom(r.Key.Src, r.Key.SrcPort), netip.AddrPortFrom(r.Key.Dst, r.Key.DstPort)
	if nat != nil {
		src, dst = netip.AddrPortFrom(nat.Original.Src, nat.Original.SrcPort), nat.Backend()
	}
	o := Observation{Flow: Flow{Src: src.Addr(), Dst: dst.Addr(), Port: dst.Port(), Protocol: protocol(r.Key.Proto)}}
	o.Evidence = Evidence{Attempts: 1, First: time.Unix(0, r.First), Last: time.Unix(0, r.Last)}
	if r.Key.Proto == flowrec.ProtoTCP {
		o.Evidence.Attempts += int(r.TCP.SYNRetransmits)
	}
	return o
}

func protocol(p uint8) corev1.Protocol {
	switch p {
	case flowrec.ProtoTCP:
		return corev1.ProtocolTCP
	case flowrec.ProtoUDP:
		return corev1.ProtocolUDP
	case flowrec.ProtoSCTP:
		return corev1.ProtocolSCTP
	}
	return corev1.Protocol(flowrec.ProtoName(p))
}

// Layer converts an explanation to the form the agent's sinks carry.
func Layer(e Explanation) *correlate.Policy { return layer(e, "") }

// layer is Layer with detail, when not empty, as the line.
func layer(e Explanation, detail string) *correlate.Policy {
	if detail == "" {
		detail = e.String()
	}
	p := &correlate.Policy{Detail: detail}
	switch e.Verdict {
	case VerdictPolicy:
		p.Verdict = correlate.PolicyDenied
	case VerdictUnexplained:
		p.Verdict = correlate.PolicyUnexplained
	default:
		p.Verdict = correlate.PolicyUnknown
	}
	for _, d := range e.Denials {
		pd := correlate.PolicyDenial{Direction: string(d.Direction), Namespace: d.Pod.Namespace, Pod: d.Pod.Name,
			Policy: d.Blame().Name, Rule: d.Change.RuleRef.String(), RuleChange: d.Change.What()}
		for _, r := range d.Policies {
			pd.Policies = append(pd.Policies, r.Name)
		}
		p.Denials = append(p.Denials, pd)
	}
	for _, r := range e.AllowedBy {
		p.AllowedBy = append(p.AllowedBy, r.String())
	}
	return p
}
