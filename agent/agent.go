// Package agent wires layerscope's node agent together. It holds no logic
// of its own: New constructs the parts in the order the data flows through
// them, Run runs them under one errgroup and stops them in order. Read the
// parts' package documentation in this order to follow one packet:
//
//	capture     a TPACKET_V3 ring per interface (AF_PACKET, optional BPF filter)
//	links       the one link watch; links.Current publishes its snapshots
//	attach      opens and closes rings as the watch reports interfaces
//	workers     one pipeline worker per ring; the path/MTU/PMTU ticker
//	pipeline    decodes each frame (decoders/*) into per-layer counters and flow updates
//	flowtable   one record per connection with its hops; ends and reports records
//	correlate   the fan-out: one conntrack lookup per ended record, the DNAT join, then every sink
//	history     sink: the ring of connection events the API answers from
//	workloads   sink: ended connections by Kubernetes workload
//	tracing     sink: one OTLP trace per connection (exporters/otlp)
//	metrics     the Prometheus sources, one per file (exporters/prom)
//	web         the HTTP handlers: /metrics, the API (agent/api), on-demand capture, probes
//	server      the listeners, their bounds and client identity
//
// Beside them: conntrack (the kernel table over netlink), kube (Kubernetes
// names), policy (whether NetworkPolicies explain a failed connection:
// the fan-out asks it for each failed connection, the history's progress
// loop for each unanswered one), mtu (the MTU check and the PMTU log),
// ondemand (tcpdump filters and bounded captures) and netstat (the
// kernel's own counters).
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
// New validates the configuration, checks privileges, opens the namespace
// and binds the listeners, so every configuration error surfaces before
// Run. Run serves HTTP at once, opens conntrack and the trace exporter,
// then runs the metadata source, the workers, the history's progress loop
// and the tracer until its context is cancelled or a part fails. It then
// stops in order: follow streams end, requests in flight end (captures
// write their trailers), the sources stop, the tracer flushes, conntrack
// closes.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/sync/errgroup"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/layerscope/layerscope/agent/conntrack"
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/history"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/agent/metrics"
	"github.com/layerscope/layerscope/agent/mtu"
	"github.com/layerscope/layerscope/agent/ondemand"
	"github.com/layerscope/layerscope/agent/policy"
	"github.com/layerscope/layerscope/agent/server"
	"github.com/layerscope/layerscope/agent/tracing"
	agentweb "github.com/layerscope/layerscope/agent/web"
	"github.com/layerscope/layerscope/agent/workers"
	"github.com/layerscope/layerscope/agent/workloads"
	"github.com/layerscope/layerscope/exporters/prom"
	"github.com/layerscope/layerscope/internal/caps"
	"github.com/layerscope/layerscope/internal/nsenter"
)

// Agent is one node agent. Create it with New, run it with Run.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	ns        *nsenter.NS
	node      string
	kube      *kube.Source
	policies  *policy.Records // nil: failed connections are not explained
	history   *history.Ring
	services  *correlate.Services
	workloads *workloads.Tally
	tracer    *tracing.Tracer
	fanout    *correlate.Fanout
	mtu       *mtu.Monitor
	pmtu      *mtu.PMTULog
	workers   *workers.Set
	handlers  *agentweb.Handlers
	reg       *prometheus.Registry
	srv       *server.Server
	conntrack atomic.Pointer[conntrack.Watcher]
}

