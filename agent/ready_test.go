package agent

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/layerscope/layerscope/internal/testns"
)

// serve answers one request with the agent's handler in process: no
// descriptor is needed, so it works while the descriptor limit is down.
func serve(a *Agent, path string) (int, string) {
	rec := httptest.NewRecorder()
	a.handlers.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// TestReadinessWhileAttachFails: a pod veth whose ring cannot be opened
// (no descriptors left) is pending; once that has lasted longer than the
// grace period the agent is not ready, and it is ready again, with the pod
// captured, once descriptors can be had.
func TestReadinessWhileAttachFails(t *testing.T) {
	node, pods := testns.Make(t, "lsrdy"), testns.Make(t, "lsrdp")
	a, err := New(Config{NetNS: node.Name, MetricsAddr: "127.0.0.1:0", Capture: CaptureConfig{PendingGrace: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	if code, _ := serve(a, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d before the pod", code)
	}

	restore := testns.LowerFDLimit(t)
	if err := node.H.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vpend0"}, PeerName: "eth0",
		PeerNamespace: netlink.NsFd(int(pods.Fd))}); err != nil {
		restore()
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(a.workers.Manager().Pending()) == 0 {
		if time.Now().After(deadline) {
			restore()
			t.Fatal("vpend0 never pending")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond) // past the grace period
	code, body := serve(a, "/readyz")
	_, metrics := serve(a, "/metrics")
	restore()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "vpend0") || !strings.Contains(body, "too many open files") {
		t.Errorf("/readyz with a pod pending = %d %q, want 503 naming vpend0 and EMFILE", code, body)
	}
	for _, want := range []string{`layerscope_agent_capture_pending{role="pod"} 1`, "layerscope_agent_ready 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics with a pod pending lacks %q", want)
		}
	}

	lifted := time.Now()
	for {
		code, body = serve(a, "/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Since(lifted) > 5*time.Second {
			t.Fatalf("/readyz = %d %q 5s after the limit was lifted", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("ready again %v after the limit was lifted", time.Since(lifted).Round(time.Millisecond))
	_, metrics = serve(a, "/metrics")
	for _, want := range []string{`layerscope_agent_capture_pending{role="pod"} 0`, `layerscope_agent_capture_attached{role="pod"} 1`, "layerscope_agent_ready 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics after the limit was lifted lacks %q", want)
		}
	}
}
