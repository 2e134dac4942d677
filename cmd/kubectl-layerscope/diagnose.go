package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/diagnose"
	"github.com/layerscope/layerscope/internal/fleet"
	"github.com/layerscope/layerscope/internal/render"
)

// target is FROM or TO as the API resolved it.
type target struct {
	arg string
	// ep is set when the API resolved it (pod/…, svc/…, a pod's IP).
	ep *diagnose.Endpoint
	// nodes are the nodes whose agents see its traffic: a pod's node, a
	// service's backends' nodes.
	nodes []string
	why   string
}

// resolveTarget reads pod/NAME, svc/NAME (service/, pods/ alike; NAME may
// be namespace/name) from the API; an address is looked up among the pods'
// IPs; anything else (namespace/name of the agents' events, a DNS name) is
// left to the agents' evidence.
func (cl *cluster) resolveTarget(ctx context.Context, arg string) (*target, error) {
	t := &target{arg: arg}
	kind, name, ok := strings.Cut(arg, "/")
	ns := cl.namespace()
	if ok {
		if a, b, ok := strings.Cut(name, "/"); ok {
			ns, name = a, b
		}
	}
	// The verdict names a pod or service namespace/name, as the agents'
	// events and the node-level command do.
	qualified := ns + "/" + name
	switch {
	case ok && (kind == "pod" || kind == "pods" || kind == "po"):
		p, err := cl.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsForbidden(err) {
			return nil, forbidden("get", "pods", ns, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", arg, err)
		}
		ep := diagnose.Endpoint{Arg: qualified}
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				ep.Addrs = append(ep.Addrs, a.Unmap())
			}
		}
		if len(ep.Addrs) == 0 {
			return nil, fmt.Errorf("%s has no IP yet (phase %s)", arg, p.Status.Phase)
		}
		t.ep = &ep
		if p.Spec.NodeName != "" {
			t.nodes = []string{p.Spec.NodeName}
		}
		t.why = arg + "'s node"
	case ok && (kind == "svc" || kind == "service" || kind == "services"):
		s, err := cl.kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsForbidden(err) {
			return nil, forbidden("get", "services", ns, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", arg, err)
		}
		ep := diagnose.Endpoint{Arg: qualified, Service: true}
		for _, ip := range s.Spec.ClusterIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				ep.Addrs = append(ep.Addrs, a.Unmap())
			}
		}
		sls, err := cl.kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
		if apierrors.IsForbidden(err) {
			return nil, forbidden("list", "endpointslices.discovery.k8s.io", ns, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%s's EndpointSlices: %w", arg, err)
		}
		for _, sl := range sls.Items {
			for _, e := range sl.Endpoints {
				if e.NodeName != nil && !slices.Contains(t.nodes, *e.NodeName) {
					t.nodes = append(t.nodes, *e.NodeName)
				}
				if len(ep.Addrs) == 0 { // headless: the backends are the addresses
					for _, ip := range e.Addresses {
						if a, err := netip.ParseAddr(ip); err == nil {
							ep.Addrs = append(ep.Addrs, a.Unmap())
						}
					}
				}
			}
		}
		t.ep = &ep
		t.why = arg + "'s backends' nodes"
	case ok && (kind == "ns" || kind == "namespace") && !strings.Contains(name, "/"):
		return nil, fmt.Errorf("%s: a namespace is not an end of a connection; give namespace/name of a pod or service (pod/NS/NAME, svc/NS/NAME)", arg)
	default:
		e := diagnose.ParseEndpoint(arg)
		if len(e.Addrs) == 1 {
			pods, err := cl.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "status.podIP=" + e.Addrs[0].String()})
			if err == nil {
				for _, p := range pods.Items {
					if p.Spec.NodeName != "" && !p.Spec.HostNetwork {
						t.nodes = append(t.nodes, p.Spec.NodeName)
						t.why = arg + "'s pod's node"
					}
				}
			}
		}
	}
	return t, nil
}

