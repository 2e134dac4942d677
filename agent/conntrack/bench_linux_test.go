package conntrack

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The side-by-side benchmarks against conntrack-tools fill a namespace with
// 260,000 entries and take about a minute:
//
//	go test -run '^$' -bench VsConntrackTools -benchtime 1x -v ./agent/conntrack
//
// The Watcher runs in a child process (this test binary, re-executed inside
// the namespace) so that its wall time, CPU time and peak RSS are measured
// exactly as conntrack-tools' are.
const helperEnv = "LAYERSCOPE_CONNTRACK_HELPER"

type usage struct {
	wall, cpu time.Duration
	maxRSS    int64 // KiB
}

func measure(t testing.TB, cmd *exec.Cmd, start time.Time) usage {
	t.Helper()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return usage{
		wall:   time.Since(start),
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		maxRSS: ru.Maxrss,
	}
}

func helperCmd(ns, mode string) *exec.Cmd {
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperWatcher$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// TestHelperWatcher is the child process of the benchmarks; it does nothing
// unless LAYERSCOPE_CONNTRACK_HELPER is set.
func TestHelperWatcher(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	start := time.Now()
	cfg := Config{TopN: -1, StatsInterval: time.Hour}
	if mode == "dump-top" {
		cfg.TopN = DefaultTopN
	}
	w, err := Open(t.Context(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if mode == "events" {
		fmt.Println("READY")
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
	}
	s := w.Snapshot()
	w.Close()
	b, _ := json.Marshal(map[string]any{"open": time.Since(start).Seconds(), "dump": s.Health.LastDump.Seconds(),
		"entries": s.Health.LastDumpEntries, "new": s.Health.EventsNew, "lost": s.Health.EventsLost, "tracked": s.Tracked})
	fmt.Println("RESULT " + string(b))
}

func resultLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "RESULT ") {
			return strings.TrimPrefix(l, "RESULT ")
		}
	}
	return out
}

// BenchmarkDumpVsConntrackTools dumps 260,000 entries three times with
// `conntrack -L > /dev/null` and with the watcher run as a process in the
// namespace (without and with the top sources and services), and logs wall time, CPU and peak RSS of each. It makes its
// entries once, whatever b.N: run it with -benchtime 1x.
func BenchmarkDumpVsConntrackTools(b *testing.B) {
	t := b
	p := newPair(t)
	p.sysctl(t, "net.netfilter.nf_conntrack_udp_timeout=600")
	const n = 260_000
	rate := burst(t, []int{p.udpSocket(t), p.udpSocket(t)}, n)
	eventually(t, 10*time.Second, "entries", func() bool { return ctCount(t, p.client) >= n })
	t.Logf("made %d entries at %.0f/s", n, rate)
	for range 3 {
		cmd := exec.Command("ip", "netns", "exec", p.client, "conntrack", "-L")
		start := time.Now()
		if err := cmd.Run(); err != nil { // stdout: /dev/null
			t.Fatal(err)
		}
		u := measure(t, cmd, start)
		t.Logf("conntrack -L > /dev/null: wall %v cpu %v maxrss %d KiB", u.wall, u.cpu, u.maxRSS)

		cmd = helperCmd(p.client, "dump")
		start = time.Now()
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err, string(out))
		}
		u = measure(t, cmd, start)
		t.Logf("watcher (process):        wall %v cpu %v maxrss %d KiB %s", u.wall, u.cpu, u.maxRSS, resultLine(string(out)))

		cmd = helperCmd(p.client, "dump-top")
		start = time.Now()
		out, err = cmd.Output()
		if err != nil {
			t.Fatal(err, string(out))
		}
		u = measure(t, cmd, start)
		t.Logf("watcher, top lists on:    wall %v cpu %v maxrss %d KiB %s", u.wall, u.cpu, u.maxRSS, resultLine(string(out)))
	}
}

// BenchmarkEventsVsConntrackTools sends 100,000 new flows at 50k and 100k
// per second with `conntrack -E > /dev/null` and the watcher (a process)
// both listening, and logs CPU, peak RSS and events lost of each. Run it
// with -benchtime 1x.
func BenchmarkEventsVsConntrackTools(b *testing.B) {
	t := b
	p := newPair(t)
	p.sysctl(t, "net.netfilter.nf_conntrack_udp_timeout=600")
	for _, target := range []float64{50_000, 100_000} {
		ctE := exec.Command("ip", "netns", "exec", p.client, "conntrack", "-E")
		var ctErr strings.Builder
		ctE.Stderr = &ctErr
		must(t, ctE.Start())
		wcmd := helperCmd(p.client, "events")
		stdout, err := wcmd.StdoutPipe()
		must(t, err)
		must(t, wcmd.Start())
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && sc.Text() != "READY" {
		}
		time.Sleep(300 * time.Millisecond) // conntrack -E subscribed too
		start := time.Now()
		const n = 100_000
		got := sendFlows(t, p.udpSocket(t), 0, n, target)
		time.Sleep(time.Second)
		ctE.Process.Signal(syscall.SIGINT)
		wcmd.Process.Signal(syscall.SIGTERM)
		var rest strings.Builder
		for sc.Scan() {
			rest.WriteString(sc.Text() + "\n")
		}
		ctE.Wait()
		wcmd.Wait()
		uc := measure(t, ctE, start)
		uw := measure(t, wcmd, start)
		t.Logf("rate %.0f new flows/s (%d flows):", got, n)
		t.Logf("  conntrack -E > /dev/null: cpu %v maxrss %d KiB; %s", uc.cpu, uc.maxRSS, strings.TrimSpace(ctErr.String()))
		t.Logf("  watcher (process):        cpu %v maxrss %d KiB; %s", uw.cpu, uw.maxRSS, resultLine(rest.String()))
		// Let the entries go before the next rate.
		p.sysctl(t, "net.netfilter.nf_conntrack_udp_timeout=1")
		time.Sleep(1500 * time.Millisecond)
		ctCount(t, p.client)
		runIn(t, p.client, "", "conntrack", "-L")
		p.sysctl(t, "net.netfilter.nf_conntrack_udp_timeout=600")
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
