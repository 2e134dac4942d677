package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/layerscope/layerscope/lab"
)

// labFlags are the flags shared by the lab subcommands.
type labFlags struct {
	prefix   string
	stateDir string
}

func (f *labFlags) config() *lab.Config {
	return &lab.Config{Prefix: f.prefix, StateDir: f.stateDir, Logger: slog.Default()}
}

func newLabCmd() *cobra.Command {
	f := &labFlags{}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Build and drive the network-namespace lab",
		Long: `The lab is a two-node mini-cluster made of network namespaces:
node-1 (10.0.0.10) and node-2 (10.0.0.11) joined by eth0, a cbr0 bridge and a
vxlan0 overlay (VNI 1, MTU 1450) per node, pods pod-a 10.244.0.5 and pod-b
10.244.0.8 on node-1, pod-c 10.244.1.8 on node-2, a DNS pod 10.244.0.10, and
the Service 10.96.0.42:8080 (NodePort 30080) programmed as kube-proxy's
iptables mode does. Namespaces are named PREFIX + member (ls-node-1, …) and
work with "ip netns exec". All commands need root.`,
	}
	cmd.PersistentFlags().StringVar(&f.prefix, "prefix", lab.DefaultPrefix, "namespace name prefix of the lab (1-12 characters of [a-z0-9-])")
	cmd.PersistentFlags().StringVar(&f.stateDir, "state-dir", lab.DefaultStateDir, "directory for the lab's pid file and saved sysctls")
	cmd.AddCommand(newLabUpCmd(f), newLabDownCmd(f), newLabStatusCmd(f), newLabTrafficCmd(f), newLabPauseCmd())
	return cmd
}

