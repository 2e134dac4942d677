package render

import (
	"fmt"
	"io"

	"github.com/layerscope/layerscope/agent/diagnose"
)

// Verdict prints the verdict for a person.
func Verdict(w io.Writer, v *diagnose.Verdict) {
	layer := v.Layer
	if layer == "" {
		layer = "-"
	}
	fmt.Fprintf(w, "verdict:  %s [%s]\n", v.Class, layer)
	fmt.Fprintf(w, "          %s\n", v.Summary)
	if len(v.Evidence) > 0 {
		fmt.Fprintln(w, "evidence:")
		for _, e := range v.Evidence {
			fmt.Fprintf(w, "  - %s\n", e)
		}
	}
	fmt.Fprintf(w, "next:     %s\n", v.Next)
}