// shutdownGrace is how long Run waits, from the start of its stop, for
// requests in flight to end and then for the trace exporter to send what
// it holds (which gets at least a second more).
const shutdownGrace = 5 * time.Second

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
	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent"), node: nodeName(&cfg),
		services: correlate.NewServices(correlate.ServicesConfig{})}
	if _, _, err := net.SplitHostPort(cfg.MetricsAddr); err != nil {
		return nil, fmt.Errorf("--metrics-addr %q: %w", cfg.MetricsAddr, err)
	}
	if cfg.API.ProgressInterval < 0 || cfg.API.FollowWriteTimeout < 0 {
		return nil, fmt.Errorf("--api-progress-interval and --api-follow-timeout must not be negative")
	}
	var err error
	if a.history, err = history.New(&history.Config{Size: cfg.API.HistorySize}); err != nil {
		return nil, fmt.Errorf("--api-history-size %d: %w", cfg.API.HistorySize, err)
	}
	if cfg.WebConfigFile != "" {
		if err := web.Validate(cfg.WebConfigFile); err != nil {
			return nil, fmt.Errorf("--web-config-file %s: %w", cfg.WebConfigFile, err)
		}
	}
	if !cfg.SkipPrivilegeCheck {
		if err := caps.Check(cfg.NetNS != ""); err != nil {
			return nil, err
		}
	}
	if a.ns, err = nsenter.Open(cfg.NetNS); err != nil {
		return nil, fmt.Errorf("--netns: %w", err)
	}
	if err := a.construct(); err != nil {
		if a.srv != nil {
			_ = a.srv.Shutdown(context.Background())
		}
		a.ns.Close()
		return nil, err
	}
	return a, nil
}

// construct builds the parts in data-flow order, once the namespace is
// open.
func (a *Agent) construct() error {
	cfg, log := &a.cfg, a.cfg.Logger
	var err error
	if a.kube, err = kube.Open(kube.Config{Mode: cfg.Kube.Mode, File: cfg.Kube.File, Kubeconfig: cfg.Kube.Kubeconfig,
		Node: cfg.Node, ReloadInterval: cfg.Kube.ReloadInterval, Logger: log}); err != nil {
		return err
	}
	store := a.kube.Store()
	lookup := correlate.Lazy(a.translator)
	a.mtu, a.pmtu = mtu.NewMonitor(a.ns, log), mtu.NewPMTULog(log)
	a.workloads = workloads.New(store, cfg.Kube.PodNames, workloads.DefaultMax)
	a.fanout = &correlate.Fanout{Translator: lookup}
	if (a.kube.Client() != nil || a.kube.File()) && !cfg.Kube.NoPolicies {
		a.policies = &policy.Records{Store: policy.NewStore(), Denied: &policy.Denied{ByPod: cfg.Kube.PolicyPodNames}, Backends: store.Backends}
		a.fanout.Policy = a.policies.Final
		a.kube.OnFile(a.filePolicies)
	}
	if a.workers, err = workers.New(workers.Config{Capture: cfg.Capture, NetNS: a.ns, Logger: log, OnRecords: a.fanout.OnRecords,
		Translate: lookup, MTU: a.mtu, PMTU: a.pmtu, CompileFilter: ondemand.CompileBPF}); err != nil {
		return err
	}
	if cfg.Traces.Version == "" {
		cfg.Traces.Version = cfg.Version
	}
	a.tracer = tracing.New(cfg.Traces, a.node, store, a.workers, a.pmtu, log)
	a.fanout.Sinks = []correlate.Sink{a.history, a.services, a.workloads, a.tracer}
	if cfg.CaptureKubeAuth != "" {
		if !cfg.OnDemand.Enabled {
			return fmt.Errorf("--capture-api-kubernetes-auth without --capture-api: there are no captures to authorize")
		}
		c := a.kube.Client()
		if c == nil {
			return fmt.Errorf("--capture-api-kubernetes-auth checks capture clients with the Kubernetes API, which this agent does not use: give --k8s-metadata=api, or run it in a pod (auto)")
		}
		cfg.OnDemand.KubeAuth = agentweb.NewKubeAuth(c, cfg.CaptureKubeAuth, a.node)
	}
	if a.handlers, err = agentweb.New(agentweb.Config{
		Node: a.node, Version: cfg.Version, Logger: log, History: a.history, FollowWriteTimeout: cfg.API.FollowWriteTimeout,
		Health: a.workers, Rings: a.workers, LinkNames: a.workers, Links: a.workers, Flows: a.workers.Table(),
		Conntrack: a.conntrack.Load, Services: a.services, Kube: store, MTU: a.mtu, PMTU: a.pmtu,
		OnDemand: cfg.OnDemand, NetNS: a.ns,
	}); err != nil {
		return err
	}
	col, err := prom.NewCollector(log,
		prom.BuildInfo(cfg.Version, cfg.Revision),
		metrics.Ready(a.workers.Ready),
		metrics.Links(a.ns),
		metrics.MTU(a.mtu),
		metrics.Kernel(a.ns),
		metrics.Capture(a.workers),
		metrics.Pipeline(a.workers.Workers()),
		metrics.FlowTable(a.workers.Table()),
		metrics.Conntrack(a.conntrack.Load, cfg.Conntrack.PerCPU),
		metrics.Services(a.services, store, metrics.ServiceOptions{Backends: cfg.Kube.ServiceBackends, MaxSeries: cfg.Kube.ServiceSeries}),
		metrics.API(a.history, a.handlers),
		metrics.Kube(store, a.conntrack.Load, cfg.Kube.EndpointSeries),
		metrics.Workloads(a.workloads, store, cfg.Kube.WorkloadSeries),
		metrics.Policy(a.denied()),
		metrics.OTLP(a.tracer.Exporter),
	)
	if err != nil {
		return err
	}
	if a.reg, err = prom.NewRegistry(col); err != nil {
		return err
	}
	a.handlers.SetGatherer(a.reg)
	hc := cfg.HTTP
	hc.Addr, hc.WebConfigFile, hc.HealthAddr = cfg.MetricsAddr, cfg.WebConfigFile, cfg.HealthAddr
	hc.SocketPath, hc.SocketGroup = cfg.APISocket, cfg.APISocketGroup
	hc.Handler, hc.Health, hc.Logger = a.handlers.Handler(), a.handlers.HealthHandler(), log
	if a.srv, err = server.New(hc); err != nil {
		return err
	}
	a.handlers.SetServer(a.srv)
	if cfg.OnDemand.KubeAuth != nil && a.srv.BasicAuth() {
		return fmt.Errorf("--capture-api-kubernetes-auth: the --web-config-file lists basic_auth_users, which every request must then carry: a bearer token cannot reach the capture; keep its TLS, drop the users")
	}
	if cfg.OnDemand.Enabled && cfg.OnDemand.KubeAuth == nil && !a.srv.CanIdentify() {
		return fmt.Errorf("--capture-api: on-demand captures hand out whole packets and are served only to authenticated clients: " +
			"add --web-config-file with basic_auth_users or verified client certificates, --api-socket, or --capture-api-kubernetes-auth")
	}
	return nil
}

