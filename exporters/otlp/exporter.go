package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Protocols of Config.Protocol, spelled as OTEL_EXPORTER_OTLP_PROTOCOL
// spells them.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Defaults of the Config fields.
const (
	DefaultUDPBucket          = 30 * time.Second
	DefaultMaxQueueSize       = 2048
	DefaultMaxExportBatchSize = 512
	DefaultBatchTimeout       = 5 * time.Second
	DefaultExportTimeout      = 10 * time.Second
	DefaultServiceName        = "layerscope"
)

// Config configures an Exporter. The zero value exports the connections that
// had an error, over OTLP as the standard OTEL_EXPORTER_OTLP_* variables say
// (http/protobuf to localhost:4318 when they say nothing).
type Config struct {
	// Node is the name of this node: the k8s.node.name resource attribute,
	// and the default of Conn.Node. Empty means the host name.
	Node string

	// SampleRatio is the fraction of error-free connections exported, 0 to
	// 1, decided on the trace ID so that every node keeps the same traces.
	// Connections with an error (Conn.ErrorType) are exported whatever the
	// ratio. The zero value exports only those.
	SampleRatio float64
	// UDPBucket is the time bucket that identifies connections without a
	// TCP SYN (UDP, ICMP, TCP picked up mid-stream) in their trace ID. Every
	// node must use the same value. Zero means DefaultUDPBucket.
	UDPBucket time.Duration

	// Protocol is ProtocolGRPC or ProtocolHTTP. Empty means
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL,
	// then ProtocolHTTP.
	Protocol string
	// Endpoint is the collector's address: "host:port", or a URL
	// ("http://host:4318", whose scheme also says whether to use TLS). Empty
	// means the OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT variables, then the
	// protocol's default port on localhost.
	Endpoint string
	// Insecure disables TLS towards a "host:port" Endpoint
	// (OTEL_EXPORTER_OTLP_INSECURE does the same).
	Insecure bool
	// Headers are sent with every export. When set they replace those of
	// OTEL_EXPORTER_OTLP_[TRACES_]HEADERS.
	Headers map[string]string

	// ServiceName is the service.name resource attribute. Empty means
	// OTEL_SERVICE_NAME, then DefaultServiceName.
	ServiceName string
	// ServiceVersion is the service.version resource attribute (the
	// agent's build); OTEL_RESOURCE_ATTRIBUTES may override it. Empty
	// leaves it out.
	ServiceVersion string
	// ResourceAttributes are added to the resource, over those of
	// OTEL_RESOURCE_ATTRIBUTES.
	ResourceAttributes map[string]string

	// MaxQueueSize bounds the connections waiting to be turned into spans
	// and exported; Export drops (and counts) a connection when it is full.
	// Zero means DefaultMaxQueueSize.
	MaxQueueSize int
	// MaxExportBatchSize is the most spans sent in one export. Zero means
	// DefaultMaxExportBatchSize.
	MaxExportBatchSize int
	// BatchTimeout is the longest a span waits for its batch to fill. Zero
	// means DefaultBatchTimeout.
	BatchTimeout time.Duration
	// ExportTimeout bounds one export, retries included; its spans are
	// dropped (and counted) when it expires. Zero means
	// DefaultExportTimeout.
	ExportTimeout time.Duration

	// SpanExporter replaces the OTLP exporter (Protocol, Endpoint, Insecure
	// and Headers are then unused). Nil means OTLP.
	SpanExporter sdktrace.SpanExporter
	// Logger receives export failures and recoveries. Nil means
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if c.UDPBucket <= 0 {
		c.UDPBucket = DefaultUDPBucket
	}
	if c.MaxQueueSize <= 0 {
		c.MaxQueueSize = DefaultMaxQueueSize
	}
	if c.MaxExportBatchSize <= 0 {
		c.MaxExportBatchSize = DefaultMaxExportBatchSize
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.ExportTimeout <= 0 {
		c.ExportTimeout = DefaultExportTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("component", "otlp")
}

// Stats are the exporter's running totals since New.
type Stats struct {
	// Conns counts Export calls; SampledOut those not exported because of
	// the sampling ratio; Forced those exported because of an error
	// whatever the ratio; Dropped those dropped because the queue was full
	// or the exporter shut down.
	Conns, SampledOut, Forced, Dropped uint64
	// SpansExported counts the spans the collector accepted. SpansDropped
	// counts spans lost: those of dropped connections and those of failed
	// exports.
	SpansExported, SpansDropped uint64
	// ExportErrors counts failed exports (after the exporter's retries).
	ExportErrors uint64
	// Queued is the number of connections waiting in the queue now.
	Queued int
}

// Exporter turns connections into spans and exports them over OTLP. Export
// never blocks: connections wait in a bounded queue for one worker goroutine
// that builds their spans and exports them in batches. Its methods are safe
// for concurrent use.
type Exporter struct {
	cfg     Config
	log     *slog.Logger
	spanExp sdktrace.SpanExporter
	tp      *sdktrace.TracerProvider
	tracer  trace.Tracer

	queue    chan *Conn
	flushReq chan chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	closed   atomic.Bool

	conns, sampledOut, forced, dropped       atomic.Uint64
	spansExported, spansDropped, exportError atomic.Uint64

	// Owned by the worker.
	batch   []sdktrace.ReadOnlySpan
	failing bool
}

// New returns a running Exporter. It does not connect: a collector that is
// down only makes exports fail (and count) until it is up.
func New(ctx context.Context, cfg Config) (*Exporter, error) {
	cfg.setDefaults()
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("%w: %v", errSampleRatio, cfg.SampleRatio)
	}
	e := &Exporter{
		cfg:      cfg,
		log:      cfg.Logger,
		queue:    make(chan *Conn, cfg.MaxQueueSize),
		flushReq: make(chan chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		batch:    make([]sdktrace.ReadOnlySpan, 0, cfg.MaxExportBatchSize),
	}
	res, err := newResource(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	e.spanExp = cfg.SpanExporter
	if e.spanExp == nil {
		if e.spanExp, err = newOTLP(ctx, &cfg); err != nil {
			return nil, err
		}
	}
	e.tp = sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithIDGenerator(idGenerator{}),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor((*processor)(e)),
	)
	e.tracer = e.tp.Tracer("github.com/layerscope/layerscope/exporters/otlp")
	go e.run()
	return e, nil
}

// protocol returns the configured protocol, from Config or the environment.
func protocol(cfg *Config) (string, error) {
	p := cfg.Protocol
	for _, env := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p == "" {
			p = strings.TrimSpace(os.Getenv(env))
		}
	}
	switch p {
	case "", ProtocolHTTP:
		return ProtocolHTTP, nil
	case ProtocolGRPC:
		return ProtocolGRPC, nil
	}
	return "", fmt.Errorf("%w: %q (want %q or %q)", errProtocol, p, ProtocolGRPC, ProtocolHTTP)
}

func newOTLP(ctx context.Context, cfg *Config) (sdktrace.SpanExporter, error) {
	proto, err := protocol(cfg)
	if err != nil {
		return nil, err
	}
	url := strings.Contains(cfg.Endpoint, "://")
	if proto == ProtocolGRPC {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{
			Enabled: true, InitialInterval: 250 * time.Millisecond, MaxInterval: 2 * time.Second,
			MaxElapsedTime: cfg.ExportTimeout,
		})}
		switch {
		case url:
			opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
		case cfg.Endpoint != "":
			opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint))
		}
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		if len(cfg.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(cfg.Headers))
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp grpc exporter: %w", err)
		}
		return exp, nil
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
		Enabled: true, InitialInterval: 250 * time.Millisecond, MaxInterval: 2 * time.Second,
		MaxElapsedTime: cfg.ExportTimeout,
	})}
	switch {
	case url:
		opts = append(opts, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	case cfg.Endpoint != "":
		opts = append(opts, otlptracehttp.WithEndpoint(cfg.Endpoint))
	}
	if cfg.Insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp http exporter: %w", err)
	}
	return exp, nil
}

