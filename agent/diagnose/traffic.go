package diagnose

import (
	"fmt"
	"sort"

	"github.com/layerscope/layerscope/agent/api"
)

// inWindow reports whether c had packets within the window: the history
// query selects events by their time, and a connection's final event can
// come after the window started although its packets all came before.
func inWindow(in *Input, c *api.Connection) bool {
	return in.Since <= 0 || c.Last.IsZero() || !c.Last.Before(in.Now.Add(-in.Since))
}

// matching returns one view per connection from FROM to TO on each node:
// the pre-DNAT view when there is one (it names the service and, through
// conntrack, the backend), else the direct view, else the post view; and
// every view of them (the hops of a DNATed connection after the DNAT are
// in its post view, those on the backend's node in that node's view).
func matching(in *Input) (conns, views []conn) {
	rank := map[string]int{api.ViewPre: 0, api.ViewDirect: 1, api.ViewPost: 2}
	var out []conn
	for ni := range in.Nodes {
		n := &in.Nodes[ni]
		latest := api.Latest(n.Connections)
		best := map[string]int{}
		for i := range latest {
			c := &latest[i]
			if !fromTo(in, c) || !inWindow(in, c) {
				continue
			}
			views = append(views, conn{node: n.Node, c: c, failed: failing(c, in.Now)})
			if j, ok := best[c.ID]; ok && rank[latest[j].View] <= rank[c.View] {
				continue
			}
			best[c.ID] = i
		}
		idx := make([]int, 0, len(best))
		for _, i := range best {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		for _, i := range idx {
			out = append(out, conn{node: n.Node, c: &latest[i], failed: failing(&latest[i], in.Now)})
		}
	}
	// The same connections as other nodes saw them after the DNAT (client
	// → backend, without the service): their hops are the rest of the path.
	type key struct{ client, backend, proto string }
	keys := map[key]bool{}
	for _, v := range views {
		keys[key{v.c.Client.Addr, v.c.Backend.Addr, v.c.Protocol}] = true
	}
	for ni := range in.Nodes {
		n := &in.Nodes[ni]
		for _, c := range api.Latest(n.Connections) {
			if !fromTo(in, &c) && inWindow(in, &c) && keys[key{c.Client.Addr, c.Backend.Addr, c.Protocol}] {
				views = append(views, conn{node: n.Node, c: &c, failed: failing(&c, in.Now)})
			}
		}
	}
	return dedupeNodes(out), views
}

// dedupeNodes keeps each connection once when several nodes saw it: the
// client's node is the one whose view names the service (pre), or, for a
// direct connection, the first node that reported it.
func dedupeNodes(cs []conn) []conn {
	type key struct{ client, backend, proto string }
	seen := map[key]int{}
	var out []conn
	for _, c := range cs {
		k := key{c.c.Client.Addr, c.c.Backend.Addr, c.c.Protocol}
		if i, ok := seen[k]; ok {
			if out[i].c.View != api.ViewPre && c.c.View == api.ViewPre {
				out[i] = c
			}
			continue
		}
		seen[k] = len(out)
		out = append(out, c)
	}
	return out
}

func fromTo(in *Input, c *api.Connection) bool {
	if !in.From.has(c.Client.IP, c.Client.Port) {
		return false
	}
	if c.Service != nil && in.To.has(c.Service.IP, c.Service.Port) {
		return true
	}
	return in.To.has(c.Backend.IP, c.Backend.Port)
}

func fromOnly(in *Input) (n int, others map[string]int) {
	others = map[string]int{}
	for ni := range in.Nodes {
		for _, c := range api.Latest(in.Nodes[ni].Connections) {
			if in.From.has(c.Client.IP, c.Client.Port) {
				n++
				dst := c.Backend.Addr
				if c.Service != nil {
					dst = c.Service.Addr
				}
				others[dst]++
			}
		}
	}
	return n, others
}

func noTraffic(in *Input, win string) Verdict {
	v := Verdict{Class: NoTraffic}
	n, others := fromOnly(in)
	v.Summary = fmt.Sprintf("no traffic from %s to %s observed in the last %s", in.From.Arg, in.To.Arg, win)
	if n == 0 {
		v.Evidence = append(v.Evidence, fmt.Sprintf("no connection from %s at all on the agents asked", in.From.Arg))
		v.Next = "check that FROM runs and sends (kubectl exec into it and connect by hand), and that the agent of FROM's node was asked (--agent) and captures its veth (`layerscope status`)"
	} else {
		v.Evidence = append(v.Evidence, fmt.Sprintf("%d other connections from %s: %s", n, in.From.Arg, topCounts(others, 5)))
		v.Next = "the application does not connect to TO: check the address or name it is configured with (env, config map) against TO"
	}
	return v
}