// denied is the denial count of the policy evaluation, nil without one.
func (a *Agent) denied() *policy.Denied {
	if a.policies == nil {
		return nil
	}
	return a.policies.Denied
}

// explainActive explains unanswered active connections, nil without a
// policy evaluation.
func (a *Agent) explainActive() history.Explain {
	if a.policies == nil {
		return nil
	}
	return a.policies.Active
}

// watchPolicies feeds the policy store from the API until ctx is done,
// logging list errors once per failure streak and each policy left out.
func (a *Agent) watchPolicies(ctx context.Context) {
	log := a.log.With("component", "policy")
	var failing atomic.Bool
	policy.Watch(ctx, a.kube.Client(), a.policies.Store, kube.DefaultResync, func(err error) {
		switch {
		case err == nil && failing.Swap(false):
			log.Info("NetworkPolicies, namespaces and pods listed again")
		case err != nil && !failing.Swap(true):
			log.Warn("cannot list NetworkPolicies, namespaces or pods (RBAC: the agent needs list and watch on networking.k8s.io networkpolicies, namespaces and pods): failed connections are not explained by policy until it can", "err", err)
		}
	}, func(p *networkingv1.NetworkPolicy, err error) {
		log.Warn("NetworkPolicy left out of the evaluation", "namespace", p.Namespace, "name", p.Name, "err", err)
	})
	<-ctx.Done()
}

// filePolicies replaces the policy store's content with the metadata
// file's NetworkPolicies, Namespaces and Pods.
func (a *Agent) filePolicies(objs []runtime.Object) {
	for ref, err := range a.policies.Store.Replace(objs) {
		a.log.Warn("NetworkPolicy of the metadata file left out of the evaluation", "file", a.cfg.Kube.File, "policy", ref.String(), "err", err)
	}
}

