package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/layerscope/layerscope/agent"
	"github.com/layerscope/layerscope/agent/attach"
	"github.com/layerscope/layerscope/agent/capture"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/agent/history"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/agent/metrics"
	"github.com/layerscope/layerscope/agent/ondemand"
	"github.com/layerscope/layerscope/agent/server"
	"github.com/layerscope/layerscope/agent/web"
)

func newAgentCmd() *cobra.Command {
	var (
		cfg                     agent.Config
		kubeAuth                bool
		roles                   []string
		vxlan, geneve, dnsPorts []uint
		flowMax                 int
		flowIdle                time.Duration
		k8sMode                 string
	)
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
			switch {
			case !kubeAuth:
				cfg.CaptureKubeAuth = ""
			case cfg.CaptureKubeAuth == "":
				return fmt.Errorf("--capture-api-kubernetes-namespace: empty, and --capture-api-kubernetes-auth checks the permission in it")
			}
			for _, r := range roles {
				role, ok := flow.ParseRole(r)
				if !ok || role == flow.RoleReplay {
					return fmt.Errorf("--capture-roles: unknown role %q (pod, overlay, uplink, bridge, other)", r)
				}
				cfg.Capture.Roles = append(cfg.Capture.Roles, role)
			}
			var err error
			if cfg.Capture.Decoders, err = parserConfig(vxlan, geneve, dnsPorts); err != nil {
				return err
			}
			if cfg.Conntrack.TopN < 0 || cfg.Conntrack.ReadBuffer < 0 {
				return fmt.Errorf("--conntrack-top-n and --conntrack-read-buffer must not be negative")
			}
			if r := cfg.Traces.SampleRatio; r < 0 || r > 1 {
				return fmt.Errorf("--otlp-sample-ratio %v: want 0 to 1", r)
			}
			if flowMax < 0 || flowIdle < 0 {
				return fmt.Errorf("--flow-table-max and --flow-idle-timeout must not be negative")
			}
			cfg.Capture.FlowTable = &flowtable.Config{MaxEntries: flowMax, IdleTimeout: flowIdle}
			if cfg.Kube.Mode, err = kube.ParseMode(k8sMode); err != nil {
				return err
			}
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			return runBounded(cmd.Context(), a.Run, stopBound)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NetNS, "netns", "", "network namespace to observe (name under /run/netns or path); default: the agent's own")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", agent.DefaultMetricsAddr, "host:port to serve /metrics, /healthz and /readyz on")
	f.StringVar(&cfg.WebConfigFile, "web-config-file", "", "exporter-toolkit web config file for TLS and basic auth")
	var defaultRoles []string
	for _, r := range attach.DefaultRoles {
		defaultRoles = append(defaultRoles, r.String())
	}
	f.StringSliceVar(&roles, "capture-roles", defaultRoles, "interface roles to capture: pod, overlay, uplink, bridge, other")
	f.StringSliceVar(&cfg.Capture.Include, "capture-include", nil, "capture only interfaces whose name matches one of these globs")
	f.StringSliceVar(&cfg.Capture.Exclude, "capture-exclude", nil, "never capture interfaces whose name matches one of these globs")
	f.IntVar(&cfg.Capture.SnapLen, "snaplen", capture.DefaultSnapLen, "bytes kept of each frame (enough for L7 headers)")
	f.StringVar(&cfg.Capture.Filter, "capture-filter", "", "capture only the frames this tcpdump expression matches (the subset of on-demand capture's --filter)")
	f.StringVar(&cfg.Capture.FilterFile, "capture-filter-file", "", "`FILE` of a classic BPF filter as printed by tcpdump -dd EXPR, for what --capture-filter cannot say")
	f.BoolVar(&cfg.Capture.Disabled, "no-capture", false, "do not capture packets (link metrics only)")
	f.BoolVar(&cfg.Capture.Offload, "capture-offload", false, "count the frames of established TCP flows in the kernel (eBPF socket filter) and decode only those that change a flow's state; counts stay exact (without eBPF: every frame in user space, logged)")
	f.IntVar(&cfg.Capture.OffloadFlows, "capture-offload-flows", capture.DefaultOffloadFlows, "flow directions each ring's kernel map holds with --capture-offload (beyond: frames go to user space, counted)")
	f.IntVar(&flowMax, "flow-table-max", flowtable.DefaultMaxEntries, "most flows tracked at once (about 720 bytes each)")
	f.DurationVar(&flowIdle, "flow-idle-timeout", flowtable.DefaultIdleTimeout, "forget a flow after this long without packets")
	addDecoderFlags(f, &vxlan, &geneve, &dnsPorts)
	f.BoolVar(&cfg.Conntrack.Disabled, "no-conntrack", false, "do not watch the conntrack table")
	f.IntVar(&cfg.Conntrack.TopN, "conntrack-top-n", 0, "export the N sources and destinations holding the most conntrack entries (addresses as labels; 0: off)")
	f.BoolVar(&cfg.Conntrack.PerCPU, "conntrack-per-cpu", false, "add the cpu label to the conntrack statistics")
	f.StringVar(&cfg.HealthAddr, "health-addr", "", "host:port serving only /healthz and /readyz, without authentication (for probes when --web-config-file asks for credentials)")
	f.StringVar(&cfg.APISocket, "api-socket", "", "unix socket serving the API to root and to --api-socket-group (peers checked with SO_PEERCRED)")
	f.StringVar(&cfg.APISocketGroup, "api-socket-group", "", "group (name or gid) allowed on --api-socket besides root")
	f.IntVar(&cfg.HTTP.MaxConns, "web-max-connections", server.DefaultMaxConns, "most HTTP connections open at once per listener (idle ones are closed first to make room)")
	f.BoolVar(&cfg.OnDemand.Enabled, "capture-api", false, "serve on-demand captures on /api/v1/capture to authenticated clients (needs --web-config-file with users or client certificates, --api-socket, or --capture-api-kubernetes-auth)")
	f.BoolVar(&kubeAuth, "capture-api-kubernetes-auth", false, "identify capture clients by their Kubernetes bearer token: TokenReview, then a SubjectAccessReview of create on captures.layerscope.io named after this node in --capture-api-kubernetes-namespace")
	f.StringVar(&cfg.CaptureKubeAuth, "capture-api-kubernetes-namespace", cmp.Or(os.Getenv("POD_NAMESPACE"), "layerscope"), "namespace of the permission --capture-api-kubernetes-auth checks (default: $POD_NAMESPACE, else layerscope)")
	var noCaptureAPI bool
	f.BoolVar(&noCaptureAPI, "no-capture-api", false, "on-demand captures off (the default)")
	_ = f.MarkDeprecated("no-capture-api", "on-demand captures are off unless --capture-api is given")
	f.IntVar(&cfg.OnDemand.MaxInterfaces, "capture-api-max-interfaces", web.DefaultCaptureInterfaces, "most interfaces in one on-demand capture")
	f.Int64Var(&cfg.OnDemand.RingMemory, "capture-api-ring-memory", web.DefaultCaptureRingMemory, "ring memory in bytes of all on-demand captures together")
	f.DurationVar(&cfg.OnDemand.Caps.Duration, "capture-api-max-duration", ondemand.DefaultMaxDuration, "longest on-demand capture")
	f.Int64Var(&cfg.OnDemand.Caps.Packets, "capture-api-max-packets", ondemand.DefaultMaxPackets, "most packets in one on-demand capture")
	f.Int64Var(&cfg.OnDemand.Caps.Bytes, "capture-api-max-bytes", ondemand.DefaultMaxBytes, "most pcap bytes in one on-demand capture")
	f.IntVar(&cfg.OnDemand.Caps.SnapLen, "capture-api-snaplen", ondemand.DefaultSnapLen, "most bytes kept of each frame in on-demand captures")
	f.IntVar(&cfg.OnDemand.MaxConcurrent, "capture-api-concurrent", ondemand.DefaultMaxConcurrent, "on-demand captures run at once (more get 429)")
	f.BoolVar(&cfg.Traces.Enabled, "traces", false, "export connection traces over OTLP (also on when OTEL_EXPORTER_OTLP_ENDPOINT is set)")
	f.StringVar(&cfg.Traces.Endpoint, "otlp-endpoint", "", "OTLP receiver, host:port or URL (default: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT)")
	f.StringVar(&cfg.Traces.Protocol, "otlp-protocol", "", "grpc or http/protobuf (default: OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL, else http/protobuf)")
	f.BoolVar(&cfg.Traces.Insecure, "otlp-insecure", false, "no TLS to a host:port --otlp-endpoint")
	f.Float64Var(&cfg.Traces.SampleRatio, "otlp-sample-ratio", 0.1, "share of error-free connections traced (connections with an error always are)")
	f.StringVar(&cfg.Node, "node-name", os.Getenv("NODE_NAME"), "this node's name in spans and for the Kubernetes metadata (default: $NODE_NAME, else the host name)")
	f.IntVar(&cfg.API.HistorySize, "api-history-size", history.DefaultSize, "connection events kept for /api/v1/connections, observe and diagnose (about 800 bytes each)")
	f.DurationVar(&cfg.API.ProgressInterval, "api-progress-interval", history.DefaultProgressInterval, "how often active flows are checked for a change worth an event")
	f.DurationVar(&cfg.API.FollowWriteTimeout, "api-follow-timeout", web.DefaultFollowWriteTimeout, "disconnect a follower whose stream stays blocked this long")
	f.StringVar(&k8sMode, "k8s-metadata", "auto", "Kubernetes metadata for service, namespace and workload names: auto (the file if given, else the API when in a pod, else off), api, file or off")
	f.StringVar(&cfg.Kube.File, "k8s-metadata-file", "", "static metadata file: Pods, Services and EndpointSlices as kubectl get -o yaml prints them (reloaded when it changes)")
	f.StringVar(&cfg.Kube.Kubeconfig, "kubeconfig", "", "kubeconfig file for --k8s-metadata=api (default: the in-cluster service account)")
	f.BoolVar(&cfg.Kube.PodNames, "k8s-pod-names", false, "add the pod label to the workload metrics (one series per pod)")
	f.BoolVar(&cfg.Kube.PolicyPodNames, "k8s-policy-pod-names", false, "add the pod label to layerscope_policy_denied_connections_total (one series per isolated pod)")
	f.BoolVar(&cfg.Kube.NoPolicies, "no-network-policies", false, "do not watch NetworkPolicies and Namespaces (failed connections are not explained by policy)")
	f.BoolVar(&cfg.Kube.ServiceBackends, "service-backend-label", false, "add the backend and workload labels to the service connection and failure-ratio metrics (one series per backend)")
	f.IntVar(&cfg.Kube.ServiceSeries, "service-series", metrics.DefaultServiceSeries, "service label sets exported before further ones are summed into service=\"other\"")
	f.IntVar(&cfg.Kube.EndpointSeries, "service-endpoint-series", metrics.DefaultEndpointSeries, "Services whose ready endpoints are exported (those without any first); every node knows every Service")
	f.IntVar(&cfg.Kube.WorkloadSeries, "workload-series", metrics.DefaultWorkloadSeries, "workload label sets exported before further ones are summed into workload=\"other\"")
	f.IntVar(&cfg.Conntrack.ReadBuffer, "conntrack-read-buffer", 0, "receive buffer of the conntrack event socket in bytes (0: 16 MiB)")
	return cmd
}

// stopBound is how long the agent may take to stop once signalled: its
// own stop waits 5 s at most for requests in flight and then for the trace
// exporter, and this bound, well within a pod's default termination grace
// period of 30 s, ends the process even if some part never returns.
const stopBound = 15 * time.Second

// runBounded runs run until ctx is done, then waits bound at most for it
// to return: past that it returns an error without waiting further (the
// process exits, ending whatever was stuck).
func runBounded(ctx context.Context, run func(context.Context) error, bound time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("the agent did not stop within %v of the signal: exiting without waiting for it", bound)
	}
}
