package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/internal/fleet"
	"github.com/layerscope/layerscope/internal/render"
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
  dropping → L3 MTU (frag-needed, MTU mismatch) → the service's DNAT →
  L4 backends (SYN-ACK, RST, silence) → L7 errors

FROM and TO are IP or IP:port, or a pod or service name (namespace/name or
name) that the agents' events carry; any other TO is taken as a DNS name.
Ask the agents of both nodes (--agent URL1,URL2): their evidence is merged.

Exit codes: 0 no fault observed, 1 error of the command, 2 no traffic seen,
3 DNS NXDOMAIN, 4 DNS SERVFAIL, 5 conntrack, 6 service not DNATed (no
endpoints), 7 L3 MTU, 8 L4 backend, 9 path, 10 L7.`,
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
			v, err := fleet.Diagnose(cmd.Context(), clients, args[0], args[1], since)
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
				render.Verdict(out, &v)
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
