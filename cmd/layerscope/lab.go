package main

import "github.com/spf13/cobra"

// newLabCmd is replaced by the lab subcommands.
func newLabCmd() *cobra.Command {
	return &cobra.Command{Use: "lab", Short: "Build and drive the network-namespace lab"}
}
