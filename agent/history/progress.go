package history

import "github.com/layerscope/layerscope/agent/flow"

// Progress picks, from successive snapshots of the active flows, the flows
// whose state changed since the previous snapshot that saw them: those
// deserve a KindProgress entry. A flow's state, for this purpose, is its
// outcome, its SYN retransmissions, which sides sent a RST or a FIN, its L7
// requests, responses, errors and unanswered requests, and its number of
// hops; packet and byte counts alone are not a change.
//
// A Progress is used by one goroutine. It holds one small map entry per
// active flow of the last snapshot.
type Progress struct {
	last map[progressKey]signature
	gen  bool
}

// progressKey tells flows apart, also a new connection that reuses an old
// one's tuple (another first-packet time).
type progressKey struct {
	k     flow.Key
	first int64
}

type signature struct {
	outcome          flow.Outcome
	syns             uint16
	rst, fin         uint8
	req, resp, errs  uint32
	unanswered, hops uint32
	gen              bool
}

// NewProgress returns a Progress that has seen no flow.
func NewProgress() *Progress { return &Progress{last: map[progressKey]signature{}} }

// Changed calls fn for each record of snap (a snapshot of the active
// flows, such as flowtable.Table.Snapshot returns) that is new or whose
// state changed since the last call, and forgets the flows snap no longer
// holds. It returns the number of records fn was called for.
func (p *Progress) Changed(snap []flow.Record, fn func(*flow.Record)) int {
	p.gen = !p.gen
	n := 0
	for i := range snap {
		r := &snap[i]
		k := progressKey{r.Key, r.First}
		s := signature{
			outcome: r.Outcome, syns: r.TCP.SYNRetransmits, rst: r.TCP.RSTFrom, fin: r.TCP.FINFrom,
			req: r.L7.Requests, resp: r.L7.Responses, errs: r.L7.Errors, unanswered: r.L7.Unanswered,
			hops: uint32(r.NumHops), gen: p.gen,
		}
		old, ok := p.last[k]
		p.last[k] = s
		old.gen = s.gen
		if ok && old == s {
			continue
		}
		n++
		fn(r)
	}
	for k, s := range p.last {
		if s.gen != p.gen {
			delete(p.last, k)
		}
	}
	return n
}

// Len returns the number of flows remembered.
func (p *Progress) Len() int { return len(p.last) }
