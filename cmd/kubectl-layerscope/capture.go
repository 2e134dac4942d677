package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/internal/render"
)

func newCaptureCmd(cl *cluster) *cobra.Command {
	var (
		req     api.CaptureRequest
		ifaces  string
		outFile string
	)
	cmd := &cobra.Command{
		Use:   "capture --node NAME -w FILE",
		Short: "Ask a node's agent for a bounded, filtered pcap",
		Long: `Ask the agent of --node for a packet capture of its node's interfaces and
write it as a pcap file that tcpdump, tshark and Wireshark open (-w - for
standard output). --filter is a tcpdump-style subset the agent compiles to
a kernel socket filter; the agent's caps on duration, packets, bytes and
snap length win. The agent serves captures only to clients it
authenticated (the chart's captureAPI): with captureAPI.kubernetesAuth,
your kubeconfig's bearer token, which reaches the agent through a
port-forward (create on pods/portforward in the agents' namespace) and
which the agent checks with the API server (create on
captures.layerscope.io, the node's name, in the agents' namespace: the
chart's operator Role); with basic auth, --agent-user and
--agent-password-file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if outFile == "" {
				return errors.New("-w is required (a file, or - for standard output)")
			}
			if len(cl.nodes) != 1 || cl.allNodes {
				return errors.New("capture asks one agent: --node NAME")
			}
			if req.Duration < 0 || req.MaxPackets < 0 || req.MaxBytes < 0 || req.SnapLen < 0 {
				return errors.New("--duration, --max-packets, --max-bytes and --snaplen must not be negative")
			}
			if ifaces != "" {
				req.Interfaces = strings.Split(ifaces, ",")
			}
			pods, err := cl.agentPods(cmd.Context())
			if err != nil {
				return err
			}
			agent, err := cl.captureAgent(cmd.Context(), pods, cl.nodes[0])
			defer cl.close()
			if err != nil {
				return err
			}
			st, err := agent.Client.Capture(cmd.Context(), req)
			if err != nil {
				return captureRefused(err)
			}
			return render.SaveCapture(cmd.Context(), st, outFile, agent.Node, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Filter, "filter", "", "tcpdump-style filter expression (empty: every packet)")
	f.DurationVar(&req.Duration, "duration", 30*time.Second, "how long to capture (the agent's cap wins)")
	f.Int64Var(&req.MaxPackets, "max-packets", 0, "stop after this many packets (0: the agent's cap)")
	f.Int64Var(&req.MaxBytes, "max-bytes", 0, "stop before the file exceeds this many bytes (0: the agent's cap)")
	f.IntVar(&req.SnapLen, "snaplen", 0, "bytes kept of each packet (0: the agent's cap)")
	f.StringVar(&ifaces, "interface", "", "comma-separated interface name globs (default: pod, overlay and uplink interfaces)")
	f.StringVarP(&outFile, "write", "w", "", "pcap file to write, - for standard output")
	return cmd
}

// captureRefused turns the agent's refusal into the client's: 403 is
// forbidden (exit 20, the agent's message names the permission), 401 says
// which credentials the agent takes.
func captureRefused(err error) error {
	var se *api.StatusError
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case http.StatusForbidden:
		return &codeError{code: exitForbidden, err: fmt.Errorf("the agent refused the capture: %s", se.Message)}
	case http.StatusUnauthorized:
		return fmt.Errorf("the agent refused the capture (401 unauthorized: %s); it takes your kubeconfig's bearer token (the chart's captureAPI.kubernetesAuth; a kubeconfig user with a client certificate has none: use --token) or its basic-auth users (--agent-user, --agent-password-file)", se.Message)
	}
	return err
}
