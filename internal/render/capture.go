package render

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/layerscope/layerscope/agent/api"
)

// SaveCapture writes a capture stream to outFile (- for stdout) and its
// progress and result to stderr; where names the capture's node, when
// known. Interrupting it (ctx done) keeps what was written.
func SaveCapture(ctx context.Context, st *api.CaptureStream, outFile, where string, stdout, stderr io.Writer) error {
	defer st.Body.Close()
	if where != "" {
		where += ": "
	}
	fmt.Fprintf(stderr, "capturing on %s%s (%s)\n", where, st.Interfaces, st.Limits)
	w := stdout
	var f *os.File
	if outFile != "-" {
		var err error
		if f, err = os.Create(outFile); err != nil {
			return fmt.Errorf("-w: %w", err)
		}
		defer f.Close()
		w = f
	}
	n, err := io.Copy(w, st.Body)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("capture stream after %d bytes: %w", n, err)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("-w: %w", err)
		}
	}
	res := st.Result()
	if res.Stop == "" {
		fmt.Fprintf(stderr, "%d bytes written; the capture was interrupted\n", n)
		return nil
	}
	fmt.Fprintf(stderr, "%s packets, %s bytes written to %s; %s dropped; stopped by %s\n",
		res.Packets, res.Bytes, outFile, res.Dropped, res.Stop)
	return nil
}
