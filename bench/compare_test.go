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
// prints, per capturer, the median and range of cpu-ns/packet (its
// process), reader-ns, softirq-ns (the machine's softirq time: the receive
// path, where AF_PACKET copies frames into rings and socket filters run,
// charged to no process), total-ns (cpu-ns plus the softirq-ns above the
// baseline's of the same round, when "baseline" runs) and machine-ns, the
// drops, and the median and range of the per-round ratios of its cpu-ns
// and its total-ns to tcpdump's. The ratios are also reported as metrics
// (x-tcpdump-MODE, total-x-tcpdump-MODE).
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
			if !slices.Contains(agentModes, m) && m != "baseline" {
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
			switch c {
			case "tcpdump":
				res[c] = append(res[c], liveTcpdump(b, p, cfg, b.N))
			case "baseline":
				res[c] = append(res[c], liveBaseline(b, p, cfg, b.N))
			default:
				res[c] = append(res[c], liveAgent(b, p, cfg, c, b.N))
			}
		}
	}
	b.StopTimer()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d rounds of %d packets at %d packets/s; median (min–max)\n", rounds, b.N, liveRate)
	fmt.Fprintf(&sb, "%-17s %-16s %-16s %-16s %-16s %-18s %-7s %-18s %s\n", "", "cpu-ns/pkt", "reader-ns/pkt", "softirq-ns/pkt",
		"total-ns/pkt", "machine-ns/pkt", "drops", "cpu ÷ tcpdump's", "total ÷ tcpdump's")
	td, base := res["tcpdump"], res["baseline"]
	// total: the capturer's process and the softirq time above the
	// baseline's of the same round (the kernel's part of capturing:
	// copies into the ring, the filter).
	total := func(rs []liveResult, i int) float64 {
		r := &rs[i]
		t := r.perPkt(r.cpu) + r.perPkt(r.softirq)
		if base != nil {
			t -= base[i].perPkt(base[i].softirq)
		}
		return t
	}
	var notes []string
	for _, c := range capturers {
		rs := res[c]
		var cpu, reader, soft, tot, machine, ratio, totRatio, bpf []float64
		var drops, counted uint64
		for i := range rs {
			r := &rs[i]
			cpu = append(cpu, r.perPkt(r.cpu))
			reader = append(reader, r.perPkt(r.reader))
			soft = append(soft, r.perPkt(r.softirq))
			tot = append(tot, total(rs, i))
			machine = append(machine, r.perPkt(r.machine))
			ratio = append(ratio, r.perPkt(r.cpu)/td[i].perPkt(td[i].cpu))
			totRatio = append(totRatio, total(rs, i)/total(td, i))
			drops += r.drops
			counted += r.counted
			if r.bpfRuns > 0 {
				bpf = append(bpf, r.perPkt(r.bpf))
			}
		}
		rd := "—"
		if strings.HasSuffix(c, "-locked") {
			rd = spread(reader, "%.0f")
		}
		if c != "tcpdump" && c != "baseline" {
			b.ReportMetric(median(ratio), "x-tcpdump-"+c)
			b.ReportMetric(median(totRatio), "total-x-tcpdump-"+c)
		}
		fmt.Fprintf(&sb, "%-17s %-16s %-16s %-16s %-16s %-18s %-7d %-18s %s\n", c, spread(cpu, "%.0f"), rd, spread(soft, "%.0f"),
			spread(tot, "%.0f"), spread(machine, "%.0f"), drops, spread(ratio, "%.2f"), spread(totRatio, "%.2f"))
		if counted > 0 {
			notes = append(notes, fmt.Sprintf("%s: the kernel counted %.1f%% of the frames", c, float64(counted)/float64(len(rs)*b.N)*100))
		}
		if len(bpf) > 0 {
			notes = append(notes, fmt.Sprintf("%s: the filter ran %s ns per packet (in softirq, in no process's CPU time)", c, spread(bpf, "%.0f")))
		}
	}
	if len(notes) > 0 {
		sb.WriteString(strings.Join(notes, "\n") + "\n")
	}
	// On stdout: the benchmark log keeps only its first lines without -v.
	fmt.Print(sb.String())
}

// compareModes are BenchmarkLiveCompare's capturers by default besides
// tcpdump: no capture at all (baseline: the machine's CPU for trafgen and
// the veth alone, subtracted from the others' machine-ns/pkt for each
// capturer's whole cost, softirq included), the agent's path as it runs
// (full), its parts, the path with the eBPF fast path (offload), and the
// full path on a thread of its own for the reader's share.
var compareModes = []string{"baseline", "ring", "decode", "full", "offload", "full-locked"}

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
