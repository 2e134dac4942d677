package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/internal/render"
)

func newStatusCmd() *cobra.Command {
	var (
		cc       api.ClientConfig
		output   string
		colorArg string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "One-screen summary of a node: capture health, conntrack, MTU, failing services, DNS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: want text or json", output)
			}
			color, err := render.ColorMode(colorArg, out)
			if err != nil {
				return err
			}
			c, err := api.NewClient(cc)
			if err != nil {
				return err
			}
			s, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			render.WriteStatus(out, s, &render.Printer{Color: color})
			return nil
		},
	}
	f := cmd.Flags()
	addAgentFlags(f, &cc)
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	f.StringVar(&colorArg, "color", "auto", "colour: auto (when stdout is a terminal), always, never")
	return cmd
}