func newLabUpCmd(f *labFlags) *cobra.Command {
	var wiring, proxyMode, k8sBin, knpBin string
	var kube, kubelets, netpol bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Build the lab and serve its pods until interrupted",
		Long: `Build the lab and keep serving the pods' HTTP, TLS and DNS servers in the
foreground. Ctrl-C or SIGTERM tears everything down. The process writes its
pid to STATE-DIR/PREFIX/pid: "layerscope lab down" from another terminal
stops it the same way, and also cleans up after a crashed run.

While the lab is up, "layerscope lab traffic SCENARIO" (same --prefix) drives
traffic through it, and tcpdump, conntrack or the agent can watch any of its
namespaces with "ip netns exec".

With --kubernetes the control plane is real: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler run in the namespace
PREFIX+control-plane (10.0.1.10, linked to node-1; the API server listens on
10.0.1.10:6443 only), a real kube-proxy runs in each node in iptables or
nftables mode (--kube-proxy-mode) instead of the lab's own rules, and the
nodes, pods, Service and EndpointSlice are API objects. The binaries come from
--k8s-bin or $LAYERSCOPE_K8S_BIN (eval "$(.ci/kubernetes.sh --env)"); certificates
and logs are under STATE-DIR/PREFIX/kubernetes, and kubectl works on the host
with the admin kubeconfig printed at start (it names a relay on 127.0.0.1 that
this process serves).

With --network-policies (and --kubernetes) kube-network-policies enforces the
NetworkPolicies of the API server on each node (--kube-network-policies or
$LAYERSCOPE_KUBE_NETWORK_POLICIES: eval "$(.ci/kube-network-policies.sh --env)").

With --kubelets as well, each node also runs a real containerd and kubelet
(Debian's containerd, runc and CNI plugins): the kubelets register the nodes
and run the lab's pods (their containers only wait; the lab's servers answer
at the pods' addresses), and a DaemonSet runs on both nodes. The images
layerscope.local/layerscope:lab (the agent) and layerscope.local/pause:lab
are built from this binary (or $LAYERSCOPE_BINARY; it must be static, as
"make build" makes it) and imported into each node, so that

  helm install layerscope deploy/helm/layerscope -n layerscope --create-namespace \
    --set image.registry=layerscope.local --set image.repository=layerscope \
    --set image.tag=lab --set image.pullPolicy=Never

runs the agent in each node, as a user's cluster would.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if netpol && !kube {
				return fmt.Errorf("--network-policies needs --kubernetes")
			}
			cfg := f.config()
			cfg.Wiring = lab.Wiring(wiring)
			cfg.Kubernetes = kube
			cfg.KubeProxyMode = lab.KubeProxyMode(proxyMode)
			cfg.K8sBin = k8sBin
			cfg.Kubelets = kubelets
			l, err := lab.New(ctx, cfg)
			if err != nil {
				return labError(err, f.prefix)
			}
			defer l.Close()
			if netpol {
				if err := l.StartNetworkPolicies(ctx, knpBin); err != nil {
					return labError(err, f.prefix)
				}
			}
			printLab(cmd.OutOrStdout(), l)
			fmt.Fprintln(cmd.OutOrStdout(), "serving; Ctrl-C tears the lab down")
			<-ctx.Done()
			return l.Close()
		},
	}
	cmd.Flags().StringVar(&wiring, "wiring", string(lab.WiringBridge),
		"how pods are connected to their node: bridge (cbr0, flannel-style) or routed (no bridge: /32 routes and proxy ARP, Calico-style)")
	cmd.Flags().BoolVar(&kube, "kubernetes", false, "run a real control plane and a real kube-proxy per node (see above)")
	cmd.Flags().StringVar(&proxyMode, "kube-proxy-mode", string(lab.KubeProxyIPTables), "kube-proxy's mode with --kubernetes: iptables or nftables")
	cmd.Flags().StringVar(&k8sBin, "k8s-bin", "", "directory of the Kubernetes binaries with --kubernetes (default $"+lab.K8sBinEnv+")")
	cmd.Flags().BoolVar(&netpol, "network-policies", false, "with --kubernetes, enforce NetworkPolicies with kube-network-policies on each node (see above)")
	cmd.Flags().StringVar(&knpBin, "kube-network-policies", "", "the kube-network-policies binary of --network-policies (default $"+lab.KubeNetworkPoliciesEnv+")")
	cmd.Flags().BoolVar(&kubelets, "kubelets", false, "with --kubernetes, also run containerd and a kubelet per node (see above)")
	return cmd
}

// newLabPauseCmd is the process of the lab pods' containers and
// sandboxes with kubelets: it waits until told to stop.
func newLabPauseCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "pause",
		Short:  "Wait for SIGTERM or SIGINT (the lab pods' container process)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			<-cmd.Context().Done()
			return nil
		},
	}
}

func printLab(w io.Writer, l *lab.Lab) {
	fmt.Fprintf(w, "lab %s is up (%s wiring)\n", l.Prefix(), l.Wiring())
	on := lab.BridgeName
	if l.Wiring() == lab.WiringRouted {
		on = "/32 routes"
	}
	for _, n := range l.Nodes() {
		fmt.Fprintf(w, "  %-7s netns %-14s %s (eth0), pods %s on %s, vxlan0 VNI %d\n",
			n.Name, n.NetNS, n.IP, n.PodCIDR, on, lab.VNI)
	}
	for _, p := range l.Pods() {
		what := "DNS :53"
		if p.Backend {
			what = fmt.Sprintf("HTTP :%d, TLS :%d", lab.ServicePort, lab.TLSPort)
		}
		fmt.Fprintf(w, "  %-7s netns %-14s %s on %s via %s, %s\n", p.Name, p.NetNS, p.IP, p.Node, p.HostVeth, what)
	}
	fmt.Fprintf(w, "  service %s (%s), NodePort %d on each node IP\n", lab.ServiceAddr, lab.ServiceName, lab.NodePort)
	if mode, ok := l.Kubernetes(); ok {
		kc, _ := l.Kubeconfig()
		fmt.Fprintf(w, "  control plane netns %s, API server https://%s:%d, kube-proxy %s mode on each node\n",
			l.NetNS(lab.ControlPlane), lab.ControlPlaneIP, lab.APIServerPort, mode)
		fmt.Fprintf(w, "  kubectl --kubeconfig %s get pods -A   (through a relay on 127.0.0.1 served by this process)\n", kc)
		if l.Kubelets() {
			fmt.Fprintf(w, "  containerd and kubelet on each node; images %s and %s imported\n", lab.AgentImage, lab.PauseImage)
		}
	}
}

func newLabDownCmd(f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Tear down the lab, or what a crashed run left behind",
		Long: `Stop the process serving the lab (if any), restore a nf_conntrack_max that a
crashed conntrack-flood left lowered, and delete the lab's namespaces, which
removes their links and iptables rules.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			removed, err := lab.Down(ctx, f.config())
			if err != nil {
				return labError(err, f.prefix)
			}
			if len(removed) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "lab %s: nothing to remove\n", f.prefix)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s: removed %s\n", f.prefix, strings.Join(removed, " "))
			return nil
		},
	}
}

