package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// peerCheck decides whether an accepted connection may be served; it
// returns the peer's identity.
type peerCheck func(net.Conn) (Identity, error)

// listener bounds the connections of one listener: at most max open; a new
// one beyond that evicts the oldest connection that is idle or has not
// sent a request, else it is closed at once.
type listener struct {
	net.Listener
	name  string
	max   int
	check peerCheck
	log   *slog.Logger

	mu    sync.Mutex
	conns map[*conn]struct{}

	evicted, refused, peerRefused atomic.Uint64
}

// conn is an accepted connection with the state the HTTP server last
// reported for it.
type conn struct {
	net.Conn
	l     *listener
	id    Identity
	state atomic.Int32 // http.ConnState
	since atomic.Int64 // unix nanoseconds of the last state change
	once  sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return err
}

func newListener(l net.Listener, name string, max int, check peerCheck, log *slog.Logger) *listener {
	return &listener{Listener: l, name: name, max: max, check: check, log: log.With("listener", name), conns: map[*conn]struct{}{}}
}

// Accept returns the next connection that may be served.
func (l *listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &conn{Conn: nc, l: l}
		c.state.Store(int32(http.StateNew))
		c.since.Store(time.Now().UnixNano())
		if l.check != nil {
			id, err := l.check(nc)
			if err != nil {
				l.peerRefused.Add(1)
				l.log.Warn("socket peer refused", "err", err)
				_ = nc.Close()
				continue
			}
			c.id = id
		}
		if !l.admit(c) {
			l.refused.Add(1)
			_ = nc.Close()
			continue
		}
		return c, nil
	}
}

// admit adds c, first evicting, when the listener is full, the oldest
// idle keep-alive connection, else the oldest connection that has not sent
// a byte of a request (none is waiting in its socket): a flood of silent
// connections then evicts itself, while a client that sent its request,
// even one not read yet, keeps its connection. It reports false when every
// open connection is serving or has sent a request.
func (l *listener) admit(c *conn) bool {
	l.mu.Lock()
	var victim *conn
	if len(l.conns) >= l.max {
		var idle, silent *conn
		for o := range l.conns {
			t := o.since.Load()
			switch http.ConnState(o.state.Load()) {
			case http.StateIdle:
				if idle == nil || t < idle.since.Load() {
					idle = o
				}
			case http.StateNew:
				if (silent == nil || t < silent.since.Load()) && pending(o.Conn) == 0 {
					silent = o
				}
			}
		}
		victim = idle
		if victim == nil {
			victim = silent
		}
		if victim == nil {
			l.mu.Unlock()
			return false
		}
		delete(l.conns, victim)
	}
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		_ = victim.Conn.Close()
	}
	return true
}

// pending returns the bytes waiting to be read in c's socket (-1 when
// unknown).
func pending(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	_ = rc.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			n = v
		}
	})
	return n
}

// unwrap returns the listener's conn under a TLS connection.
func unwrap(nc net.Conn) *conn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, _ := nc.(*conn)
	return c
}

// connState records the HTTP server's view of a connection.
func (l *listener) connState(nc net.Conn, st http.ConnState) {
	c := unwrap(nc)
	if c == nil {
		return
	}
	c.state.Store(int32(st))
	c.since.Store(time.Now().UnixNano())
	if st == http.StateClosed || st == http.StateHijacked {
		c.once.Do(func() {
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		})
	}
}

type ctxKey struct{}

// connContext attaches the connection's verified peer to its requests.
func (l *listener) connContext(ctx context.Context, nc net.Conn) context.Context {
	if c := unwrap(nc); c != nil && c.id.Kind != "" {
		return context.WithValue(ctx, ctxKey{}, c.id)
	}
	return ctx
}

func (l *listener) stats() Stats {
	l.mu.Lock()
	n := len(l.conns)
	l.mu.Unlock()
	return Stats{Listener: l.name, Open: n, Evicted: l.evicted.Load(), Refused: l.refused.Load(), PeerRefused: l.peerRefused.Load()}
}

// Close closes the listener; the HTTP server closes its connections.
func (l *listener) Close() error {
	err := l.Listener.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
