package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/layerscope/layerscope/agent"
)

func newAgentCmd() *cobra.Command {
	var cfg agent.Config
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent",
		Long: `Run the node agent: capture on the node's interfaces, watch conntrack, and
serve Prometheus metrics on /metrics with /healthz and /readyz.

--netns opens the capture and netlink sockets inside that network namespace
(a name under /run/netns or a path such as /proc/PID/ns/net) while HTTP is
served in the caller's namespace.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Version, cfg.Revision, cfg.Logger = version, revision, slog.Default()
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NetNS, "netns", "", "network namespace to observe (name under /run/netns or path); default: the agent's own")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", agent.DefaultMetricsAddr, "host:port to serve /metrics, /healthz and /readyz on")
	f.StringVar(&cfg.WebConfigFile, "web-config-file", "", "exporter-toolkit web config file for TLS and basic auth")
	return cmd
}
