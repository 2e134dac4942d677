package workers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/ondemand"
	"github.com/layerscope/layerscope/internal/testns"
)

// TestCaptureFilterExpression: the always-on capture takes a tcpdump
// expression (--capture-filter) compiled by the on-demand capture's
// compiler; the kernel then hands the workers only the matching frames.
func TestCaptureFilterExpression(t *testing.T) {
	node, pod := testns.Make(t, "lswfn"), testns.Make(t, "lswfp")
	testns.VethPair(t, node, "vfilt0", "10.77.0.1/24", pod, "eth0", "10.77.0.2/24")
	s, err := New(Config{
		Capture:       CaptureConfig{Filter: "udp and dst port 9001", Roles: []flow.Role{flow.RolePod}},
		NetNS:         node.Enter,
		CompileFilter: ondemand.CompileBPF,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !s.Started() || s.AttachedCount() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("vfilt0 not captured (started %v, %d attached)", s.Started(), s.AttachedCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	testns.SendUDP(t, pod, "10.77.0.1:9002", 30, 100)
	testns.SendUDP(t, pod, "10.77.0.1:9001", 20, 100)
	deadline = time.Now().Add(5 * time.Second)
	for s.Workers().Sum().UDP < 20 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3 * PublishInterval) // anything else would be published by now
	if got := s.Workers().Sum().UDP; got != 20 {
		t.Errorf("workers decoded %d UDP datagrams, want the 20 to port 9001 only", got)
	}
}

// TestCaptureFilterErrors: a filter the compiler refuses, or both filter
// forms at once, are configuration errors naming the flag.
func TestCaptureFilterErrors(t *testing.T) {
	for _, tt := range []struct {
		cc   CaptureConfig
		want string
	}{
		{CaptureConfig{Filter: "tcp and udp"}, "--capture-filter"},
		{CaptureConfig{Filter: "port"}, "--capture-filter"},
		{CaptureConfig{Filter: "udp", FilterFile: "/dev/null"}, "give one of them"},
	} {
		_, err := New(Config{Capture: tt.cc, CompileFilter: ondemand.CompileBPF})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err %v, want one naming %s", tt.cc, err, tt.want)
		}
	}
}
