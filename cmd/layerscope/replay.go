package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/layerscope/layerscope/agent/flowtable"
	agentmetrics "github.com/layerscope/layerscope/agent/metrics"
	"github.com/layerscope/layerscope/agent/pipeline"
	"github.com/layerscope/layerscope/decoders/parser"
	"github.com/layerscope/layerscope/exporters/prom"
)

func newReplayCmd() *cobra.Command {
	var (
		metrics, allowPartial   bool
		vxlan, geneve, dnsPorts []uint
	)
	cmd := &cobra.Command{
		Use:   "replay FILE.pcap|FILE.pcapng...",
		Short: "Run the agent's pipeline over capture files and print the per-layer summary",
		Long: `Run the same decode and flow-table pipeline as live capture over capture
files (pcap or pcapng, any link type the decoders know) and print the per-layer
summary, or with --metrics the Prometheus exposition of the agent's metrics.

A file that ends in a malformed or truncated record (a record header without
all its data) is replayed up to that record, reported, and makes the exit
status 1 once everything is printed, unless --allow-partial is given.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			table, err := flowtable.New(&flowtable.Config{Logger: slog.Default()})
			if err != nil {
				return err
			}
			pcfg, err := parserConfig(vxlan, geneve, dnsPorts)
			if err != nil {
				return err
			}
			w, err := pipeline.NewWorker(pcfg, table)
			if err != nil {
				return fmt.Errorf("--vxlan-port, --geneve-port or --dns-port: %w", err)
			}
			set := pipeline.NewSet()
			set.Add(w)
			start := time.Now()
			var frames uint64
			var partial []string
			for _, path := range args {
				fs, err := pipeline.OpenFile(path)
				if err != nil {
					return err
				}
				st, err := pipeline.Replay(cmd.Context(), fs, w)
				fs.Close()
				if err != nil {
					return err
				}
				frames += st.Frames
				if st.LastErr != nil {
					partial = append(partial, path)
					slog.Warn("capture file ends in a malformed or truncated record; replayed up to it", "file", path, "frames", st.Frames, "err", st.LastErr)
				}
			}
			table.Flush()
			col, err := prom.NewCollector(slog.Default(),
				prom.BuildInfo(version, revision), agentmetrics.Pipeline(set), agentmetrics.FlowTable(table))
			if err != nil {
				return err
			}
			reg, err := prom.NewRegistry(col)
			if err != nil {
				return err
			}
			mfs, err := reg.Gather()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if metrics {
				enc := expfmt.NewEncoder(out, expfmt.NewFormat(expfmt.TypeTextPlain))
				for _, mf := range mfs {
					if err := enc.Encode(mf); err != nil {
						return err
					}
				}
			} else {
				fmt.Fprintf(out, "%d frames from %d file(s) in %s\n", frames, len(args), time.Since(start).Round(time.Millisecond))
				if len(partial) > 0 {
					fmt.Fprintf(out, "%d file(s) end in a malformed or truncated record, replayed up to it: %s\n", len(partial), strings.Join(partial, ", "))
				}
				renderSummary(out, indexFamilies(mfs))
			}
			if len(partial) > 0 && !allowPartial {
				return fmt.Errorf("%d of %d file(s) end in a malformed or truncated record (first: %s); --allow-partial accepts this", len(partial), len(args), partial[0])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&metrics, "metrics", false, "print the Prometheus exposition text instead of the summary")
	f.BoolVar(&allowPartial, "allow-partial", false, "exit 0 even when a file ends in a malformed or truncated record")
	addDecoderFlags(f, &vxlan, &geneve, &dnsPorts)
	return cmd
}

func addDecoderFlags(f *pflag.FlagSet, vxlan, geneve, dnsPorts *[]uint) {
	f.UintSliceVar(vxlan, "vxlan-port", nil, "UDP ports decoded as VXLAN (default 4789)")
	f.UintSliceVar(geneve, "geneve-port", nil, "UDP ports decoded as Geneve (default 6081)")
	f.UintSliceVar(dnsPorts, "dns-port", nil, "ports decoded as DNS (default 53,5353)")
}

// parserConfig checks the decoder port flags and builds the parser config.
func parserConfig(vxlan, geneve, dnsPorts []uint) (parser.Config, error) {
	var cfg parser.Config
	for _, fl := range []struct {
		name string
		in   []uint
		out  *[]uint16
	}{{"--vxlan-port", vxlan, &cfg.VXLANPorts}, {"--geneve-port", geneve, &cfg.GenevePorts}, {"--dns-port", dnsPorts, &cfg.DNSPorts}} {
		for _, p := range fl.in {
			if p == 0 || p > 65535 {
				return cfg, fmt.Errorf("%s: %d is not a port (1-65535)", fl.name, p)
			}
			*fl.out = append(*fl.out, uint16(p))
		}
	}
	return cfg, nil
}
