package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/layerscope/layerscope/agent"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/lab"
)

type demoOptions struct {
	prefix       string
	wiring       string
	basePort     int
	interval     time.Duration
	rounds       int
	scenarios    []string
	conntrackMax int
	pause        time.Duration
}

func newDemoCmd() *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the lab with one agent per node and print a live per-layer summary",
		Long: `Build the lab (two nodes, three service pods, a DNS pod, VXLAN, kube-proxy
DNAT), start one agent per node observing that node's network namespace, run
the traffic scenarios in a loop and print each agent's per-layer summary
every few seconds. The summary is read from the agents' own /metrics, served
on 127.0.0.1 (node-1 on --base-port, node-2 on the next port). Ctrl-C stops the
agents and removes the lab.

The conntrack-flood scenario leaves the global nf_conntrack_max alone unless
--conntrack-max is set (it is restored afterwards).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.prefix, "prefix", lab.DefaultPrefix, "namespace name prefix of the lab")
	f.StringVar(&o.wiring, "wiring", string(lab.WiringBridge), "how the lab connects pods to their node: bridge or routed (see lab up --help)")
	f.IntVar(&o.basePort, "base-port", 9431, "port of node-1's agent on 127.0.0.1; node-2 uses the next one")
	f.DurationVar(&o.interval, "interval", 5*time.Second, "how often to print the summary")
	f.IntVar(&o.rounds, "rounds", 0, "rounds of scenarios to run before stopping (0: until Ctrl-C)")
	f.StringSliceVar(&o.scenarios, "scenarios", []string{"service", "dns", "http", "tls", "mtu", "dead-backend", "conntrack-flood"}, "scenarios to run each round")
	f.DurationVar(&o.pause, "pause", time.Second, "pause between rounds of scenarios")
	f.IntVar(&o.conntrackMax, "conntrack-max", 0, "lower the global nf_conntrack_max to this during conntrack-flood (0: leave it alone)")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) error {
	if o.basePort <= 0 || o.basePort > 65534 {
		return fmt.Errorf("--base-port %d: want 1-65534", o.basePort)
	}
	if o.interval <= 0 {
		return fmt.Errorf("--interval %s: must be positive", o.interval)
	}
	known := map[string]bool{}
	for _, s := range lab.Scenarios {
		known[s] = true
	}
	for _, s := range o.scenarios {
		if !known[s] {
			return fmt.Errorf("--scenarios: unknown scenario %q (have %s)", s, strings.Join(lab.Scenarios, ", "))
		}
	}
	fmt.Fprintf(out, "building the lab (prefix %q)…\n", o.prefix)
	l, err := lab.New(ctx, &lab.Config{Prefix: o.prefix, Wiring: lab.Wiring(o.wiring)})
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer func() {
		fmt.Fprintln(out, "removing the lab…")
		if err := l.Close(); err != nil {
			slog.Error("lab teardown", "err", err)
		}
	}()

	// The agents name the lab's Service, namespaces and workloads from its
	// metadata file.
	metaDir, err := os.MkdirTemp("", "layerscope-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(metaDir)
	metaFile := filepath.Join(metaDir, "metadata.yaml")
	if err := l.WriteMetadata(metaFile); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	type node struct{ name, url string }
	var nodes []node
	for i, n := range l.Nodes() {
		addr := "127.0.0.1:" + strconv.Itoa(o.basePort+i)
		a, err := agent.New(agent.Config{
			NetNS: l.NetNS(n.Name), MetricsAddr: addr, Version: version, Revision: revision,
			Logger: slog.Default().With("node", n.Name),
			Node:   n.Name, Kube: agent.KubeConfig{Mode: kube.ModeFile, File: metaFile},
		})
		if err != nil {
			cancel()
			_ = g.Wait()
			return fmt.Errorf("agent for %s: %w", n.Name, err)
		}
		g.Go(func() error { return a.Run(gctx) })
		nodes = append(nodes, node{n.Name, "http://" + addr + "/metrics"})
		fmt.Fprintf(out, "agent for %s (netns %s) serves http://%s/metrics\n", n.Name, l.NetNS(n.Name), addr)
	}

	var mu sync.Mutex // guards out between the printer and the scenario log
	var last []*lab.Report
	print := func() {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "\n── %s ──\n", time.Now().Format("15:04:05"))
		for _, r := range last {
			fmt.Fprintf(out, "  scenario %-15s %s\n", r.Scenario, reportLine(r))
		}
		for _, n := range nodes {
			fmt.Fprintf(out, "%s:\n", n.name)
			f, err := scrape(gctx, n.url)
			if err != nil {
				fmt.Fprintf(out, "  scrape failed: %v\n", err)
				continue
			}
			renderSummary(out, f)
		}
	}
	g.Go(func() error {
		t := time.NewTicker(o.interval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				print()
			}
		}
	})
	g.Go(func() error {
		defer func() {
			if o.rounds > 0 {
				// Agents publish their counters every 250 ms: wait for
				// the last packets to show before the final summary.
				select {
				case <-gctx.Done():
				case <-time.After(time.Second):
				}
				print()
				cancel()
			}
		}()
		for round := 1; o.rounds == 0 || round <= o.rounds; round++ {
			for _, s := range o.scenarios {
				if gctx.Err() != nil {
					return nil
				}
				r, err := l.Traffic(gctx, s, lab.TrafficOptions{ConntrackMax: o.conntrackMax})
				if err != nil {
					if gctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("scenario %s: %w", s, err)
				}
				mu.Lock()
				last = replaceReport(last, r)
				mu.Unlock()
			}
			if o.rounds == 0 || round < o.rounds {
				select {
				case <-gctx.Done():
					return nil
				case <-time.After(o.pause):
				}
			}
		}
		return nil
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func replaceReport(rs []*lab.Report, r *lab.Report) []*lab.Report {
	for i := range rs {
		if rs[i].Scenario == r.Scenario {
			rs[i] = r
			return rs
		}
	}
	return append(rs, r)
}

// reportLine is the scenario's own ground truth, printed beside what the
// agents measured.
func reportLine(r *lab.Report) string {
	s := fmt.Sprintf("attempted %d ok %d failed %d", r.Attempted, r.Succeeded, r.Failed)
	if len(r.Backends) > 0 {
		s += fmt.Sprintf(" backends %v", r.Backends)
	}
	if len(r.RCodes) > 0 {
		s += fmt.Sprintf(" rcodes %v", r.RCodes)
	}
	if m := r.MTU; m != nil {
		s += fmt.Sprintf(" DF sent %d EMSGSIZE %d, no-DF sent %d", m.DFSent, m.DFEMSGSIZE, m.NoDFSent)
	}
	return s
}

func scrape(ctx context.Context, url string) (families, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseExposition(resp.Body)
}
