package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkLiveCompare is the live comparison in one command: on one veth
// pair it runs tcpdump and the agent modes of LAYERSCOPE_LIVE_MODES
// (comma-separated, default compareModes; see BenchmarkLiveAgent) with b.N
// packets each, alternating, for LAYERSCOPE_LIVE_ROUNDS rounds (default 5; each
// round starts with the next capturer, so none always runs first), and
// prints, per capturer, the median and range of cpu-ns/packet, reader-ns and
// machine-ns, the drops, and the median and range of the per-round ratio
// of its cpu-ns/packet to tcpdump's. The ratios are also reported as
// metrics (x-tcpdump-MODE).
func BenchmarkLiveCompare(b *testing.B) {
	if b.N < 10000 {
		return // the framework's first, one-packet round
	}
	rounds := 5
	if v := os.Getenv("LAYERSCOPE_LIVE_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("LAYERSCOPE_LIVE_ROUNDS=%q: want a positive number", v)
		}
		rounds = n
	}
	modes := compareModes
	if v := os.Getenv("LAYERSCOPE_LIVE_MODES"); v != "" {
		modes = strings.Split(v, ",")
		for _, m := range modes {
			if !slices.Contains(agentModes, m) {
				b.Fatalf("LAYERSCOPE_LIVE_MODES: unknown mode %q (modes: %s)", m, strings.Join(agentModes, ","))
			}
		}
	}
	p := newVethPair(b)
	cfg := trafgenConfig(b)
	capturers := append([]string{"tcpdump"}, modes...)
	res := map[string][]liveResult{}
	b.ResetTimer()
	for round := range rounds {
		for i := range capturers {
			c := capturers[(round+i)%len(capturers)]
			if c == "tcpdump" {
				res[c] = append(res[c], liveTcpdump(b, p, cfg, b.N))
			} else {
				res[c] = append(res[c], liveAgent(b, p, cfg, c, b.N))
			}
		}
	}
	b.StopTimer()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d rounds of %d packets at %d packets/s; median (min–max)\n", rounds, b.N, liveRate)
	fmt.Fprintf(&sb, "%-13s %-20s %-20s %-20s %-8s %s\n", "", "cpu-ns/pkt", "reader-ns/pkt", "machine-ns/pkt", "drops", "cpu ÷ tcpdump's (per round)")
	td := res["tcpdump"]
	for _, c := range capturers {
		rs := res[c]
		var cpu, reader, machine, ratio []float64
		var drops uint64
		for i := range rs {
			r := &rs[i]
			cpu = append(cpu, r.perPkt(r.cpu))
			reader = append(reader, r.perPkt(r.reader))
			machine = append(machine, r.perPkt(r.machine))
			ratio = append(ratio, r.perPkt(r.cpu)/td[i].perPkt(td[i].cpu))
			drops += r.drops
		}
		rd := "—"
		if strings.HasSuffix(c, "-locked") {
			rd = spread(reader, "%.0f")
		}
		if c != "tcpdump" {
			b.ReportMetric(median(ratio), "x-tcpdump-"+c)
		}
		fmt.Fprintf(&sb, "%-13s %-20s %-20s %-20s %-8d %s\n", c, spread(cpu, "%.0f"), rd, spread(machine, "%.0f"), drops, spread(ratio, "%.2f"))
	}
	b.Log("\n" + sb.String())
}

// compareModes are BenchmarkLiveCompare's agent modes by default: the
// agent's path as it runs (full), its parts, the batched variant, and the
// full path on a thread of its own for the reader's share.
var compareModes = []string{"ring", "decode", "full", "batch", "full-locked"}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// spread formats the median and range of v.
func spread(v []float64, f string) string {
	return fmt.Sprintf(f+" ("+f+"–"+f+")", median(v), slices.Min(v), slices.Max(v))
}
