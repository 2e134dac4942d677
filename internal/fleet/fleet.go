package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/layerscope/layerscope/agent/api"
)

// Agent is one node's agent.
type Agent struct {
	// Node is the agent's node name.
	Node   string
	Client *api.Client
}

// NodeError is what one agent's failure to answer says.
type NodeError struct {
	Node string
	Err  error
}

func (e *NodeError) Error() string { return e.Node + ": " + e.Err.Error() }
func (e *NodeError) Unwrap() error { return e.Err }

// Connections asks every agent for the events that match q, in parallel,
// and merges them oldest first (ties by node, then sequence). Events
// without a node name get their agent's. An agent that does not answer is
// left out and named in the returned error; the others' events are still
// returned.
func Connections(ctx context.Context, agents []Agent, q api.Query) ([]api.Connection, error) {
	res := make([][]api.Connection, len(agents))
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() {
			conns, err := a.Client.Connections(ctx, q)
			if err != nil {
				errs[i] = &NodeError{Node: a.Node, Err: err}
				return
			}
			for j := range conns {
				if conns[j].Node == "" {
					conns[j].Node = a.Node
				}
			}
			res[i] = conns
		})
	}
	wg.Wait()
	out := slices.Concat(res...)
	slices.SortStableFunc(out, compareEvents)
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, errors.Join(errs...)
}

func compareEvents(a, b api.Connection) int {
	return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Node, b.Node), cmp.Compare(a.Seq, b.Seq))
}

// Follow follows every agent's stream of events that match q and calls fn
// for each event, in time order across the nodes: an event is held for
// delay (the nodes' clock skew and delivery jitter it absorbs), then
// released with the older events of every node. fn is never called
// concurrently. An agent whose stream fails is reported to onErr (when not
// nil) and the others go on; Follow returns when ctx is done (nil), when
// every stream has ended (the errors joined), or when fn fails (its error).
func Follow(ctx context.Context, agents []Agent, q api.Query, delay time.Duration, fn func(*api.Connection) error, onErr func(error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan api.Connection, 256)
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() {
			err := a.Client.Follow(ctx, q, func(c *api.Connection) error {
				if c.Node == "" {
					c.Node = a.Node
				}
				select {
				case events <- *c:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil && ctx.Err() == nil {
				errs[i] = &NodeError{Node: a.Node, Err: err}
				if onErr != nil {
					onErr(errs[i])
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(events)
	}()
	var held []api.Connection
	release := func(upTo time.Time, all bool) error {
		slices.SortStableFunc(held, compareEvents)
		n := 0
		for n < len(held) && (all || !held[n].Time.After(upTo)) {
			if err := fn(&held[n]); err != nil {
				return err
			}
			n++
		}
		held = slices.Delete(held, 0, n)
		return nil
	}
	tick := time.NewTicker(max(delay/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case c, ok := <-events:
			if !ok {
				if err := release(time.Time{}, true); err != nil {
					return err
				}
				if ctx.Err() != nil {
					return nil
				}
				return errors.Join(errs...)
			}
			held = append(held, c)
		case <-tick.C:
			if err := release(time.Now().Add(-delay), false); err != nil {
				return err
			}
		}
	}
}

// NodeStatus is one node's line of a cluster-wide status.
type NodeStatus struct {
	Node  string `json:"node"`
	Ready bool   `json:"ready"`
	// Drops and DropRatio are the capture rings' drops.
	Drops     uint64  `json:"capture_drops"`
	DropRatio float64 `json:"capture_drop_ratio"`
	// ConntrackFill is the conntrack table's fill ratio, ConntrackETA the
	// seconds until full at its growth (absent when not growing or not
	// watched).
	ConntrackFill float64  `json:"conntrack_fill_ratio"`
	ConntrackETA  *float64 `json:"conntrack_eta_seconds,omitempty"`
	ConntrackDrop uint64   `json:"conntrack_drop"`
	// MTUMismatches are the interfaces whose MTU mismatches the path now.
	MTUMismatches []string `json:"mtu_mismatches"`
	// DeadBackends are "service → backend" pairs the agent judged dead.
	DeadBackends []string `json:"dead_backends"`
	// Error says why the agent did not answer (the rest is then empty).
	Error string `json:"error,omitempty"`
	// Status is the agent's whole answer.
	Status *api.Status `json:"status,omitempty"`
}

// Badness orders nodes worst first: an agent that does not answer, then
// not ready, then by the number and weight of findings.
func (n *NodeStatus) Badness() float64 {
	if n.Error != "" {
		return 1e9
	}
	b := 0.0
	if !n.Ready {
		b += 1e6
	}
	b += 1000 * float64(len(n.DeadBackends)+len(n.MTUMismatches))
	if n.ConntrackDrop > 0 {
		b += 1000
	}
	if n.ConntrackETA != nil && *n.ConntrackETA < 3600 {
		b += 500
	}
	b += 100*n.ConntrackFill + 100*n.DropRatio
	if n.Drops > 0 {
		b++
	}
	return b
}

// Statuses asks every agent for its status in parallel and returns one
// line per node, worst first (then by name).
func Statuses(ctx context.Context, agents []Agent) []NodeStatus {
	out := make([]NodeStatus, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() {
			s, err := a.Client.Status(ctx)
			if err != nil {
				out[i] = NodeStatus{Node: a.Node, Error: err.Error()}
				return
			}
			out[i] = Summarize(a.Node, s)
		})
	}
	wg.Wait()
	slices.SortStableFunc(out, func(a, b NodeStatus) int {
		return cmp.Or(cmp.Compare(b.Badness(), a.Badness()), cmp.Compare(a.Node, b.Node))
	})
	return out
}

// Summarize reduces a node's status to its line.
func Summarize(node string, s *api.Status) NodeStatus {
	if s.Node != "" {
		node = s.Node
	}
	n := NodeStatus{Node: node, Ready: s.Ready, Drops: s.Capture.Drops, DropRatio: s.Capture.DropRatio,
		MTUMismatches: []string{}, DeadBackends: []string{}, Status: s}
	if ct := s.Conntrack; ct != nil {
		n.ConntrackFill, n.ConntrackETA, n.ConntrackDrop = ct.Fill, ct.ETA, ct.Drop
	}
	for _, m := range s.MTU.Mismatches {
		if m.Cleared == nil {
			n.MTUMismatches = append(n.MTUMismatches, fmt.Sprintf("%s %d≠%d", m.Interface, m.Actual, m.Expected))
		}
	}
	for _, sv := range s.Services {
		if sv.Dead {
			n.DeadBackends = append(n.DeadBackends, sv.Service+" → "+sv.Backend)
		}
	}
	return n
}
