package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/layerscope/layerscope/internal/nsenter"
	"github.com/layerscope/layerscope/internal/testns"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestAgentServesInNamespace(t *testing.T) {
	ns := testns.New(t, "ls-agent")
	a, err := New(Config{NetNS: ns, MetricsAddr: "127.0.0.1:0", Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	base := "http://" + a.Addr().String()

	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not OK within 5s (last error %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get(t, base+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{`layerscope_build_info{goversion="`, `version="v-test"`, "layerscope_agent_ready 1", "go_goroutines", "process_open_fds"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	lint(t, body)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after Run returned")
	}
}

func TestAgentConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
		is   error
	}{
		{"unknown netns", Config{NetNS: "layerscope-no-such-ns", MetricsAddr: "127.0.0.1:0", SkipPrivilegeCheck: true}, "--netns", nsenter.ErrNotFound},
		{"bad addr", Config{MetricsAddr: "nonsense", SkipPrivilegeCheck: true}, "--metrics-addr", nil},
		{"missing web config", Config{MetricsAddr: "127.0.0.1:0", WebConfigFile: "/nonexistent/web.yml", SkipPrivilegeCheck: true}, "--web-config-file", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() error = %v, want one naming %s", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("New() error = %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}

// lint fails t on every promlint problem of a layerscope metric: the checks
// of `promtool check metrics`.
func lint(t *testing.T, exposition string) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(exposition)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "layerscope_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}