// newResource describes this agent: service.name, k8s.node.name and
// host.name, then OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, then the
// Config's own values, each over the previous.
func newResource(ctx context.Context, cfg *Config) (*resource.Resource, error) {
	base := []attribute.KeyValue{semconv.ServiceName(DefaultServiceName)}
	if cfg.ServiceVersion != "" {
		base = append(base, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	if cfg.Node != "" {
		base = append(base, semconv.K8SNodeName(cfg.Node))
	}
	if h, err := os.Hostname(); err == nil {
		base = append(base, semconv.HostName(h))
	}
	var over []attribute.KeyValue
	for k, v := range cfg.ResourceAttributes {
		over = append(over, attribute.String(k, v))
	}
	if cfg.ServiceName != "" {
		over = append(over, semconv.ServiceName(cfg.ServiceName))
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(base...),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
		resource.WithAttributes(over...),
	)
	if errors.Is(err, resource.ErrPartialResource) && res != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES entry: keep the rest.
		cfg.Logger.Warn("resource attributes partly ignored", "err", err)
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errResource, err)
	}
	return res, nil
}

// Export hands c to the exporter, which owns it from then on: the caller must
// not modify c or its slices afterwards. It never blocks. A connection
// without an error is kept with probability Config.SampleRatio; a kept
// connection is dropped (and counted) when the queue is full.
func (e *Exporter) Export(c *Conn) {
	if c == nil {
		return
	}
	e.conns.Add(1)
	if e.closed.Load() {
		e.drop(c)
		return
	}
	forced := c.ErrorType() != ""
	if !forced && !sampled(c.TraceID(e.cfg.UDPBucket), e.cfg.SampleRatio) {
		e.sampledOut.Add(1)
		return
	}
	select {
	case e.queue <- c:
		if forced {
			e.forced.Add(1)
		}
	default:
		e.drop(c)
	}
}

