package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/internal/render"
)

// addAgentFlags adds the flags that say how to reach an agent's API (TLS
// and basic auth as the agent's --web-config-file asks) to f.
func addAgentFlags(f *pflag.FlagSet, c *api.ClientConfig) {
	f.StringVar(&c.URL, "agent", "http://127.0.0.1:9431", "the agent's URL (http(s)://host:port, its --metrics-addr)")
	f.StringVar(&c.CAFile, "ca-file", "", "PEM file of the CA that signs the agent's certificate (default: the system's)")
	f.StringVar(&c.CertFile, "cert-file", "", "client certificate, for agents that require one")
	f.StringVar(&c.KeyFile, "key-file", "", "key of --cert-file")
	f.StringVar(&c.ServerName, "server-name", "", "name to check in the agent's certificate (default: the --agent host)")
	f.BoolVar(&c.InsecureSkipVerify, "insecure-skip-verify", false, "accept any agent certificate")
	f.StringVar(&c.Username, "user", "", "basic auth user")
	f.StringVar(&c.Password, "password", "", "basic auth password (prefer --password-file)")
	f.StringVar(&c.PasswordFile, "password-file", "", "file holding the basic auth password")
	f.DurationVar(&c.Timeout, "timeout", 30*time.Second, "time limit of one request (not of --follow)")
}

func newObserveCmd() *cobra.Command {
	var (
		cc       api.ClientConfig
		q        api.Query
		port     uint16
		output   string
		colorArg string
	)
	cmd := &cobra.Command{
		Use:   "observe",
		Short: "Show the connections an agent observed, layer by layer, or follow them live",
		Long: `Show the connection events of an agent's history (the last --since), or with
--follow stream them as the agent records them, one line per event:

  time node client → service → backend protocol L3 … · L4 … · L7 … · DNAT … hops

An event is recorded when a connection ends ("final") and, while it is
active, each time its state changes ("progress": SYN unanswered, SYN
retransmitted, SYN-ACK, RST, FIN, L7 response). --latest keeps the newest
event of each connection view. On a terminal the table is compact and
coloured; piped, lines are plain. -o json prints one JSON object per line
(the schema is agent/api/SCHEMA.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: want table or json", output)
			}
			color, err := render.ColorMode(colorArg, out)
			if err != nil {
				return err
			}
			q.Port = port
			if _, err := api.ParseQuery(q.Values()); err != nil {
				return fmt.Errorf("filter: %w", err)
			}
			c, err := api.NewClient(cc)
			if err != nil {
				return err
			}
			p := &render.Printer{W: out, JSON: output == "json", Color: color, Compact: render.IsTerminal(out)}
			ctx := cmd.Context()
			if !q.Follow {
				conns, err := c.Connections(ctx, q)
				if err != nil {
					return err
				}
				for i := range conns {
					if err := p.Print(&conns[i]); err != nil {
						return err
					}
				}
				return nil
			}
			err = c.Follow(ctx, q, p.Print)
			if ctx.Err() != nil && (err == nil || strings.Contains(err.Error(), context.Canceled.Error())) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	addAgentFlags(f, &cc)
	f.BoolVarP(&q.Follow, "follow", "f", false, "stream events as the agent records them (until interrupted)")
	f.DurationVar(&q.Since, "since", 0, "only events of this last period (e.g. 5m); default: the agent's whole history")
	f.IntVar(&q.Limit, "limit", 0, "at most this many events, the newest (0: all)")
	f.BoolVar(&q.Latest, "latest", false, "only the newest event of each connection view")
	f.StringVar(&q.Pod, "pod", "", "only connections of this pod (name or namespace/name)")
	f.StringVar(&q.Namespace, "namespace", "", "only connections with an end in this namespace")
	f.StringVar(&q.Service, "service", "", "only connections to this service (name, namespace/name, IP or IP:port)")
	f.StringVar(&q.IP, "ip", "", "only connections with an end at this IP")
	f.Uint16Var(&port, "port", 0, "only connections to this service or backend port")
	f.StringVar(&q.Protocol, "protocol", "", "only this protocol (tcp, udp, icmp)")
	f.StringSliceVar(&q.Outcomes, "outcome", nil, "only these outcomes: syn_sent, timeout, refused, established, reset, closed, replied, unreplied, failed")
	f.StringVar(&q.Layer, "layer", "", "only connections failing (or pending) at this layer: l3, l4, l7")
	f.StringVar(&q.State, "state", "", "only final or progress events")
	f.StringVar(&q.View, "view", "", "only pre (before DNAT), post (after DNAT) or direct events")
	f.StringVarP(&output, "output", "o", "table", "output format: table or json (one object per line)")
	f.StringVar(&colorArg, "color", "auto", "colour: auto (when stdout is a terminal), always, never")
	return cmd
}
