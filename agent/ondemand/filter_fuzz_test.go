package ondemand

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// FuzzFilter compiles arbitrary expressions: no panic, errors that wrap
// ErrFilter and stay short, programs within MaxFilterInsns that run on
// frames without a VM error. With LAYERSCOPE_FUZZ_TCPDUMP=1 (and tcpdump
// installed), every expression is compiled by tcpdump as well, and both
// must agree as in TestFilterDifferential (several milliseconds an
// input: for long runs by hand, not for make fuzz).
func FuzzFilter(f *testing.F) {
	for _, e := range oracleExprs {
		f.Add(e)
	}
	for _, e := range []string{
		"tcp src", "udp dst", "not tcp src", "tcp and udp", "udp or tcp and port 80",
		"src or dst host 10.0.0.1", "src && dst port 0x50", "!!!((tcp))", "port 0120", "TCP",
		strings.Repeat("(", 100), strings.Repeat("host 10.0.0.1 or ", 30) + "arp",
	} {
		f.Add(e)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		f.Add(randExpr(r, 3))
	}
	var frames [][]byte
	for range 64 {
		frames = append(frames, randFrame(r).bytes())
	}
	var tcpdump string
	if os.Getenv("LAYERSCOPE_FUZZ_TCPDUMP") == "1" {
		tcpdump, _ = exec.LookPath("tcpdump")
	}
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := CompileFilter(expr)
		if err != nil {
			if !errors.Is(err, ErrFilter) {
				t.Fatalf("%v does not wrap ErrFilter", err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error of %d bytes: %.400s", len(err.Error()), err)
			}
		} else {
			if len(flt.Program) > MaxFilterInsns {
				t.Fatalf("%d instructions", len(flt.Program))
			}
			if (flt.Program == nil) != (strings.TrimSpace(expr) == "") {
				t.Fatalf("%d instructions for %q", len(flt.Program), expr)
			}
		}
		if flt.Program == nil {
			return
		}
		ours := vm(t, flt.Program)
		for _, fr := range frames {
			if _, err := ours.Run(fr); err != nil {
				t.Fatal(err)
			}
		}
		if tcpdump == "" || strings.HasPrefix(strings.TrimSpace(expr), "-") {
			return
		}
		prog, v, msg := tcpdumpCompile(tcpdump, expr)
		if v != compiles {
			t.Fatalf("we compile %q, tcpdump says %v (%s)", expr, v, msg)
		}
		theirs := vm(t, prog)
		for _, fr := range frames {
			g, _ := ours.Run(fr)
			w, _ := theirs.Run(fr)
			if (g > 0) != (w > 0) && (len(fr) >= minFullFrame || g > 0) {
				t.Fatalf("%q on % x: we match %v, tcpdump %v", expr, fr, g > 0, w > 0)
			}
		}
	})
}
