// Package agent wires layerscope's node agent together: it opens the node's
// network namespace, starts the capture, conntrack and link sources in the
// order of the plugin list, and serves /metrics, /healthz and /readyz.
//
// # Namespaces
//
// Config.NetNS names the network namespace the agent observes. Capture and
// netlink sockets are opened inside it; the HTTP server listens in the
// caller's namespace, so an agent observing a lab node is scraped from the
// host on 127.0.0.1.
//
// # Lifecycle
//
// Run blocks until its context is cancelled, then stops the HTTP server
// gracefully, closes every source and returns nil. Errors while starting
// (bad flags, missing privileges, unknown namespace) are returned at once.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/layerscope/layerscope/agent/conntrack"
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/agent/ondemand"
	"github.com/layerscope/layerscope/agent/server"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
	"github.com/layerscope/layerscope/internal/nsenter"
)

// DefaultMetricsAddr is where a locally run agent serves HTTP.
const DefaultMetricsAddr = "127.0.0.1:9431"

// Config configures an Agent. The zero value observes the caller's own
// network namespace and serves on DefaultMetricsAddr.
type Config struct {
	// NetNS is the network namespace to observe, by name (under /run/netns)
	// or path (/proc/PID/ns/net). Empty means the caller's namespace.
	NetNS string
	// MetricsAddr is the host:port the HTTP endpoint listens on. Empty means
	// DefaultMetricsAddr; port 0 picks a free port (see Agent.Addr).
	MetricsAddr string
	// WebConfigFile is an exporter-toolkit web configuration file (TLS,
	// client certificates, basic auth). Empty serves plain HTTP without
	// authentication.
	WebConfigFile string
	// HealthAddr, when set, is a host:port that serves /healthz and /readyz
	// only, without authentication (for kubelet probes when the main
	// listener requires credentials). Empty means none.
	HealthAddr string
	// APISocket, when set, is a unix socket that serves the same endpoints
	// as MetricsAddr to root and to processes of APISocketGroup, checked
	// with SO_PEERCRED. Empty means none.
	APISocket string
	// APISocketGroup is the group (name or gid) allowed on APISocket
	// besides root. Empty means root only.
	APISocketGroup string
	// HTTP bounds the HTTP server (connections, timeouts); zero fields
	// mean the server package's defaults.
	HTTP server.Config
	// Version and Revision label layerscope_build_info. Empty means "dev"
	// and "unknown".
	Version, Revision string
	// Logger receives the agent's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Capture says what the agent captures and how it decodes it.
	Capture CaptureConfig
	// Conntrack says how the agent watches the conntrack table.
	Conntrack ConntrackConfig
	// Traces says whether and where connection traces are exported.
	Traces TracesConfig
	// OnDemand bounds the captures served on /api/v1/capture.
	OnDemand OnDemandConfig
	// Node is this node's name, in spans and for the Kubernetes metadata
	// (the pods watched are this node's). Empty means Traces.Node, else
	// the host name in spans and every pod in the metadata.
	Node string
	// Kube says where Kubernetes metadata (pod, service and workload
	// names) comes from.
	Kube KubeConfig
	// API configures the agent API and its history of connections.
	API APIConfig
	// SkipPrivilegeCheck disables the capability check at start (the
	// kernel still refuses what the process may not do).
	SkipPrivilegeCheck bool
}

// Agent is one node agent. Create it with New, run it with Run.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	ns        *nsenter.NS
	reg       *prometheus.Registry
	srv       *server.Server
	limits    apiLimits
	capture   *captureSet
	conntrack atomic.Pointer[conntrack.Watcher]
	services  *correlate.Services
	pmtu      pmtuLog
	mtu       *mtuCheck // the MTU configuration check and its recent findings
	api       *apiState
	tracer    atomic.Pointer[tracer]
	kube      *kube.Source
	workloads *workloadTally
	ready     atomic.Bool
	ondemand  *ondemand.Limiter
	promOnce  sync.Once
	prom      http.Handler
}

