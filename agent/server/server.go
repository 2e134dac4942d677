package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// Defaults of the zero Config fields.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 90 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConns          = 256
)

// Config configures a Server. Only Addr and Handler are required.
type Config struct {
	// Addr is the host:port of the main listener. Port 0 picks a free
	// port (see Server.Addr).
	Addr string
	// WebConfigFile is an exporter-toolkit web configuration (TLS, client
	// certificates, basic auth) applied to the main listener. Empty serves
	// plain HTTP without authentication.
	WebConfigFile string
	// HealthAddr, when set, is a host:port served without authentication
	// with Health only. Empty means no health listener.
	HealthAddr string
	// SocketPath, when set, is a unix socket served with Handler, whose
	// peers are checked with SO_PEERCRED. An existing socket file at the
	// path is replaced; any other file there is an error.
	SocketPath string
	// SocketGroup is a group name or numeric gid whose processes may use
	// the socket besides root; it also owns the socket file. Empty means
	// root only.
	SocketGroup string
	// Handler serves the main listener and the socket.
	Handler http.Handler
	// Health serves the health listener. Nil means Handler.
	Health http.Handler
	// MaxConns is the most connections open at once per listener. Zero
	// means DefaultMaxConns.
	MaxConns int
	// Timeouts of http.Server; zero means the Default* constants.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header (the URL included). Zero
	// means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Logger receives the server's logs. Nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) withDefaults() Config {
	out := *c
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&out.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	set(&out.ReadTimeout, DefaultReadTimeout)
	set(&out.WriteTimeout, DefaultWriteTimeout)
	set(&out.IdleTimeout, DefaultIdleTimeout)
	if out.MaxHeaderBytes == 0 {
		out.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if out.MaxConns == 0 {
		out.MaxConns = DefaultMaxConns
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.Health == nil {
		out.Health = out.Handler
	}
	return out
}

// Server is the agent's HTTP server. Create it with New, run it with Serve
// and stop it with Shutdown.
type Server struct {
	cfg    Config
	log    *slog.Logger
	auth   *webAuth
	base   context.Context
	cancel context.CancelFunc
	lns    []*listener
	srvs   []*http.Server
	serve  []func() error
	once   sync.Once
}

// New checks cfg and binds every listener, so that a wrong address, file
// or group fails at once; errors name the flag.
func New(cfg Config) (*Server, error) {
	c := cfg.withDefaults()
	if c.Handler == nil {
		return nil, fmt.Errorf("%w: no handler", ErrConfig)
	}
	if c.MaxConns < 0 || c.ReadHeaderTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0 || c.MaxHeaderBytes < 0 {
		return nil, fmt.Errorf("%w: --web-max-connections and the HTTP timeouts must not be negative", ErrConfig)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, fmt.Errorf("%w: --metrics-addr %q: %w", ErrConfig, c.Addr, err)
	}
	auth, err := loadWebAuth(c.WebConfigFile)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, log: c.Logger.With("component", "http"), auth: auth}
	s.base, s.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			s.closeListeners()
		}
	}()

	tcp, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", c.Addr, err)
	}
	main := s.track(tcp, "main", nil)
	srv := s.newHTTPServer(c.Handler, main)
	flags := &web.FlagConfig{WebListenAddresses: &[]string{c.Addr}, WebSystemdSocket: new(bool), WebConfigFile: &c.WebConfigFile}
	s.add(srv, func() error { return web.Serve(main, srv, flags, s.log) })

	if c.HealthAddr != "" {
		if _, _, err := net.SplitHostPort(c.HealthAddr); err != nil {
			return nil, fmt.Errorf("%w: --health-addr %q: %w", ErrConfig, c.HealthAddr, err)
		}
		hl, err := net.Listen("tcp", c.HealthAddr)
		if err != nil {
			return nil, fmt.Errorf("--health-addr %s: %w", c.HealthAddr, err)
		}
		health := s.track(hl, "health", nil)
		hsrv := s.newHTTPServer(c.Health, health)
		s.add(hsrv, func() error { return hsrv.Serve(health) })
	}
	if c.SocketPath != "" {
		ul, check, err := listenUnix(c.SocketPath, c.SocketGroup)
		if err != nil {
			return nil, err
		}
		sock := s.track(ul, "socket", check)
		ssrv := s.newHTTPServer(c.Handler, sock)
		s.add(ssrv, func() error { return ssrv.Serve(sock) })
	}
	ok = true
	return s, nil
}

func (s *Server) track(l net.Listener, name string, check peerCheck) *listener {
	tl := newListener(l, name, s.cfg.MaxConns, check, s.log)
	s.lns = append(s.lns, tl)
	return tl
}

func (s *Server) add(srv *http.Server, serve func() error) {
	s.srvs = append(s.srvs, srv)
	s.serve = append(s.serve, serve)
}

func (s *Server) newHTTPServer(h http.Handler, l *listener) *http.Server {
	c := &s.cfg
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.base },
		ConnContext:       l.connContext,
		ConnState:         l.connState,
	}
}

func (s *Server) closeListeners() {
	for _, l := range s.lns {
		_ = l.Close()
	}
}

// Addr returns the address of the main listener.
func (s *Server) Addr() net.Addr { return s.lns[0].Addr() }

// HealthAddr returns the address of the health listener, nil without one.
func (s *Server) HealthAddr() net.Addr {
	for _, l := range s.lns {
		if l.name == "health" {
			return l.Addr()
		}
	}
	return nil
}

// CanIdentify reports whether some client can be identified: the socket
// is served, or the web configuration lists basic-auth users or verifies
// client certificates.
func (s *Server) CanIdentify() bool {
	return s.cfg.SocketPath != "" || s.auth.identifies()
}

// BasicAuth reports whether the web configuration asks every request on
// the main listener for a basic-auth user (so no other credential, such as
// a bearer token, gets through it).
func (s *Server) BasicAuth() bool { return len(s.auth.users) > 0 }

// Serve serves every listener until Shutdown; it returns the first error
// of a listener other than http.ErrServerClosed, nil after Shutdown.
func (s *Server) Serve() error {
	errs := make(chan error, len(s.serve))
	for _, f := range s.serve {
		go func() { errs <- f() }()
	}
	var err error
	for range s.serve {
		if e := <-errs; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
			err = e
			s.cancel()
			for _, srv := range s.srvs {
				_ = srv.Close()
			}
		}
	}
	return err
}

// Shutdown cancels every request in flight, waits for their handlers until
// ctx ends and closes what is left. It returns nil once the listeners are
// closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		s.cancel()
		var wg sync.WaitGroup
		for _, srv := range s.srvs {
			wg.Go(func() {
				if err := srv.Shutdown(ctx); err != nil {
					s.log.Warn("connections still open at shutdown were closed", "err", err)
					_ = srv.Close()
				}
			})
		}
		wg.Wait()
		if s.cfg.SocketPath != "" {
			_ = os.Remove(s.cfg.SocketPath)
		}
	})
	return nil
}

// Stats are the server's connection counts per listener.
type Stats struct {
	Listener string
	Open     int
	// Evicted counts idle or silent connections closed to make room for a
	// new one; Refused new connections closed because every open one was
	// busy; PeerRefused unix-socket peers that were neither root nor of
	// the socket's group.
	Evicted, Refused, PeerRefused uint64
}

// Stats returns the connection counts of each listener.
func (s *Server) Stats() []Stats {
	out := make([]Stats, 0, len(s.lns))
	for _, l := range s.lns {
		out = append(out, l.stats())
	}
	return out
}
