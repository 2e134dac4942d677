// Package promtest runs the real Prometheus server and promtool the tests
// check the agent's metrics, alerts and dashboards against (built by
// .ci/prometheus.sh), and reads results back through Prometheus's HTTP API.
// It is for tests only.
//
// # Tools
//
// Prometheus and Promtool return the binaries: the path in
// $LAYERSCOPE_PROMETHEUS or $LAYERSCOPE_PROMTOOL, else the tool cache of
// .ci/prometheus.sh (~/.cache/layerscope/tools/NAME-Version/NAME). A missing
// binary fails the test unless LAYERSCOPE_NO_PROMETHEUS=1, which skips it.
//
// # Server
//
// Start runs a server on a free loopback port with a configuration given as
// text and a temporary storage directory, waits until it is ready and stops
// it when the test ends, printing its log if the test failed. Query, Alerts
// and Rules read the HTTP API; a Server is safe for concurrent use.
package promtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/layerscope/layerscope/internal/testns"
)

// Version is the Prometheus release .ci/prometheus.sh builds by default (its
// Go module version).
const Version = "v0.316.0"

// Environment variables naming the tools, and the one that skips tests where
// they are not installed.
const (
	EnvPrometheus   = "LAYERSCOPE_PROMETHEUS"
	EnvPromtool     = "LAYERSCOPE_PROMTOOL"
	EnvNoPrometheus = "LAYERSCOPE_NO_PROMETHEUS" // "1" skips instead of failing
)

// Prometheus returns the path of the Prometheus server binary.
func Prometheus(t testing.TB) string { return tool(t, "prometheus", EnvPrometheus) }

// Promtool returns the path of promtool.
func Promtool(t testing.TB) string { return tool(t, "promtool", EnvPromtool) }

func tool(t testing.TB, name, env string) string {
	t.Helper()
	return testns.Tool{Name: name, Version: Version, Env: env, Script: ".ci/prometheus.sh", Skip: EnvNoPrometheus}.Path(t)
}

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// CheckMetrics runs `promtool check metrics` on an exposition and fails t
// unless it exits 0 without a word; name says whose exposition it is.
func CheckMetrics(t testing.TB, promtool, name, exposition string) {
	t.Helper()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics on the scrape of %s: %v\n%s", name, err, out)
	}
}

// Server is a Prometheus server run by a test.
type Server struct {
	// Base is the server's URL, http://127.0.0.1:PORT.
	Base string
	// Dir is the server's working directory (a test temporary directory):
	// relative paths of the configuration, such as rule files, resolve
	// against it.
	Dir string

	mu  sync.Mutex
	log bytes.Buffer // stdout and stderr
}

