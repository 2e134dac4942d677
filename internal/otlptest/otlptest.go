// Package otlptest runs the real OpenTelemetry Collector the trace tests
// export through (built by .ci/otelcol.sh) and an in-process OTLP/HTTP
// receiver it forwards to, so that tests read back what came out of the
// collector. It is for tests only.
package otlptest

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/layerscope/layerscope/internal/testns"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// OtelcolVersion is the Collector .ci/otelcol.sh builds by default.
const OtelcolVersion = "v0.165.0"

// OtelcolPath returns the Collector binary: $LAYERSCOPE_OTELCOL, else the
// cache path of .ci/otelcol.sh. A missing Collector fails the test unless
// LAYERSCOPE_NO_OTELCOL=1.
func OtelcolPath(t testing.TB) string {
	t.Helper()
	return testns.Tool{Name: "otelcol", Version: OtelcolVersion, Env: "LAYERSCOPE_OTELCOL", Script: ".ci/otelcol.sh"}.Path(t)
}

// Span is one span as it came out of the Collector, with the
// resource it was sent under.
type Span struct {
	Res  map[string]string
	Span *tracepb.Span
}

func (r Span) Attr(key string) *commonpb.AnyValue {
	for _, kv := range r.Span.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return nil
}

// Receiver is the OTLP/HTTP endpoint the Collector's otlp_http exporter
// forwards to: it keeps every span it gets.
type Receiver struct {
	Srv   *httptest.Server
	mu    sync.Mutex
	spans []Span
}

func NewReceiver(t testing.TB) *Receiver {
	r := &Receiver{}
	r.Srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Srv.Close)
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" {
		http.NotFound(w, req)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range msg.ResourceSpans {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.Key] = kv.Value.GetStringValue()
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				r.spans = append(r.spans, Span{Res: res, Span: sp})
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// All returns every span received so far.
func (r *Receiver) All() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Trace returns the spans received for trace ID tid.
func (r *Receiver) Trace(tid []byte) []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Span
	for _, s := range r.spans {
		if bytes.Equal(s.Span.TraceId, tid) {
			out = append(out, s)
		}
	}
	return out
}

// WaitTrace waits until trace tid has n spans.
func (r *Receiver) WaitTrace(t testing.TB, tid []byte, n int) []Span {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := r.Trace(tid)
		if len(got) >= n || time.Now().After(deadline) {
			require.Len(t, got, n, "spans of trace %s", hex.EncodeToString(tid))
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Collector is a running otelcol process: OTLP gRPC and HTTP in, the batch
// processor, otlp_http out to a Receiver.
type Collector struct {
	t                  testing.TB
	bin, cfg           string
	GRPCAddr, HTTPAddr string
	cmd                *exec.Cmd
	Log                *syncBuffer
	exited             chan struct{}
}

// syncBuffer holds the Collector's output, read while it may still write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func StartCollector(t testing.TB, recv *Receiver) *Collector {
	c := &Collector{t: t, bin: OtelcolPath(t), GRPCAddr: FreePort(t), HTTPAddr: FreePort(t)}
	c.cfg = filepath.Join(t.TempDir(), "otelcol.yaml")
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
processors:
  batch:
    timeout: 50ms
exporters:
  otlp_http:
    endpoint: %s
    compression: none
    retry_on_failure:
      enabled: false
  debug:
    verbosity: basic
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_http, debug]
`, c.GRPCAddr, c.HTTPAddr, recv.Srv.URL)
	require.NoError(t, os.WriteFile(c.cfg, []byte(cfg), 0o600))
	c.Start()
	t.Cleanup(c.Stop)
	return c
}

func (c *Collector) Start() {
	t := c.t
	c.Log = &syncBuffer{}
	c.cmd = exec.Command(c.bin, "--config", c.cfg)
	c.cmd.Stdout, c.cmd.Stderr = c.Log, c.Log
	require.NoError(t, c.cmd.Start())
	c.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(c.cmd, c.exited)
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{c.GRPCAddr, c.HTTPAddr} {
		for {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case <-c.exited:
				t.Fatalf("Collector exited at start:\n%s", c.Log)
			default:
			}
			require.True(t, time.Now().Before(deadline), "Collector does not listen on %s:\n%s", addr, c.Log)
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (c *Collector) Stop() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	c.cmd = nil
}