// New validates cfg, checks privileges, opens the namespace and binds the
// HTTP listener, so that every configuration error surfaces before Run.
func New(cfg Config) (*Agent, error) {
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = DefaultMetricsAddr
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Revision == "" {
		cfg.Revision = "unknown"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent"), services: correlate.NewServices(correlate.ServicesConfig{}), ondemand: ondemand.NewLimiter(cfg.OnDemand.MaxConcurrent)}
	a.mtu = &mtuCheck{a: a}
	if _, _, err := net.SplitHostPort(cfg.MetricsAddr); err != nil {
		return nil, fmt.Errorf("--metrics-addr %q: %w", cfg.MetricsAddr, err)
	}
	a.limits = newAPILimits()
	as, err := newAPIState(cfg)
	if err != nil {
		return nil, err
	}
	a.api = as
	if c := cfg.OnDemand.Caps; c.Duration < 0 || c.Packets < 0 || c.Bytes < 0 || c.SnapLen < 0 || cfg.OnDemand.MaxConcurrent < 0 {
		return nil, fmt.Errorf("--capture-api-max-duration, --capture-api-max-packets, --capture-api-max-bytes, --capture-api-snaplen and --capture-api-concurrent must not be negative")
	}
	if err := checkOnDemand(&a.cfg.OnDemand); err != nil {
		return nil, err
	}
	if cfg.WebConfigFile != "" {
		if err := web.Validate(cfg.WebConfigFile); err != nil {
			return nil, fmt.Errorf("--web-config-file %s: %w", cfg.WebConfigFile, err)
		}
	}
	if !cfg.SkipPrivilegeCheck {
		if err := checkPrivileges(cfg.NetNS != ""); err != nil {
			return nil, err
		}
	}
	ns, err := nsenter.Open(cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("--netns: %w", err)
	}
	a.ns = ns
	if err := a.openKube(); err != nil {
		ns.Close()
		return nil, err
	}
	if a.capture, err = newCaptureSet(a); err != nil {
		ns.Close()
		return nil, err
	}
	col, err := prom.NewCollector(cfg.Logger, a.sources()...)
	if err != nil {
		ns.Close()
		return nil, err
	}
	if a.reg, err = prom.NewRegistry(col); err != nil {
		ns.Close()
		return nil, err
	}
	hc := cfg.HTTP
	hc.Addr, hc.WebConfigFile, hc.HealthAddr = cfg.MetricsAddr, cfg.WebConfigFile, cfg.HealthAddr
	hc.SocketPath, hc.SocketGroup = cfg.APISocket, cfg.APISocketGroup
	hc.Handler, hc.Health, hc.Logger = a.handler(), a.healthHandler(), cfg.Logger
	if a.srv, err = server.New(hc); err != nil {
		ns.Close()
		return nil, err
	}
	if cfg.OnDemand.Enabled && !a.srv.CanIdentify() {
		_ = a.srv.Shutdown(context.Background())
		ns.Close()
		return nil, fmt.Errorf("--capture-api: on-demand captures hand out whole packets and are served only to authenticated clients: " +
			"add --web-config-file with basic_auth_users or verified client certificates, or --api-socket")
	}
	return a, nil
}

// Addr returns the address the HTTP endpoint listens on.
func (a *Agent) Addr() net.Addr { return a.srv.Addr() }

// HealthAddr returns the address of the health listener, nil without one.
func (a *Agent) HealthAddr() net.Addr { return a.srv.HealthAddr() }

// Registry returns the agent's Prometheus registry.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// sources lists the metric sources in their fixed order.
func (a *Agent) sources() []prom.Source {
	return []prom.Source{
		prom.BuildInfo(a.cfg.Version, a.cfg.Revision),
		prom.SourceFunc{SourceName: "agent", Fn: func(e *prom.Emitter) error {
			v := 0.0
			if a.isReady() {
				v = 1
			}
			e.Gauge(metricdef.AgentReady, v)
			return nil
		}},
		linksSource(a.ns, a.mtu),
		a.kernelSource(),
		a.capture.source(),
		PipelineSource(a.capture.workers),
		FlowTableSource(a.capture.table),
		a.conntrackSource(),
		a.servicesSource(),
		a.apiSource(),
		a.kubeSource(),
		a.workloadSource(),
		a.tracesSource(),
	}
}

// Run starts the agent's sources and serves HTTP until ctx is cancelled or
// a source fails; it then stops everything and returns.
func (a *Agent) Run(ctx context.Context) error {
	defer a.ns.Close()
	srv := a.srv
	httpErr := make(chan error, 1)
	go func() { httpErr <- srv.Serve() }()
	a.log.Info("agent started", "netns", a.cfg.NetNS, "addr", srv.Addr().String())

	ct, err := a.openConntrack(ctx)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	if ct != nil {
		a.conntrack.Store(ct)
		defer ct.Close()
	}
	tr, err := a.openTracer(ctx)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	if tr != nil {
		a.tracer.Store(tr)
		defer tr.shutdown() // after the capture stopped (deferred calls run last first)
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	kubeDone := make(chan struct{})
	go func() { defer close(kubeDone); a.kube.Run(runCtx) }()
	defer func() { <-kubeDone }()
	capErr := make(chan error, 1)
	go func() { capErr <- a.capture.run(runCtx) }()
	pathsDone := make(chan struct{})
	go func() { defer close(pathsDone); a.followPaths(runCtx) }()
	defer func() { <-pathsDone }()
	apiDone := make(chan struct{})
	go func() { defer close(apiDone); a.runAPI(runCtx) }()
	defer func() { <-apiDone }()
	go func() {
		select {
		case <-a.capture.ready():
			a.ready.Store(true)
			a.log.Info("capturing", "interfaces", a.capture.attachedCount())
		case <-runCtx.Done():
		}
	}()

	select {
	case <-ctx.Done():
	case e := <-httpErr:
		err, httpErr = fmt.Errorf("http server: %w", e), nil
	case e := <-capErr:
		err, capErr = fmt.Errorf("capture: %w", e), nil
	}
	a.ready.Store(false)
	// Requests in flight end first (captures write their trailers, follow
	// streams end), then the sources stop.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	stop()
	if capErr != nil {
		if e := <-capErr; e != nil {
			err = errors.Join(err, fmt.Errorf("capture: %w", e))
		}
	}
	if httpErr != nil {
		if e := <-httpErr; e != nil && !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, e)
		}
	}
	a.log.Info("agent stopped")
	return err
}

