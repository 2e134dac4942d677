package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/diagnose"
)

func newDiagnoseCmd() *cobra.Command {
	var (
		cc     api.ClientConfig
		since  time.Duration
		output string
	)
	cmd := &cobra.Command{
		Use:   "diagnose FROM TO",
		Short: "Say which layer breaks the traffic from FROM to TO, from what the agents observed",
		Long: `Walk the layers from FROM to TO over the agents' observations of the last
--since and name the first broken one, with the evidence (counts, times, hops)
and the next check to run by hand:

  DNS (when TO is a name) → traffic from FROM to TO → conntrack full or
  dropping → L3 MTU (frag-needed, MTU mismatch) → NetworkPolicies (the
  agents name the policy that denies the failed connections) → the
  service's DNAT → L4 backends (SYN-ACK, RST, silence) → L7 errors

A drop the agents found no NetworkPolicy to explain is never blamed on one:
it stays an L4 or path verdict that says the CNI or the node dropped it.

FROM and TO are IP or IP:port, or a pod or service name (namespace/name or
name) that the agents' events carry; any other TO is taken as a DNS name.
Ask the agents of both nodes (--agent URL1,URL2): their evidence is merged.

Exit codes: 0 no fault observed, 1 error of the command, 2 no traffic seen,
3 DNS NXDOMAIN, 4 DNS SERVFAIL, 5 conntrack, 6 service not DNATed (no
endpoints), 7 L3 MTU, 8 L4 backend, 9 path, 10 L7, 11 NetworkPolicy.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: want text or json", output)
			}
			if since <= 0 {
				return fmt.Errorf("--since %v: want a positive duration", since)
			}
			clients, err := diagnoseClients(cc)
			if err != nil {
				return err
			}
			v, err := runDiagnose(cmd.Context(), clients, args[0], args[1], since)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(v); err != nil {
					return err
				}
			} else {
				renderVerdict(out, &v)
			}
			if v.ExitCode != 0 {
				return &exitError{code: v.ExitCode, err: fmt.Errorf("diagnose: %s (exit %d)", v.Class, v.ExitCode)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	addAgentFlags(f, &cc)
	f.Lookup("agent").Usage = "the agents' URLs, comma-separated (the nodes of FROM and TO)"
	f.DurationVar(&since, "since", 5*time.Minute, "look at the observations of this last period")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// diagnoseClients makes one client per comma-separated --agent URL.
func diagnoseClients(cc api.ClientConfig) ([]*api.Client, error) {
	var out []*api.Client
	for _, u := range strings.Split(cc.URL, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		c := cc
		c.URL = u
		cl, err := api.NewClient(c)
		if err != nil {
			return nil, err
		}
		out = append(out, cl)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--agent: no URL")
	}
	return out, nil
}

// runDiagnose gathers the agents' evidence of the last since and judges
// it. It fails only when no agent answered.
func runDiagnose(ctx context.Context, clients []*api.Client, from, to string, since time.Duration) (diagnose.Verdict, error) {
	nodes := gatherEvidence(ctx, clients, since)
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
	in := &diagnose.Input{
		From:  resolveEndpoint(from, nodes),
		To:    resolveEndpoint(to, nodes),
		Since: since,
		Nodes: nodes,
	}
	return diagnose.Diagnose(in), nil
}

// gatherEvidence asks every agent for its status and its connection events
// of the window, in parallel.
func gatherEvidence(ctx context.Context, clients []*api.Client, since time.Duration) []diagnose.NodeEvidence {
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

// resolveEndpoint reads an address, or looks the name up among the pods
// and services the agents' events name ("ns/name" or "name").
func resolveEndpoint(arg string, nodes []diagnose.NodeEvidence) diagnose.Endpoint {
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

// renderVerdict prints the verdict for a person.
func renderVerdict(w io.Writer, v *diagnose.Verdict) {
	layer := v.Layer
	if layer == "" {
		layer = "-"
	}
	fmt.Fprintf(w, "verdict:  %s [%s]\n", v.Class, layer)
	fmt.Fprintf(w, "          %s\n", v.Summary)
	if len(v.Evidence) > 0 {
		fmt.Fprintln(w, "evidence:")
		for _, e := range v.Evidence {
			fmt.Fprintf(w, "  - %s\n", e)
		}
	}
	fmt.Fprintf(w, "next:     %s\n", v.Next)
}
