package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/ondemand"
	"github.com/layerscope/layerscope/internal/render"
)

func newCaptureCmd() *cobra.Command {
	var (
		cc         api.ClientConfig
		filter     string
		duration   time.Duration
		maxPackets int64
		maxBytes   int64
		snapLen    int
		ifaces     string
		outFile    string
	)
	cmd := &cobra.Command{
		Use:   "capture -w FILE",
		Short: "Ask the running agent for a bounded, filtered pcap",
		Long: `Ask the agent for a packet capture of its node's interfaces and write it as a
pcap file (link type Ethernet, nanosecond timestamps) that tcpdump, tshark and
Wireshark open. The agent compiles --filter (a tcpdump-style subset:
[src|dst] host ADDR, [src|dst] net CIDR, [tcp|udp|sctp] [src|dst] port N, ip,
ip6, arp, tcp, udp, sctp, icmp, icmp6, and/or/not, parentheses) to a kernel
socket filter, and enforces its own caps on duration, packets, bytes and
snap length (asking for more gets the cap) and on concurrent captures. By
default it captures the pod, overlay and uplink interfaces; a packet that
crosses several of them is in the file once per interface.

-w - writes the pcap to standard output (e.g. | tshark -r -).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if outFile == "" {
				return errors.New("-w is required (a file, or - for standard output)")
			}
			if duration < 0 || maxPackets < 0 || maxBytes < 0 || snapLen < 0 {
				return errors.New("--duration, --max-packets, --max-bytes and --snaplen must not be negative")
			}
			if _, err := ondemand.CompileFilter(filter); err != nil {
				return fmt.Errorf("--filter %q: %w", filter, err)
			}
			req := api.CaptureRequest{Filter: filter, Duration: duration, MaxPackets: maxPackets, MaxBytes: maxBytes, SnapLen: snapLen}
			if ifaces != "" {
				req.Interfaces = strings.Split(ifaces, ",")
			}
			c, err := api.NewClient(cc)
			if err != nil {
				return err
			}
			st, err := c.Capture(cmd.Context(), req)
			if err != nil {
				return err
			}
			return render.SaveCapture(cmd.Context(), st, outFile, "", cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addAgentFlags(f, &cc)
	f.StringVar(&filter, "filter", "", "tcpdump-style filter expression (empty: every packet)")
	f.DurationVar(&duration, "duration", 30*time.Second, "how long to capture (the agent's cap wins)")
	f.Int64Var(&maxPackets, "max-packets", 0, "stop after this many packets (0: the agent's cap)")
	f.Int64Var(&maxBytes, "max-bytes", 0, "stop before the file exceeds this many bytes (0: the agent's cap)")
	f.IntVar(&snapLen, "snaplen", 0, "bytes kept of each packet (0: the agent's cap)")
	f.StringVar(&ifaces, "interface", "", "comma-separated interface name globs (default: pod, overlay and uplink interfaces)")
	f.StringVarP(&outFile, "write", "w", "", "pcap file to write, - for standard output")
	return cmd
}
