package history

import (
	"context"
	"time"

	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
)

// Consume adds a final entry for the ended record of e with its conntrack
// translation and its policy explanation (a correlate.Sink).
func (r *Ring) Consume(e *correlate.Enriched, now time.Time) {
	r.AddExplained(KindFinal, e.Record, e.NAT, e.Policy, now.UnixNano())
}

// Explain gives the NetworkPolicies' explanation of a connection (see
// correlate.Fanout.Policy).
type Explain func(r *flow.Record, nat *correlate.Translation) *correlate.Policy

// DefaultProgressInterval is how often RunProgress checks the active flows
// when not told otherwise.
const DefaultProgressInterval = time.Second

// RunProgress adds a progress entry to r, every interval until ctx is done,
// for each active flow whose state changed (see Progress): snapshot fills
// its argument with the active flows (flowtable.Table.Snapshot), and tr
// (nil: none) gives each its conntrack translation, looked up once per
// entry. explain (nil: none) explains the entries of TCP connections whose
// SYN is still unanswered when the progress loop looks (a handshake takes
// a round trip: those are the slow and the dropped ones), so that a
// NetworkPolicy shows before the connection times out; a connection's
// entries change, and are explained again, only when its state does (a
// SYN retransmitted), so a dropped connection is evaluated a few times at
// most, never per packet.
func RunProgress(ctx context.Context, r *Ring, snapshot func([]flow.Record) []flow.Record, tr correlate.Translator, explain Explain, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultProgressInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	p := NewProgress()
	var snap []flow.Record
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap = snapshot(snap[:0])
		now := time.Now().UnixNano()
		p.Changed(snap, func(rec *flow.Record) {
			var nat *correlate.Translation
			if tr != nil {
				if t, ok := tr.Translate(rec.Key); ok {
					nat = &t
				}
			}
			var pol *correlate.Policy
			if explain != nil && rec.Outcome == flow.OutcomeSynSent {
				pol = explain(rec, nat)
			}
			r.AddExplained(KindProgress, rec, nat, pol, now)
		})
		if cap(snap) > 4*len(snap) && cap(snap) > 1024 {
			snap = nil // a flood is over: give the memory back
		}
	}
}