func newDiagnoseCmd(cl *cluster) *cobra.Command {
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "diagnose FROM TO",
		Short: "Say which layer breaks the traffic from FROM to TO, asking exactly the agents involved",
		Long: `Walk the layers from FROM to TO over the agents' observations of the last
--since and name the first broken one, with the evidence and the next check
to run by hand (the same verdicts as "layerscope diagnose" on a node).

FROM and TO are pod/NAME, svc/NAME (NAME or NAMESPACE/NAME; without a
namespace, -n's), an IP or IP:port, a namespace/name the agents' events
carry, or (TO) a DNS name. The agents asked are those of the nodes involved,
found from the API: FROM's pod's node and TO's pod's node or the nodes of
the service's endpoints. When an end names no node (a DNS name, an address
outside the pods), every node's agent is asked; --node or --all-nodes
chooses the agents instead.

Exit codes: 0 no fault observed, 1 error of the command, 2 no traffic seen,
3 DNS NXDOMAIN, 4 DNS SERVFAIL, 5 conntrack, 6 service not DNATed (no
endpoints), 7 L3 MTU, 8 L4 backend, 9 path, 10 L7, 11 forbidden by the API
server, 12 no agent on a node involved.`,
		Args: cobra.ExactArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) >= 2 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			switch {
			case strings.HasPrefix(toComplete, "pod/"):
				return cl.completePods(cmd.Context(), "pod/"), cobra.ShellCompDirectiveNoFileComp
			case strings.HasPrefix(toComplete, "svc/"):
				return cl.completeServices(cmd.Context(), "svc/"), cobra.ShellCompDirectiveNoFileComp
			}
			return []string{"pod/", "svc/"}, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
		},
	}
	out := addOutputFlag(cmd, "text", "json", "yaml")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(); err != nil {
			return err
		}
		if since <= 0 {
			return fmt.Errorf("--since %v: want a positive duration", since)
		}
		ctx := cmd.Context()
		pods, err := cl.agentPods(ctx)
		if err != nil {
			return err
		}
		from, err := cl.resolveTarget(ctx, args[0])
		if err != nil {
			return err
		}
		to, err := cl.resolveTarget(ctx, args[1])
		if err != nil {
			return err
		}
		var nodes, why []string
		if cl.allNodes || len(cl.nodes) > 0 {
			if nodes, err = cl.selectedNodes(pods); err != nil {
				return err
			}
		} else if len(from.nodes) == 0 || len(to.nodes) == 0 && to.ep == nil {
			cl.allNodes = true
			if nodes, err = cl.selectedNodes(pods); err != nil {
				return err
			}
			why = append(why, "every node: an end names no node")
		} else {
			for _, t := range []*target{from, to} {
				for _, n := range t.nodes {
					if !slices.Contains(nodes, n) {
						nodes = append(nodes, n)
					}
				}
				if len(t.nodes) > 0 {
					why = append(why, t.why+" "+strings.Join(t.nodes, ","))
				}
			}
		}
		agents, err := cl.agents(ctx, pods, nodes)
		defer cl.close()
		if err != nil {
			return err
		}
		if len(why) > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "asking the agents of %s (%s)\n", strings.Join(nodes, ", "), strings.Join(why, "; "))
		}
		clients := make([]*api.Client, 0, len(agents))
		for _, a := range agents {
			clients = append(clients, a.Client)
		}
		v, err := fleet.DiagnoseResolved(ctx, clients, since, func(ev []diagnose.NodeEvidence) (diagnose.Endpoint, diagnose.Endpoint) {
			pick := func(t *target) diagnose.Endpoint {
				if t.ep != nil {
					return *t.ep
				}
				return fleet.ResolveEndpoint(t.arg, ev)
			}
			return pick(from), pick(to)
		})
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if out.value == "text" {
			render.Verdict(w, &v)
		} else if err := encode(w, out.value, v); err != nil {
			return err
		}
		if v.ExitCode != 0 {
			return &codeError{code: v.ExitCode, err: fmt.Errorf("diagnose: %s (exit %d)", v.Class, v.ExitCode)}
		}
		return nil
	}
	cmd.Flags().DurationVar(&since, "since", 5*time.Minute, "look at the observations of this last period")
	return cmd
}

// serviceBackends reads the Service nsName (namespace/name) and its
// EndpointSlices from the API: its ClusterIPs and its endpoints' ip:port.
func (cl *cluster) serviceBackends(ctx context.Context, nsName string) (*serviceAddrs, error) {
	ns, name, ok := strings.Cut(nsName, "/")
	if !ok {
		return nil, fmt.Errorf("%q is not namespace/name", nsName)
	}
	if err := cl.init(); err != nil {
		return nil, err
	}
	s, err := cl.kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsForbidden(err) {
		return nil, forbidden("get", "services", ns, err)
	}
	if err != nil {
		return nil, err
	}
	out := &serviceAddrs{namespace: ns, name: name, ips: map[string]bool{}, backends: map[string]bool{}}
	for _, ip := range s.Spec.ClusterIPs {
		out.ips[ip] = true
	}
	sls, err := cl.kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
	if apierrors.IsForbidden(err) {
		return nil, forbidden("list", "endpointslices.discovery.k8s.io", ns, err)
	}
	if err != nil {
		return nil, err
	}
	for _, sl := range sls.Items {
		for _, p := range sl.Ports {
			if p.Port == nil {
				continue
			}
			for _, e := range sl.Endpoints {
				for _, a := range e.Addresses {
					if ip, err := netip.ParseAddr(a); err == nil {
						out.backends[netip.AddrPortFrom(ip, uint16(*p.Port)).String()] = true
					}
				}
			}
		}
	}
	return out, nil
}
