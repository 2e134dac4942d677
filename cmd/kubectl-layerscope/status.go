package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/layerscope/layerscope/internal/fleet"
	"github.com/layerscope/layerscope/internal/render"
)

func newStatusCmd(cl *cluster) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status (--node NAME | --all-nodes)",
		Short: "One line per node, worst first: capture drops, conntrack fill and time to full, MTU mismatches, dead backends",
		Long: `With --all-nodes (or several --node), one line per node, worst first: an
agent that does not answer, not ready, dead backends and MTU mismatches,
conntrack drops or a table full within the hour, then conntrack fill and
capture drops. -o wide names the dead backends and mismatched interfaces.
With one --node, that node's whole status summary.`,
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
		agents, err := cl.selected(cmd.Context())
		defer cl.close()
		if err != nil {
			return err
		}
		lines := fleet.Statuses(cmd.Context(), agents)
		if len(cl.nodes) == 1 && (out.value == "table" || out.value == "wide") {
			n := lines[0]
			if n.Error != "" {
				return fmt.Errorf("node %s: %s", n.Node, n.Error)
			}
			render.WriteStatus(w, n.Status, &render.Printer{Color: paint})
			return nil
		}
		if out.value == "json" || out.value == "yaml" {
			if len(lines) > 1 {
				for i := range lines {
					lines[i].Status = nil // the lines; one --node keeps the node's whole status
				}
			}
			return encode(w, out.value, lines)
		}
		writeStatusTable(w, lines, out.value == "wide")
		failed := 0
		for _, n := range lines {
			if n.Error != "" {
				failed++
			}
		}
		if failed == len(lines) {
			return fmt.Errorf("no agent answered")
		}
		return nil
	}
	return cmd
}

func writeStatusTable(w io.Writer, lines []fleet.NodeStatus, wide bool) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	head := "NODE\tREADY\tCAPTURE DROPS\tCONNTRACK\tFULL IN\tMTU MISMATCHES\tDEAD BACKENDS"
	if wide {
		head += "\tCONNTRACK DROP\tDETAIL"
	}
	fmt.Fprintln(tw, head)
	for _, n := range lines {
		if n.Error != "" {
			fmt.Fprintf(tw, "%s\tunreachable\t-\t-\t-\t-\t-", n.Node)
			if wide {
				fmt.Fprintf(tw, "\t-\t%s", n.Error)
			}
			fmt.Fprintln(tw)
			continue
		}
		ready := "yes"
		if !n.Ready {
			ready = "NO"
		}
		ct, eta := "-", "-"
		if n.Status != nil && n.Status.Conntrack != nil {
			ct = fmt.Sprintf("%.1f%%", 100*n.ConntrackFill)
			eta = "never"
			if n.ConntrackETA != nil {
				eta = (time.Duration(*n.ConntrackETA) * time.Second).String()
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d (%.2f%%)\t%s\t%s\t%d\t%d", n.Node, ready, n.Drops, 100*n.DropRatio, ct, eta, len(n.MTUMismatches), len(n.DeadBackends))
		if wide {
			fmt.Fprintf(tw, "\t%d\t%s", n.ConntrackDrop, strings.Join(append(append([]string{}, n.MTUMismatches...), n.DeadBackends...), "; "))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
