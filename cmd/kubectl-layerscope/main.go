// Command kubectl-layerscope is the operator's client of the layerscope
// agents of a Kubernetes cluster, also run as "kubectl layerscope". It finds
// the agents as the pods of their DaemonSet and reaches them through the API
// server's pod proxy, so the cluster's RBAC decides who may observe or
// capture. It links only the agent's API client, the verdict engine and the
// rendering, never the agent: it builds for every OS kubectl runs on.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// Build information, set with -ldflags "-X main.version=...".
var (
	version  = "dev"
	revision = "unknown"
)

// Exit codes besides diagnose's verdict codes (2 to 10).
const (
	exitError = 1
	// exitForbidden is the API server's refusal (RBAC).
	exitForbidden = 11
	// exitNoAgent is no agent on the node asked for (or none at all).
	exitNoAgent = 12
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kubectl-layerscope:", err)
		os.Exit(exitCode(err))
	}
}

// codeError carries a specific exit code out of a command.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if ce, ok := errors.AsType[*codeError](err); ok {
		return ce.code
	}
	return exitError
}

const rootLong = `Observe, diagnose and capture with the layerscope agents of a cluster.

The agents are found as the pods of their DaemonSet (--agent-namespace,
--agent-selector) and asked through the API server's pod proxy
(/api/v1/namespaces/NS/pods/POD:PORT/proxy), with your kubeconfig's
credentials: you need get on pods/proxy in the agents' namespace (the
chart's opt-in operator ClusterRole, rbac.operator.create=true). Where the
proxy is refused but port-forward is allowed, the agent is reached through
a port-forward instead.

Exit codes: 0 success (diagnose: no fault observed), 1 error, 2-10 the
diagnose verdicts (see diagnose --help), 11 forbidden by the API server
(the message names the missing permission), 12 no agent on the node(s)
asked for.

NO_COLOR in the environment turns colours off (--color auto).`

func newRootCmd() *cobra.Command {
	kf := genericclioptions.NewConfigFlags(true)
	cl := &cluster{flags: kf}
	root := &cobra.Command{
		Use:           "kubectl-layerscope",
		Short:         "Ask the layerscope agents of a Kubernetes cluster",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl layerscope",
		},
	}
	pf := root.PersistentFlags()
	kf.AddFlags(pf)
	cl.addFlags(pf)
	cl.registerCompletions(root)
	root.AddCommand(
		newStatusCmd(cl),
		newObserveCmd(cl),
		newDiagnoseCmd(cl),
		newCaptureCmd(cl),
		newVersionCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "kubectl-layerscope %s (revision %s)\n", version, revision)
		},
	}
}
