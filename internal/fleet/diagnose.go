package fleet

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/diagnose"
)

// Diagnose gathers the agents' evidence of the last since and judges
// it. It fails only when no agent answered.
func Diagnose(ctx context.Context, clients []*api.Client, from, to string, since time.Duration) (diagnose.Verdict, error) {
	return DiagnoseResolved(ctx, clients, since, func(nodes []diagnose.NodeEvidence) (diagnose.Endpoint, diagnose.Endpoint) {
		return ResolveEndpoint(from, nodes), ResolveEndpoint(to, nodes)
	})
}

// DiagnoseResolved is Diagnose with FROM and TO resolved by resolve, which
// sees the agents' evidence (e.g. with names already resolved from the
// Kubernetes API).
func DiagnoseResolved(ctx context.Context, clients []*api.Client, since time.Duration, resolve func([]diagnose.NodeEvidence) (from, to diagnose.Endpoint)) (diagnose.Verdict, error) {
	nodes := GatherEvidence(ctx, clients, since)
	ok := false
	var errs []string
	for _, n := range nodes {
		if n.Err == "" || n.Status != nil || len(n.Connections) > 0 {
			ok = true
		} else {
			errs = append(errs, n.Source+": "+n.Err)
		}
	}
	if !ok {
		return diagnose.Verdict{}, fmt.Errorf("no agent answered: %s", strings.Join(errs, "; "))
	}
	fromEP, toEP := resolve(nodes)
	in := &diagnose.Input{
		From:  fromEP,
		To:    toEP,
		Since: since,
		Nodes: nodes,
	}
	return diagnose.Diagnose(in), nil
}

// GatherEvidence asks every agent for its status and its connection events
// of the window, in parallel.
func GatherEvidence(ctx context.Context, clients []*api.Client, since time.Duration) []diagnose.NodeEvidence {
	out := make([]diagnose.NodeEvidence, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			n := diagnose.NodeEvidence{Source: c.URL(), Node: c.URL()}
			var errs []string
			st, err := c.Status(ctx)
			if err != nil {
				errs = append(errs, "status: "+err.Error())
			} else {
				n.Status = st
				if st.Node != "" {
					n.Node = st.Node
				}
			}
			conns, err := c.Connections(ctx, api.Query{Since: since})
			if err != nil {
				errs = append(errs, "connections: "+err.Error())
			}
			n.Connections = conns
			n.Err = strings.Join(errs, "; ")
			out[i] = n
		})
	}
	wg.Wait()
	return out
}

// ResolveEndpoint reads an address, or looks the name up among the pods
// and services the agents' events name ("ns/name" or "name").
func ResolveEndpoint(arg string, nodes []diagnose.NodeEvidence) diagnose.Endpoint {
	e := diagnose.ParseEndpoint(arg)
	if len(e.Addrs) > 0 {
		return e
	}
	seen := map[netip.Addr]bool{}
	add := func(ip string) {
		if a, err := netip.ParseAddr(ip); err == nil && !seen[a.Unmap()] {
			seen[a.Unmap()] = true
			e.Addrs = append(e.Addrs, a.Unmap())
		}
	}
	named := func(ep *api.Endpoint, name string) bool {
		return name != "" && (arg == name || arg == ep.Namespace+"/"+name)
	}
	for ni := range nodes {
		for i := range nodes[ni].Connections {
			c := &nodes[ni].Connections[i]
			for _, ep := range []*api.Endpoint{&c.Client, &c.Backend} {
				if named(ep, ep.Pod) {
					add(ep.IP)
				}
			}
			if c.Service != nil && named(c.Service, c.Service.Service) {
				add(c.Service.IP)
				e.Service = true
			}
		}
	}
	if len(e.Addrs) > 0 {
		e.DNSName = ""
	}
	return e
}
