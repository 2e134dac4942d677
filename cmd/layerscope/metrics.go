package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/layerscope/layerscope/exporters/metricdef"
)

func newMetricsCmd() *cobra.Command {
	var readme string
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Print the reference of every metric layerscope exports",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if readme == "" {
				fmt.Fprint(cmd.OutOrStdout(), metricdef.Markdown())
				return nil
			}
			b, err := os.ReadFile(readme)
			if err != nil {
				return fmt.Errorf("--markdown-readme: %w", err)
			}
			out, err := metricdef.ReplaceSection(string(b))
			if err != nil {
				return fmt.Errorf("--markdown-readme %s: %w", readme, err)
			}
			return os.WriteFile(readme, []byte(out), 0o644)
		},
	}
	cmd.Flags().StringVar(&readme, "markdown-readme", "", "rewrite the generated metric section of this Markdown file in place")
	return cmd
}
