package ondemand

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/layerscope/layerscope/internal/testns"
)

// verdict is what a compiler says of an expression.
type verdict int

const (
	compiles verdict = iota
	rejectsAll
	invalid
)

func (v verdict) String() string {
	return [...]string{"compiles", "rejects all packets", "invalid"}[v]
}

// tcpdumpCompile compiles expr with libpcap, through tcpdump.
func tcpdumpCompile(tcpdump, expr string) ([]bpf.RawInstruction, verdict, string) {
	out, err := exec.Command(tcpdump, "-y", "EN10MB", "-ddd", expr).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "rejects all packets") {
			return nil, rejectsAll, msg
		}
		return nil, invalid, msg
	}
	prog, err := parseDDD(string(out))
	if err != nil {
		return nil, invalid, err.Error()
	}
	return prog, compiles, ""
}

// parseDDD reads "tcpdump -ddd" output: a count, then one "code jt jf k"
// line per instruction.
func parseDDD(s string) ([]bpf.RawInstruction, error) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	var n int
	if _, err := fmt.Sscan(lines[0], &n); err != nil || n != len(lines)-1 {
		return nil, fmt.Errorf("tcpdump -ddd output: %q", s)
	}
	prog := make([]bpf.RawInstruction, n)
	for i, l := range lines[1:] {
		ri := &prog[i]
		if _, err := fmt.Sscan(l, &ri.Op, &ri.Jt, &ri.Jf, &ri.K); err != nil {
			return nil, fmt.Errorf("tcpdump -ddd line %q: %v", l, err)
		}
	}
	return prog, nil
}

// ourVerdict classifies CompileFilter's answer.
func ourVerdict(err error) verdict {
	switch {
	case err == nil:
		return compiles
	case errors.Is(err, ErrFilterNeverMatches):
		return rejectsAll
	}
	return invalid
}

// diffFrames are the frames both programs run on: drawn from the pools of
// the expression generator, and a sample of tcpdump's test captures.
func diffFrames(t *testing.T, r *rand.Rand) [][]byte {
	var out [][]byte
	for range 600 {
		out = append(out, randFrame(r).bytes())
	}
	real := ethernetFrames(t)
	for range 300 {
		out = append(out, real[r.IntN(len(real))])
	}
	return out
}

// minFullFrame is the shortest frame that no load of a compiled program
// reaches past: an IPv4 header of 60 bytes, then two port numbers.
const minFullFrame = offIP4 + 60 + 4

// TestFilterDifferential compiles random expressions of the supported
// grammar both here and with tcpdump (libpcap): both must accept the same
// expressions, refuse the same ones as rejecting all packets, and the two
// programs must match the same frames. The seed is fixed.
func TestFilterDifferential(t *testing.T) {
	tcpdump := testns.Tool{Name: "tcpdump"}.Path(t)
	n := 2000
	if testing.Short() {
		n = 200
	}
	r := rand.New(rand.NewPCG(14, 2026))
	frames := diffFrames(t, r)
	seen := map[string]bool{}
	var exprs []string
	for len(exprs) < n {
		e := randExpr(r, 1+r.IntN(4))
		if r.IntN(8) == 0 { // a prefix, mostly incomplete
			toks, _ := lex(e)
			k := r.IntN(len(toks))
			e = e[:toks[k].pos+len(toks[k].s)]
		}
		if !seen[e] {
			seen[e] = true
			exprs = append(exprs, e)
		}
	}
	type answer struct {
		prog []bpf.RawInstruction
		v    verdict
		msg  string
	}
	theirs := make([]answer, len(exprs))
	var wg sync.WaitGroup
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range work {
				p, v, msg := tcpdumpCompile(tcpdump, exprs[i])
				theirs[i] = answer{p, v, msg}
			}
		})
	}
	for i := range exprs {
		work <- i
	}
	close(work)
	wg.Wait()

	count := map[verdict]int{}
	failures := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if failures++; failures <= 20 {
			t.Errorf(format, args...)
		}
	}
	var ourInsns, theirInsns, matches, stricter int
	for i, expr := range exprs {
		th := theirs[i]
		f, err := CompileFilter(expr)
		v := ourVerdict(err)
		count[v]++
		if v == rejectsAll && th.v == compiles {
			// Facts that hold on every path but not where paths merge
			// escape libpcap's optimizer: tcpdump compiles a program
			// that must then match nothing.
			want := vm(t, th.prog)
			for j, fr := range frames {
				if n, _ := want.Run(fr); n > 0 {
					fail("%q: we say %v (%v), but tcpdump's program matches frame %d (% x)", expr, v, err, j, fr)
					break
				}
			}
			stricter++
			continue
		}
		if v != th.v {
			fail("%q: we say %v (%v), tcpdump says %v (%s)", expr, v, err, th.v, th.msg)
			continue
		}
		if v != compiles {
			continue
		}
		if len(f.Program) > MaxFilterInsns {
			fail("%q: %d instructions", expr, len(f.Program))
		}
		ourInsns += len(f.Program)
		theirInsns += len(th.prog)
		ours, want := vm(t, f.Program), vm(t, th.prog)
		for j, fr := range frames {
			g, err1 := ours.Run(fr)
			w, err2 := want.Run(fr)
			if err1 != nil || err2 != nil {
				t.Fatalf("%q on frame %d: %v, %v", expr, j, err1, err2)
			}
			// A load past the end of a frame rejects it; libpcap's
			// optimizer drops loads that cannot change the result, so on
			// a frame shorter than some load, tcpdump may match where we
			// do not, never the other way.
			if (g > 0) != (w > 0) && (len(fr) >= minFullFrame || g > 0) {
				fail("%q on frame %d (% x): we match %v, tcpdump %v", expr, j, fr, g > 0, w > 0)
				break
			}
			if g > 0 {
				matches++
			}
		}
	}
	t.Logf("%d expressions × %d frames: %d compile (%d matches; %d instructions, tcpdump's optimized: %d), %d rejected as matching nothing (%d of them compiled by tcpdump to programs that match nothing), %d invalid",
		len(exprs), len(frames), count[compiles], matches, ourInsns, theirInsns, count[rejectsAll], stricter, count[invalid])
	if count[compiles] < len(exprs)/4 || count[rejectsAll] < len(exprs)/50 {
		t.Errorf("the generator lost its balance: %v", count)
	}
}