func (e *Exporter) drop(c *Conn) {
	e.dropped.Add(1)
	e.spansDropped.Add(uint64(c.spanCount()))
}

// Stats returns the running totals.
func (e *Exporter) Stats() Stats {
	return Stats{
		Conns:         e.conns.Load(),
		SampledOut:    e.sampledOut.Load(),
		Forced:        e.forced.Load(),
		Dropped:       e.dropped.Load(),
		SpansExported: e.spansExported.Load(),
		SpansDropped:  e.spansDropped.Load(),
		ExportErrors:  e.exportError.Load(),
		Queued:        len(e.queue),
	}
}

// Flush exports every connection queued before the call and waits for the
// export to finish (successfully or not), or for ctx.
func (e *Exporter) Flush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case e.flushReq <- ack:
	case <-e.done:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued, stops the worker and shuts the OTLP
// exporter down. Connections exported afterwards are dropped. It returns
// ctx's error if the queue could not be drained in time.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.closed.Store(true)
	e.stopOnce.Do(func() { close(e.stop) })
	var err error
	select {
	case <-e.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if serr := e.tp.Shutdown(ctx); serr != nil && err == nil {
		err = serr
	}
	return err
}

// run is the worker: it turns queued connections into spans, exports full
// batches, and partial ones every BatchTimeout.
func (e *Exporter) run() {
	defer close(e.done)
	tick := time.NewTicker(e.cfg.BatchTimeout)
	defer tick.Stop()
	for {
		select {
		case c := <-e.queue:
			e.emit(c)
		case <-tick.C:
			e.exportBatch()
		case ack := <-e.flushReq:
			e.drain()
			e.exportBatch()
			close(ack)
		case <-e.stop:
			e.drain()
			e.exportBatch()
			return
		}
	}
}

// drain emits the connections queued now.
func (e *Exporter) drain() {
	for range len(e.queue) {
		e.emit(<-e.queue)
	}
}

// exportBatch sends the batch and counts the outcome.
func (e *Exporter) exportBatch() {
	if len(e.batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.ExportTimeout)
	start := time.Now()
	err := e.spanExp.ExportSpans(ctx, e.batch)
	cancel()
	n := uint64(len(e.batch))
	clear(e.batch)
	e.batch = e.batch[:0]
	if err != nil {
		e.exportError.Add(1)
		e.spansDropped.Add(n)
		if !e.failing {
			e.log.Warn("span export failed; dropping spans until the collector answers",
				"spans", n, "duration_seconds", time.Since(start).Seconds(), "err", err)
		}
		e.failing = true
		return
	}
	e.spansExported.Add(n)
	if e.failing {
		e.log.Info("span export resumed", "dropped_total", e.spansDropped.Load())
	}
	e.failing = false
}

// processor is the Exporter seen as the SDK's span processor: ended spans
// join the worker's batch (spans end on the worker only).
type processor Exporter

var _ sdktrace.SpanProcessor = (*processor)(nil)

func (p *processor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (p *processor) OnEnd(s sdktrace.ReadOnlySpan) {
	e := (*Exporter)(p)
	e.batch = append(e.batch, s)
	if len(e.batch) >= e.cfg.MaxExportBatchSize {
		e.exportBatch()
	}
}

func (p *processor) Shutdown(ctx context.Context) error { return p.spanExp.Shutdown(ctx) }

func (p *processor) ForceFlush(context.Context) error { return nil }
