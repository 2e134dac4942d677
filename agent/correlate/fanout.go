package correlate

import (
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// Translator looks a flow's connection up in the conntrack table
// (conntrack.Watcher is one).
type Translator interface {
	Translate(k flow.Key) (Translation, bool)
}

// Lazy is a Translator whose source may not exist yet: it asks the function
// for the current Translator at each call, and finds nothing while it
// returns nil (the agent opens conntrack when it runs, or not at all).
type Lazy func() Translator

// Translate implements Translator.
func (l Lazy) Translate(k flow.Key) (Translation, bool) {
	t := l()
	if t == nil {
		return Translation{}, false
	}
	return t.Translate(k)
}

// Enriched is one ended flow record with what conntrack knows of its
// connection, built once and handed to every Sink.
type Enriched struct {
	Record *flow.Record
	// NAT is the connection's conntrack entry; nil when conntrack does not
	// know it (or does not run).
	NAT *Translation
	// Conn is the DNATed connection Record is a view of; nil when the
	// connection was not DNATed.
	Conn *Conn
	// Policy is what the NetworkPolicies say of the connection when it
	// failed (Fanout.Policy); nil when it did not fail or nobody asked.
	Policy *Policy
}

// Sink consumes enriched records. Consume runs on the flow table's sweeping
// goroutine: it must not block, and must copy what it keeps (e and what it
// points to are reused for the next record).
type Sink interface {
	Consume(e *Enriched, now time.Time)
}

// Fanout is the post-flow-table stage of the agent: for each final record
// the flow table reports it looks the connection up in conntrack once,
// joins the views of a DNATed connection (Join), and hands the result to
// each sink in order (history, service tallies, workload tallies, tracer).
type Fanout struct {
	Translator Translator // nil: records go out without NAT
	// Policy, when not nil, explains each failed connection (its outcome
	// is Failed) before the sinks see it; never called for others.
	Policy func(r *flow.Record, nat *Translation) *Policy
	Sinks  []Sink
}

// OnRecords is the flow table's callback (flowtable.Config.OnRecords).
func (f *Fanout) OnRecords(recs []flow.Record) {
	var (
		e    Enriched
		tr   Translation
		conn Conn
	)
	now := time.Now()
	for i := range recs {
		r := &recs[i]
		if !r.End.Final() {
			continue
		}
		e = Enriched{Record: r}
		if f.Translator != nil {
			if t, ok := f.Translator.Translate(r.Key); ok {
				tr = t
				e.NAT = &tr
				if c, ok := Join(r, &tr); ok {
					conn = c
					e.Conn = &conn
				}
			}
		}
		if f.Policy != nil && r.Outcome.Failed() {
			e.Policy = f.Policy(r, e.NAT)
		}
		for _, s := range f.Sinks {
			s.Consume(&e, now)
		}
	}
}

// Consume adds the DNATed connection of e to the tallies (a Sink).
func (s *Services) Consume(e *Enriched, now time.Time) {
	if e.Conn != nil {
		s.Add(e.Conn, now.UnixNano())
	}
}