// translator is the conntrack watcher once Run opened it.
func (a *Agent) translator() correlate.Translator {
	if w := a.conntrack.Load(); w != nil {
		return w
	}
	return nil
}

// nodeName resolves this node's name once: Config.Node, else the base
// name of the namespace, else the host name.
func nodeName(cfg *Config) string {
	if cfg.Node != "" {
		return cfg.Node
	}
	if cfg.NetNS != "" {
		return filepath.Base(cfg.NetNS)
	}
	h, _ := os.Hostname()
	return h
}

// Addr returns the address the HTTP endpoint listens on.
func (a *Agent) Addr() net.Addr { return a.srv.Addr() }

// HealthAddr returns the address of the health listener, nil without one.
func (a *Agent) HealthAddr() net.Addr { return a.srv.HealthAddr() }

// Registry returns the agent's Prometheus registry.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// History returns the agent's ring of recent connection events.
func (a *Agent) History() *history.Ring { return a.history }

// Run serves HTTP and runs the parts until ctx is cancelled or one fails;
// it then stops everything in order and returns.
func (a *Agent) Run(ctx context.Context) error {
	defer a.ns.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runCtx, stopSources := context.WithCancel(context.Background())
	defer stopSources()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := a.srv.Serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	a.log.Info("agent started", "netns", a.cfg.NetNS, "addr", a.srv.Addr().String())
	// Stopping: follow streams end, requests in flight end (captures write
	// their trailers), then the sources stop.
	var stopping atomic.Int64 // unix ns when the stop began
	g.Go(func() error {
		<-gctx.Done()
		stopping.Store(time.Now().UnixNano())
		a.handlers.Close()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = a.srv.Shutdown(sctx)
		stopSources()
		return nil
	})
	if err := a.open(runCtx); err != nil {
		cancel() // the server shuts down
		_ = g.Wait()
		a.close(time.Now().Add(shutdownGrace))
		return err
	}
	g.Go(func() error { a.kube.Run(runCtx); return nil })
	if a.policies != nil && a.kube.Client() != nil {
		g.Go(func() error { a.watchPolicies(runCtx); return nil })
	}
	g.Go(func() error {
		if err := a.workers.Run(runCtx); err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		history.RunProgress(runCtx, a.history, a.workers.Table().Snapshot, correlate.Lazy(a.translator), a.explainActive(), a.cfg.API.ProgressInterval)
		return nil
	})
	g.Go(func() error { a.tracer.Run(runCtx); return nil })
	err := g.Wait()
	// After the workers stopped: the tracer exports what they ended, within
	// what is left of shutdownGrace since the stop began, at least a second.
	deadline := time.Unix(0, stopping.Load()).Add(shutdownGrace)
	if least := time.Now().Add(time.Second); deadline.Before(least) {
		deadline = least
	}
	a.close(deadline)
	a.log.Info("agent stopped")
	return err
}

// open starts the watchers Run needs before the sources: conntrack and the
// trace exporter.
func (a *Agent) open(ctx context.Context) error {
	if c := a.cfg.Conntrack; !c.Disabled {
		topN := c.TopN
		if topN <= 0 {
			topN = -1 // no table scan for top holders
		}
		w, err := conntrack.Open(ctx, &conntrack.Config{NetNS: a.ns, TopN: topN, ReadBuffer: c.ReadBuffer, Logger: a.cfg.Logger})
		if err != nil {
			return fmt.Errorf("conntrack: %w (--no-conntrack runs the agent without it)", err)
		}
		a.conntrack.Store(w)
	}
	return a.tracer.Open(ctx)
}

// close flushes the tracer, waiting for its exporter until deadline at
// most, and closes conntrack.
func (a *Agent) close(deadline time.Time) {
	a.tracer.Shutdown(deadline)
	if w := a.conntrack.Load(); w != nil {
		w.Close()
	}
}
