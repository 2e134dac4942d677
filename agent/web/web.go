package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/attach"
	"github.com/layerscope/layerscope/agent/capture"
	"github.com/layerscope/layerscope/agent/conntrack"
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/agent/history"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/agent/mtu"
	"github.com/layerscope/layerscope/agent/ondemand"
	"github.com/layerscope/layerscope/agent/server"
	"github.com/layerscope/layerscope/agent/workers"
	"github.com/layerscope/layerscope/internal/nsenter"
)

// API request limits: requests beyond them get 429 before any work.
const (
	// MaxAPIRequests is the most /api/v1/connections (not following),
	// /api/v1/status and /api/v1/pmtu requests served at once.
	MaxAPIRequests = 8
	// MaxFollowers is the most /api/v1/connections?follow=1 streams.
	MaxFollowers = 32
	// DefaultFollowWriteTimeout is the default Config.FollowWriteTimeout.
	DefaultFollowWriteTimeout = 10 * time.Second
	// apiWriteTimeout bounds the writing of one whole answer: a client
	// that does not read is cut off after it.
	apiWriteTimeout = 30 * time.Second
	readChunk       = 64 // entries copied out of the ring per lock
	followChunk     = 32 // the same for a follower (up to MaxFollowers of them)
)

// Health is what the probes read (workers.Set).
type Health interface {
	// Started reports whether the interfaces present at start were
	// attached (and the agent is not stopping).
	Started() bool
	// Stuck returns the interfaces without a ring past their grace.
	Stuck(now time.Time) []attach.Pending
}

// ready reports readiness: started, and no interface selected since has
// gone without a ring for longer than its grace.
func (h *Handlers) ready() bool {
	return h.cfg.Health.Started() && len(h.cfg.Health.Stuck(time.Now())) == 0
}

// Rings is what the status and the PMTU answer read of the captured
// interfaces (workers.Set).
type Rings interface {
	Captured() (live []workers.Captured, retired capture.Stats)
	Oversize() []workers.Oversize
}

// LinkNames names interfaces by index (workers.Set): ok is false for an
// interface it does not know, whose Link holds only its index and name
// (links.Unknown).
type LinkNames interface {
	LinkOf(idx int) (l links.Link, ok bool)
}

// LinkState is the links as the watch last published them (workers.Set).
type LinkState interface {
	Links() ([]links.Link, bool)
}

// FlowStats is the flow table's accounting (flowtable.Table).
type FlowStats interface {
	Stats() flowtable.Stats
}

// Identifier tells who sent a request (server.Server).
type Identifier interface {
	Identify(r *http.Request) server.Identity
}

// Config gives the handlers what they read. Every field is required
// unless its comment says otherwise.
type Config struct {
	// Node names this node in events and the status; Version is the
	// agent's version in the status.
	Node, Version string
	Logger        *slog.Logger

	History *history.Ring
	// FollowWriteTimeout disconnects a follower whose stream cannot be
	// written for this long. Zero means DefaultFollowWriteTimeout.
	FollowWriteTimeout time.Duration

	Health    Health
	Rings     Rings
	LinkNames LinkNames
	Links     LinkState
	Flows     FlowStats
	// Conntrack returns the watcher, nil while conntrack is not watched.
	Conntrack func() *conntrack.Watcher
	Services  *correlate.Services
	Kube      *kube.Store // nil: no names
	MTU       *mtu.Monitor
	PMTU      *mtu.PMTULog
	// OnDemand bounds /api/v1/capture, served in NetNS.
	OnDemand OnDemandConfig
	NetNS    *nsenter.NS
}

// Handlers serves every endpoint of the agent's listeners.
type Handlers struct {
	cfg      Config
	log      *slog.Logger
	api      *server.Limiter
	follow   *server.Limiter
	capture  *ondemand.Limiter
	dropped  atomic.Uint64 // followers disconnected on a stalled write
	stopping chan struct{} // closed by Close: follow streams end
	stopOnce sync.Once
	who      atomic.Pointer[Identifier]
	listen   atomic.Pointer[func() []server.Stats]
	gatherer atomic.Pointer[prometheus.Gatherer]
	promOnce sync.Once
	prom     http.Handler
}

// SetGatherer sets the registry /metrics serves (the metrics sources read
// the handlers' accounting, so the registry is built after them). Before
// it is set, /metrics answers 503.
func (h *Handlers) SetGatherer(g prometheus.Gatherer) { h.gatherer.Store(&g) }

