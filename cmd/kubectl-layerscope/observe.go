package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/internal/fleet"
	"github.com/layerscope/layerscope/internal/render"
)

// direction filters events by which end is which: FROM is the client, TO
// the backend or the service.
type direction struct {
	fromPod, toPod, fromNS, toNS string
	// toService, when set, is the service whose connections to keep: to
	// its addresses, or to its endpoints.
	toService *serviceAddrs
}

// serviceAddrs are a Service's name and the addresses its connections go
// to.
type serviceAddrs struct {
	namespace, name string
	// ips are its ClusterIPs; backends its endpoints' ip:port.
	ips, backends map[string]bool
}

func (s *serviceAddrs) match(c *api.Connection) bool {
	named := func(e *api.Endpoint) bool { return e.Service == s.name && e.Namespace == s.namespace }
	return c.Service != nil && (named(c.Service) || s.ips[c.Service.IP]) || named(&c.Backend) || s.backends[c.Backend.Addr]
}

// qualify makes a pod name namespace/name (with ns when it has none).
func qualify(name, ns string) string {
	if name == "" || strings.Contains(name, "/") {
		return name
	}
	return ns + "/" + name
}

func (d *direction) match(c *api.Connection) bool {
	podIs := func(e *api.Endpoint, want string) bool {
		return e != nil && e.Pod != "" && e.Namespace+"/"+e.Pod == want
	}
	if d.toService != nil && !d.toService.match(c) {
		return false
	}
	if d.fromPod != "" && !podIs(&c.Client, d.fromPod) {
		return false
	}
	if d.toPod != "" && !podIs(&c.Backend, d.toPod) {
		return false
	}
	if d.fromNS != "" && c.Client.Namespace != d.fromNS {
		return false
	}
	if d.toNS != "" && c.Backend.Namespace != d.toNS && (c.Service == nil || c.Service.Namespace != d.toNS) {
		return false
	}
	return true
}

