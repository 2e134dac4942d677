package main

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// TestLiveCaptureCommand runs `layerscope capture` against node-2's agent
// while pod-a calls the Service: the file opens in tshark, every packet in
// it matches the display filter equivalent to --filter, and there are
// packets. Errors name the flag that is wrong.
func TestLiveCaptureCommand(t *testing.T) {
	testns.Tool{Name: "tshark"}.Path(t)
	l, urls := labAgents(t, "c", lab.Node1, lab.Node2)
	file := filepath.Join(t.TempDir(), "out.pcap")
	cmd := exec.Command(binary, "capture", "--agent", socketURL(t, urls[1]), "--filter", "host 10.244.1.8 and tcp port 8080", "--duration", "4s", "-w", file)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "capturing on ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("capture did not start: %q", sc.Text())
	}
	t.Log(sc.Text())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{Count: 4})
	if err != nil {
		t.Fatal(err)
	}
	var rest []string
	for sc.Scan() {
		rest = append(rest, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("capture: %v\n%s", err, strings.Join(rest, "\n"))
	}
	summary := strings.Join(rest, "\n")
	t.Log(summary)
	if !strings.Contains(summary, "stopped by duration") || !strings.Contains(summary, "; 0 dropped") {
		t.Errorf("summary %q: want a capture stopped by its duration without drops", summary)
	}
	total, matching := testns.TsharkCount(t, file, ""), testns.TsharkCount(t, file, "ip.addr#1 == 10.244.1.8 && tcp.port#1 == 8080")
	if total == 0 || matching != total {
		t.Errorf("%d packets, %d matching; want all and more than 0 (%d requests reached pod-c)", total, matching, rep.Backends[lab.PodC])
	}

	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"bad filter", []string{"--filter", "port 80 and"}, []string{"--filter", "column 12 (end)"}},
		{"no file", []string{"-w", ""}, []string{"-w is required"}},
		{"no interface", []string{"--interface", "nosuch*"}, []string{"--interface", "nosuch*", "no interface matches"}},
		{"bad agent", []string{"--agent", "ftp://x"}, []string{"--agent"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{binary, "capture", "--agent", socketURL(t, urls[1]), "--duration", "1s", "-w", filepath.Join(t.TempDir(), "x.pcap")}, tt.args...)
			code, out := run(t, args...)
			if code != 1 {
				t.Errorf("exit %d, want 1: %s", code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output %q lacks %q", out, w)
				}
			}
		})
	}
}