// Write implements io.Writer for the process's output.
func (s *Server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

// Log returns what the server logged so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Start runs the Prometheus binary bin with the configuration text config,
// its files (name → content, written to Server.Dir before the start, for
// rule files the configuration names), storage in a temporary directory, and
// waits until it is ready. It is stopped (SIGTERM, then SIGKILL) when the
// test ends; its log is shown if the test failed.
func Start(t testing.TB, bin, config string, files map[string]string) *Server {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := FreeAddr(t)
	s := &Server{Base: "http://" + addr, Dir: dir}
	cmd := exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=info",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("prometheus did not stop within 10s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", s.Log())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited at start: %v\n%s", err, s.Log())
		default:
		}
		resp, err := http.Get(s.Base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 20s (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Sample is one element of an instant vector; a scalar result is one Sample
// without labels.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// get decodes the data of a successful API response into data.
func (s *Server) get(path string, data any) error {
	resp, err := http.Get(s.Base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("GET %s: %d: %w", path, resp.StatusCode, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, body.Status, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

// parseValue reads the [time, "value"] pair of the API.
func parseValue(v [2]any) (float64, error) {
	s, ok := v[1].(string)
	if !ok {
		return 0, fmt.Errorf("value %v", v)
	}
	switch s {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(s, 64)
}

// Query evaluates an instant query at the current time. A vector result
// gives its samples, a scalar one sample without labels; other result types
// are errors.
func (s *Server) Query(q string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.get("/api/v1/query?query="+url.QueryEscape(q), &data); err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	switch data.ResultType {
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, fmt.Errorf("query %q: %w", q, err)
		}
		f, err := parseValue(v)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", q, err)
		}
		return []Sample{{Metric: map[string]string{}, Value: f}}, nil
	case "vector":
	default:
		return nil, fmt.Errorf("query %q: result type %s, want vector or scalar", q, data.ResultType)
	}
	var result []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	if err := json.Unmarshal(data.Result, &result); err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	out := make([]Sample, 0, len(result))
	for _, r := range result {
		v, err := parseValue(r.Value)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", q, err)
		}
		out = append(out, Sample{r.Metric, v})
	}
	return out, nil
}

// RangeSeries is one series of a range query's matrix.
type RangeSeries struct {
	Metric map[string]string
	Values []float64 // one per step where the series has a value
}

// QueryRange evaluates q at every step from start to end, as Grafana does
// for a time series panel.
func (s *Server) QueryRange(q string, start, end time.Time, step time.Duration) ([]RangeSeries, error) {
	v := url.Values{}
	v.Set("query", q)
	v.Set("start", strconv.FormatFloat(float64(start.UnixMilli())/1000, 'f', 3, 64))
	v.Set("end", strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64))
	v.Set("step", strconv.FormatFloat(step.Seconds(), 'f', -1, 64))
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	if err := s.get("/api/v1/query_range?"+v.Encode(), &data); err != nil {
		return nil, fmt.Errorf("query_range %q: %w", q, err)
	}
	if data.ResultType != "matrix" {
		return nil, fmt.Errorf("query_range %q: result type %s, want matrix", q, data.ResultType)
	}
	out := make([]RangeSeries, 0, len(data.Result))
	for _, r := range data.Result {
		rs := RangeSeries{Metric: r.Metric, Values: make([]float64, 0, len(r.Values))}
		for _, pv := range r.Values {
			f, err := parseValue(pv)
			if err != nil {
				return nil, fmt.Errorf("query_range %q: %w", q, err)
			}
			rs.Values = append(rs.Values, f)
		}
		out = append(out, rs)
	}
	return out, nil
}

// Alert is one active alert of /api/v1/alerts.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending or firing
	ActiveAt    time.Time         `json:"activeAt"`
	Value       string            `json:"value"`
}

// Name returns the alert's alertname label.
func (a Alert) Name() string { return a.Labels["alertname"] }

// Alerts returns the server's pending and firing alerts.
func (s *Server) Alerts() ([]Alert, error) {
	var data struct {
		Alerts []Alert `json:"alerts"`
	}
	if err := s.get("/api/v1/alerts", &data); err != nil {
		return nil, err
	}
	return data.Alerts, nil
}

// RuleGroup is one group of /api/v1/rules, with the fields tests check.
type RuleGroup struct {
	Name  string `json:"name"`
	File  string `json:"file"`
	Rules []struct {
		Name      string  `json:"name"`
		Query     string  `json:"query"`
		Duration  float64 `json:"duration"` // the for: duration in seconds
		Health    string  `json:"health"`   // ok, err or unknown
		LastError string  `json:"lastError"`
		Type      string  `json:"type"` // alerting or recording
		State     string  `json:"state"`
	} `json:"rules"`
}

// Rules returns the rule groups the server loaded.
func (s *Server) Rules() ([]RuleGroup, error) {
	var data struct {
		Groups []RuleGroup `json:"groups"`
	}
	if err := s.get("/api/v1/rules", &data); err != nil {
		return nil, err
	}
	return data.Groups, nil
}

// Series renders samples as sorted "label=value,…" strings over the given
// labels, for comparisons and messages.
func Series(samples []Sample, labels ...string) []string {
	out := make([]string, 0, len(samples))
	for _, s := range samples {
		parts := make([]string, 0, len(labels))
		for _, l := range labels {
			parts = append(parts, l+"="+s.Metric[l])
		}
		out = append(out, strings.Join(parts, ","))
	}
	slices.Sort(out)
	return out
}
