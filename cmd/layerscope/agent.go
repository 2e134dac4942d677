package main

import "github.com/spf13/cobra"

func newAgentCmd() *cobra.Command {
	return &cobra.Command{Use: "agent", Short: "Run the node agent"}
}

func newDemoCmd() *cobra.Command {
	return &cobra.Command{Use: "demo", Short: "Run the lab with one agent per node and a live summary"}
}