func newLabStatusCmd(f *labFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what exists of the lab: namespaces, links, iptables chains, servers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := lab.Status(cmd.Context(), f.config())
			if err != nil {
				return labError(err, f.prefix)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Fprint(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func newLabTrafficCmd(f *labFlags) *cobra.Command {
	var (
		opts    lab.TrafficOptions
		asJSON  bool
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "traffic SCENARIO",
		Short: "Run a traffic scenario: " + strings.Join(lab.Scenarios, ", "),
		Long: `Run a traffic scenario through the lab and print what it did.

  service          pods call the ClusterIP 10.96.0.42:8080, nodes the other node's NodePort
  dead-backend     the same with pod-c's server stopped but still in the DNAT chain
  mtu              pod-b at MTU 1500 sends 1472-byte UDP to pod-c with and without DF
  conntrack-flood  many short connections to the ClusterIP (--conntrack-max lowers the
                   global nf_conntrack_max for the run and restores it)
  dns              NOERROR, NXDOMAIN and SERVFAIL queries from pod-a to the DNS pod
  http, tls        requests from pod-a to every backend's :8080 / :8443

If a lab with --prefix is up (layerscope lab up), the scenario runs through it;
otherwise a temporary lab is built for the run and torn down afterwards.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: lab.Scenarios,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := lab.Status(ctx, f.config())
			if err != nil {
				return labError(err, f.prefix)
			}
			var l *lab.Lab
			if st.Up() {
				l, err = lab.Open(f.config())
			} else {
				slog.Info("no lab up with this prefix; building a temporary one", "prefix", f.prefix)
				l, err = lab.New(ctx, f.config())
			}
			if err != nil {
				return labError(err, f.prefix)
			}
			defer l.Close()
			r, err := l.Traffic(ctx, args[0], opts)
			if r != nil {
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					if !verbose {
						r.Requests = nil
					}
					if jerr := enc.Encode(r); jerr != nil {
						return jerr
					}
				} else {
					fmt.Fprint(cmd.OutOrStdout(), r)
					if verbose {
						for _, q := range r.Requests {
							fmt.Fprintln(cmd.OutOrStdout(), "  "+requestLine(q))
						}
					}
				}
			}
			if err != nil {
				return labError(err, f.prefix)
			}
			return l.Close()
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&opts.Count, "count", 0, "amount of traffic (per client, rounds, datagrams, connections or queries per rcode; 0: scenario default)")
	fl.DurationVar(&opts.Timeout, "timeout", 0, "timeout of one connection or request (0: 2s, 200ms for conntrack-flood)")
	fl.IntVar(&opts.Concurrency, "concurrency", 0, "parallel connection workers of conntrack-flood (0: 16)")
	fl.IntVar(&opts.ConntrackMax, "conntrack-max", 0, "conntrack-flood: lower the global nf_conntrack_max to this for the run, then restore it (0: leave it)")
	fl.BoolVar(&opts.KeepMTU, "keep-mtu", false, "mtu: leave pod-b at MTU 1500 afterwards")
	fl.IntVar(&opts.PayloadSize, "payload", 0, "mtu: UDP payload size (0: 1472)")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fl.BoolVarP(&verbose, "verbose", "v", false, "list every request")
	return cmd
}

func requestLine(q lab.Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s %s -> %s", q.Client, q.Source, q.Target)
	if q.Path != "" {
		fmt.Fprintf(&b, " %s", q.Path)
	}
	if q.Query != "" {
		fmt.Fprintf(&b, " %s", q.Query)
	}
	if q.DNATBackend != "" {
		fmt.Fprintf(&b, " dnat=%s", q.DNATBackend)
	}
	switch {
	case q.Err != "":
		fmt.Fprintf(&b, " error: %s", q.Err)
	case q.RCode != "":
		fmt.Fprintf(&b, " %s", q.RCode)
	default:
		fmt.Fprintf(&b, " %d from %s", q.Status, q.Backend)
		if q.TLSVersion != "" {
			fmt.Fprintf(&b, " (%s)", q.TLSVersion)
		}
	}
	return b.String()
}

// labError turns lab errors into messages that say what to do.
func labError(err error, prefix string) error {
	switch {
	case errors.Is(err, lab.ErrNotRoot):
		return &exitError{code: 77, err: fmt.Errorf("%w: run as root, e.g. with sudo", err)}
	case errors.Is(err, lab.ErrExists):
		return fmt.Errorf("%w; if no `layerscope lab up --prefix %s` is running, run `layerscope lab down --prefix %s`", err, prefix, prefix)
	case errors.Is(err, lab.ErrNotOwner):
		return fmt.Errorf("%w: the lab with prefix %s is served by `layerscope lab up`; stop it, or use another --prefix for a temporary lab", err, prefix)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w (not running as root)", err)
	}
	return err
}
