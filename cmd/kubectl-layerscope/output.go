package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/layerscope/layerscope/internal/render"
)

// outputFlag is -o with the formats a command takes; the first is the
// default.
type outputFlag struct {
	value   string
	formats []string
}

func addOutputFlag(cmd *cobra.Command, formats ...string) *outputFlag {
	o := &outputFlag{formats: formats}
	cmd.Flags().StringVarP(&o.value, "output", "o", formats[0], "output format: "+joinOr(formats))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	return o
}

func (o *outputFlag) check() error {
	if !slices.Contains(o.formats, o.value) {
		return fmt.Errorf("-o %q: want %s", o.value, joinOr(o.formats))
	}
	return nil
}

func joinOr(s []string) string {
	switch len(s) {
	case 1:
		return s[0]
	case 2:
		return s[0] + " or " + s[1]
	}
	out := ""
	for i, x := range s[:len(s)-1] {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out + " or " + s[len(s)-1]
}

// encode writes v as indented JSON or as YAML.
func encode(w io.Writer, format string, v any) error {
	if format == "yaml" {
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// colorFlag is --color, resolved against the output and NO_COLOR.
func addColorFlag(cmd *cobra.Command) *string {
	s := cmd.Flags().String("color", "auto", "colour: auto (a terminal, unless NO_COLOR is set), always, never")
	_ = cmd.RegisterFlagCompletionFunc("color", cobra.FixedCompletions([]string{"auto", "always", "never"}, cobra.ShellCompDirectiveNoFileComp))
	return s
}

func colorOf(mode string, w io.Writer) (bool, error) { return render.ColorMode(mode, w) }