// New checks cfg and returns the handlers.
func New(cfg Config) (*Handlers, error) {
	if cfg.FollowWriteTimeout < 0 {
		return nil, fmt.Errorf("--api-follow-timeout must not be negative")
	}
	if cfg.FollowWriteTimeout == 0 {
		cfg.FollowWriteTimeout = DefaultFollowWriteTimeout
	}
	if err := cfg.OnDemand.check(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Handlers{
		cfg: cfg, log: cfg.Logger.With("component", "agent"),
		api:      server.NewLimiter("api", MaxAPIRequests),
		follow:   server.NewLimiter("follow", MaxFollowers),
		capture:  ondemand.NewLimiter(cfg.OnDemand.MaxConcurrent),
		stopping: make(chan struct{}),
	}, nil
}

// OnDemand returns the on-demand capture configuration with its defaults.
func (h *Handlers) OnDemand() OnDemandConfig { return h.cfg.OnDemand }

// SetServer tells the handlers the server they are served by: who sent a
// capture request, and the listeners' accounting.
func (h *Handlers) SetServer(s interface {
	Identifier
	Stats() []server.Stats
}) {
	var id Identifier = s
	h.who.Store(&id)
	st := s.Stats
	h.listen.Store(&st)
}

// Close ends the follow streams; the server's shutdown then waits for the
// other requests in flight.
func (h *Handlers) Close() { h.stopOnce.Do(func() { close(h.stopping) }) }

// Handler serves every endpoint. Each route takes GET (and HEAD where a
// HEAD costs nothing); other methods get 405 with Allow, unknown paths 404.
func (h *Handlers) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathMetrics, func(w http.ResponseWriter, r *http.Request) {
		if m := h.metrics(); m != nil {
			m.ServeHTTP(w, r)
			return
		}
		http.Error(w, "metrics not ready", http.StatusServiceUnavailable)
	})
	h.RegisterAPI(mux)
	mux.HandleFunc("GET "+api.PathCapture, h.serveCapture)
	h.registerHealth(mux)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "layerscope agent:", api.PathMetrics, api.PathHealthz, api.PathReadyz, api.PathConnections, api.PathStatus, api.PathPMTU, api.PathCapture)
	})
	return mux
}

// RegisterAPI adds the JSON API's handlers to mux.
func (h *Handlers) RegisterAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET "+api.PathConnections, h.serveConnections)
	mux.Handle("GET "+api.PathStatus, h.api.Wrap(http.HandlerFunc(h.serveStatus)))
	mux.Handle("GET "+api.PathPMTU, h.api.Wrap(http.HandlerFunc(h.servePMTU)))
}

// HealthHandler serves the probes only: it reveals nothing but health.
func (h *Handlers) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	h.registerHealth(mux)
	return mux
}

// metrics is promhttp's handler of the registry, built once; nil before
// SetGatherer.
func (h *Handlers) metrics() http.Handler {
	g := h.gatherer.Load()
	if g == nil {
		return nil
	}
	h.promOnce.Do(func() {
		h.prom = promhttp.HandlerFor(*g, promhttp.HandlerOpts{
			ErrorLog:            slog.NewLogLogger(h.log.Handler(), slog.LevelError),
			ErrorHandling:       promhttp.ContinueOnError,
			MaxRequestsInFlight: 4,
			Timeout:             10 * time.Second,
		})
	})
	return h.prom
}

func (h *Handlers) registerHealth(mux *http.ServeMux) {
	mux.HandleFunc("GET "+api.PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET "+api.PathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		if !h.cfg.Health.Started() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if st := h.cfg.Health.Stuck(time.Now()); len(st) > 0 {
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

// FollowersDropped counts the followers disconnected for a stalled write.
func (h *Handlers) FollowersDropped() uint64 { return h.dropped.Load() }

// Rejected counts the requests refused for a concurrency limit, by kind.
func (h *Handlers) Rejected() []server.Rejection {
	return []server.Rejection{
		{Kind: h.api.Name(), N: h.api.Rejected()},
		{Kind: h.follow.Name(), N: h.follow.Rejected()},
		{Kind: "capture", N: h.capture.Rejected() + h.kubeRejected()},
	}
}

// kubeRejected counts the captures refused because too many tokens were
// under review.
func (h *Handlers) kubeRejected() uint64 {
	if k := h.cfg.OnDemand.KubeAuth; k != nil {
		return k.Rejected()
	}
	return 0
}

// Listeners returns the server's per-listener accounting (none before
// SetServer).
func (h *Handlers) Listeners() []server.Stats {
	if f := h.listen.Load(); f != nil {
		return (*f)()
	}
	return nil
}

// InFlight returns the API requests (not following) being served.
func (h *Handlers) InFlight() int { return h.api.InFlight() }
