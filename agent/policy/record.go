package policy

import (
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
	e := x.Store.Explain(ObservationOf(r, nat))
	if x.Denied != nil && e.Verdict == VerdictPolicy && x.first(nat) {
		x.Denied.Observe(e)
	}
	return Layer(e)
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
	return Layer(x.Store.Explain(ObservationOf(r, nat)))
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
func Layer(e Explanation) *correlate.Policy {
	p := &correlate.Policy{Detail: e.String()}
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
