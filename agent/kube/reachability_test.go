package kube

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReachabilityLogsOutageOnce: requests to an API server that went
// away log one warning, whatever the number of retries; the first answer
// afterwards logs the return, once; an RBAC refusal in between is not
// taken for an outage.
func TestReachabilityLogsOutageOnce(t *testing.T) {
	var logs bytes.Buffer
	s := &Source{log: slog.New(slog.NewTextHandler(&logs, nil))}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	c := &http.Client{Transport: s.wrapTransport(http.DefaultTransport)}
	get := func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/api/v1/pods", nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	get() // a 403: the server answers, nothing to log
	if logs.Len() != 0 {
		t.Fatalf("logged for an answering server: %s", logs.String())
	}
	addr := srv.Listener.Addr().String()
	srv.Close()
	for range 5 {
		get()
	}
	if n := strings.Count(logs.String(), "Kubernetes API not reachable"); n != 1 {
		t.Fatalf("%d outage warnings for 5 refused requests, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "/api/v1/pods") {
		t.Errorf("the warning does not name the request: %s", logs.String())
	}
	// The server back on the same address.
	srv2 := httptest.NewUnstartedServer(srv.Config.Handler)
	ln, err := listenOn(addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv2.Listener = ln
	srv2.Start()
	defer srv2.Close()
	get()
	get()
	if n := strings.Count(logs.String(), "Kubernetes metadata available again"); n != 1 {
		t.Fatalf("%d recovery lines, want 1:\n%s", n, logs.String())
	}
	// A request the agent cancels itself is no outage.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv2.URL, nil)
	if _, err := c.Do(req); err == nil {
		t.Fatal("a canceled request succeeded")
	}
	if n := strings.Count(logs.String(), "not reachable"); n != 1 {
		t.Errorf("a canceled request was logged as an outage:\n%s", logs.String())
	}
}

func listenOn(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