func newObserveCmd(cl *cluster) *cobra.Command {
	var (
		q       api.Query
		d       direction
		port    uint16
		toSvc   string
		reorder time.Duration
	)
	cmd := &cobra.Command{
		Use:   "observe (--node NAME | --all-nodes)",
		Short: "The connections the agents observed, merged across nodes in time order, or followed live",
		Long: `Show the connection events of the agents' histories (the last --since), or
with --follow stream them as the agents record them, merged across the nodes
in time order (each event held --reorder to absorb the nodes' skew), one line
per event with the node that saw it:

  time node client → service → backend protocol L3 … · L4 … · L7 … · DNAT … hops

Pod and service names without a namespace are in -n's namespace.
-o wide prints full times, -o json one JSON object per line (the schema is
agent/api/SCHEMA.md), -o yaml one YAML document per event.`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd, "table", "wide", "json", "yaml")
	color := addColorFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		paint, err := colorOf(*color, w)
		if err != nil {
			return err
		}
		ns := cl.namespace()
		d.fromPod, d.toPod = qualify(d.fromPod, ns), qualify(d.toPod, ns)
		q.Port = port
		if toSvc != "" {
			q.Service = toSvc
			if !strings.Contains(toSvc, "/") && !strings.ContainsAny(toSvc, ".:") {
				q.Service = ns + "/" + toSvc
			}
			// A connection DNATed on another node reaches the backend's
			// node as a plain connection to the backend: the service's
			// endpoints, from the API, find it there too.
			if svc, err := cl.serviceBackends(cmd.Context(), q.Service); err == nil {
				d.toService = svc
				q.Service = ""
			} else if code := exitCode(err); code == exitForbidden {
				return err
			}
		}
		// The agents filter by either end; the direction is checked here.
		switch {
		case d.fromPod != "":
			q.Pod = d.fromPod
		case d.toPod != "":
			q.Pod = d.toPod
		}
		if _, err := api.ParseQuery(q.Values()); err != nil {
			return fmt.Errorf("filter: %w", err)
		}
		agents, err := cl.selected(cmd.Context())
		defer cl.close()
		if err != nil {
			return err
		}
		print := eventPrinter(w, out.value, paint)
		emit := func(c *api.Connection) error {
			if !d.match(c) {
				return nil
			}
			return print(c)
		}
		ctx := cmd.Context()
		if !q.Follow {
			conns, err := fleet.Connections(ctx, agents, q)
			for i := range conns {
				if perr := emit(&conns[i]); perr != nil {
					return perr
				}
			}
			if err != nil && len(conns) == 0 {
				return err
			}
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", err)
			}
			return nil
		}
		err = fleet.Follow(ctx, agents, q, reorder, emit, func(err error) {
			fmt.Fprintln(cmd.ErrOrStderr(), "warning:", err)
		})
		if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
			return nil
		}
		return err
	}
	f := cmd.Flags()
	f.BoolVarP(&q.Follow, "follow", "f", false, "stream events as the agents record them (until interrupted)")
	f.DurationVar(&reorder, "reorder", 500*time.Millisecond, "with --follow: hold each event this long to merge the nodes' streams in time order")
	f.DurationVar(&q.Since, "since", 0, "only events of this last period (e.g. 5m); default: the agents' whole history")
	f.IntVar(&q.Limit, "limit", 0, "at most this many events, the newest (0: all)")
	f.BoolVar(&q.Latest, "latest", false, "only the newest event of each connection view")
	f.StringVar(&d.fromPod, "from-pod", "", "only connections opened by this pod (name or namespace/name)")
	f.StringVar(&d.toPod, "to-pod", "", "only connections to this pod (name or namespace/name)")
	f.StringVar(&d.fromNS, "from-namespace", "", "only connections opened from this namespace")
	f.StringVar(&d.toNS, "to-namespace", "", "only connections to this namespace")
	f.StringVar(&toSvc, "to-service", "", "only connections to this service (name, namespace/name, IP or IP:port)")
	f.StringVar(&q.IP, "ip", "", "only connections with an end at this IP")
	f.Uint16Var(&port, "port", 0, "only connections to this service or backend port")
	f.StringVar(&q.Protocol, "protocol", "", "only this protocol (tcp, udp, icmp)")
	f.StringSliceVar(&q.Outcomes, "outcome", nil, "only these outcomes: "+strings.Join(outcomes, ", "))
	f.StringVar(&q.Layer, "layer", "", "only connections failing (or pending) at this layer: l3, l4, l7")
	f.StringVar(&q.State, "state", "", "only final or progress events")
	f.StringVar(&q.View, "view", "", "only pre (before DNAT), post (after DNAT) or direct events")
	fixed := func(flag string, values ...string) {
		_ = cmd.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
	fixed("outcome", outcomes...)
	fixed("layer", "l3", "l4", "l7")
	fixed("state", api.StateFinal, api.StateProgress)
	fixed("view", api.ViewPre, api.ViewPost, api.ViewDirect)
	fixed("protocol", "tcp", "udp", "icmp")
	pods := func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return cl.completePods(cmd.Context(), ""), cobra.ShellCompDirectiveNoFileComp
	}
	_ = cmd.RegisterFlagCompletionFunc("from-pod", pods)
	_ = cmd.RegisterFlagCompletionFunc("to-pod", pods)
	_ = cmd.RegisterFlagCompletionFunc("to-service", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return cl.completeServices(cmd.Context(), ""), cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// outcomes are the values of --outcome.
var outcomes = []string{"syn_sent", "timeout", "refused", "established", "reset", "closed", "replied", "unreplied", "failed"}

// eventPrinter returns the writer of one event in the format.
func eventPrinter(w io.Writer, format string, color bool) func(*api.Connection) error {
	switch format {
	case "json":
		return func(c *api.Connection) error {
			b, err := json.Marshal(c)
			if err != nil {
				return err
			}
			_, err = w.Write(append(b, '\n'))
			return err
		}
	case "yaml":
		return func(c *api.Connection) error {
			b, err := yaml.Marshal(c)
			if err != nil {
				return err
			}
			_, err = w.Write(append([]byte("---\n"), b...))
			return err
		}
	}
	p := &render.Printer{W: w, Color: color, Compact: format == "table" && render.IsTerminal(w)}
	return p.Print
}