// isReady reports readiness: the interfaces present at start were attached,
// and no interface selected since has gone without a ring for longer than
// CaptureConfig.PendingGrace.
func (a *Agent) isReady() bool {
	return a.ready.Load() && len(a.capture.stuck(time.Now())) == 0
}

// shutdownGrace is how long Run waits for requests in flight to end.
const shutdownGrace = 5 * time.Second

// handler serves every endpoint. Each route takes GET (and HEAD where a
// HEAD costs nothing); other methods get 405 with Allow, unknown paths 404.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	// promhttp's registry is read lazily: a.reg is set after handler().
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { a.metricsHandler().ServeHTTP(w, r) })
	mux.Handle("GET /api/v1/pmtu", a.limits.api.Wrap(http.HandlerFunc(a.servePMTU)))
	a.registerAPI(mux)
	mux.HandleFunc("GET /api/v1/capture", a.serveCapture)
	a.registerHealth(mux)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "layerscope agent: /metrics /healthz /readyz /api/v1/connections /api/v1/status /api/v1/pmtu /api/v1/capture")
	})
	return mux
}

// metricsHandler is promhttp's handler of the registry, built once.
func (a *Agent) metricsHandler() http.Handler {
	a.promOnce.Do(func() {
		a.prom = promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{
			ErrorLog:            slog.NewLogLogger(a.log.Handler(), slog.LevelError),
			ErrorHandling:       promhttp.ContinueOnError,
			MaxRequestsInFlight: 4,
			Timeout:             10 * time.Second,
		})
	})
	return a.prom
}

// healthHandler serves the probes only: it reveals nothing but health.
func (a *Agent) healthHandler() http.Handler {
	mux := http.NewServeMux()
	a.registerHealth(mux)
	return mux
}

func (a *Agent) registerHealth(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if st := a.capture.stuck(time.Now()); len(st) > 0 {
			msg := fmt.Sprintf("not ready: %d interfaces not captured", len(st))
			for _, p := range st {
				msg += fmt.Sprintf("\n%s (ifindex %d, role %s): %d attempts since %s: %v", p.Link.Name, p.Link.Index,
					p.Link.Role, p.Attempts, p.Since.UTC().Format(time.RFC3339), p.Err)
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
}
