package links

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/internal/nsenter"
)

// Config selects the namespace to watch. The zero value watches the
// caller's own namespace.
type Config struct {
	// NetNS is the network namespace; nil means the caller's. The netlink
	// sockets are opened in it directly (netlink.Config.NetNS), without
	// switching the calling thread.
	NetNS *nsenter.NS

	// ReadBuffer is the notification socket's receive buffer in bytes; 0
	// means 4 MiB. A larger buffer rides out bigger bursts (many pods
	// created at once) before ENOBUFS forces a full dump.
	ReadBuffer int

	// Logger receives resyncs at Info level; nil means slog.Default().
	Logger *slog.Logger
}

const defaultReadBuffer = 4 << 20

func (c *Config) dial(groups uint32) (*netlink.Conn, error) {
	nc := &netlink.Config{Groups: groups}
	if fd := c.NetNS.Fd(); fd >= 0 {
		nc.NetNS = fd
	}
	conn, err := netlink.Dial(unix.NETLINK_ROUTE, nc)
	if err != nil {
		return nil, &OpError{Op: "dial", Err: err}
	}
	return conn, nil
}

// List returns every link of the namespace, classified, with fresh
// statistics, in index order.
func List(cfg Config) ([]Link, error) {
	conn, err := cfg.dial(0)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	s, err := dump(conn)
	if err != nil {
		return nil, err
	}
	return sorted(s.classify()), nil
}

// dump reads all links and routes into a new state.
func dump(conn *netlink.Conn) (*state, error) {
	s := newState()
	lreq, _ := (&rtnetlink.LinkMessage{Family: unix.AF_UNSPEC}).MarshalBinary()
	msgs, err := conn.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request | netlink.Dump},
		Data:   lreq,
	})
	if err != nil {
		return nil, &OpError{Op: "dump links", Err: err}
	}
	for _, m := range msgs {
		if err := s.apply(m); err != nil {
			return nil, err
		}
	}
	rreq, _ := (&rtnetlink.RouteMessage{Family: unix.AF_UNSPEC}).MarshalBinary()
	msgs, err = conn.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETROUTE, Flags: netlink.Request | netlink.Dump},
		Data:   rreq,
	})
	if err != nil {
		return nil, &OpError{Op: "dump routes", Err: err}
	}
	for _, m := range msgs {
		if err := s.apply(m); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// apply records one rtnetlink message.
func (s *state) apply(m netlink.Message) error {
	switch m.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		var lm rtnetlink.LinkMessage
		if err := lm.UnmarshalBinary(m.Data); err != nil {
			return fmt.Errorf("%w: link: %v", ErrMessage, err)
		}
		if lm.Family == unix.AF_BRIDGE {
			// The bridge's own view of its ports: RTM_DELLINK here means
			// "left the bridge", not "deleted". The AF_UNSPEC messages
			// that accompany it carry everything needed.
			return nil
		}
		pa := parsePairAttrs(m.Data)
		if m.Header.Type == unix.RTM_DELLINK {
			s.deleteLink(int(lm.Index), pa)
			return nil
		}
		s.applyLink(&lm, pa)
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		var rm rtnetlink.RouteMessage
		if err := rm.UnmarshalBinary(m.Data); err != nil {
			return fmt.Errorf("%w: route: %v", ErrMessage, err)
		}
		s.applyRoute(&rm, m.Header.Type == unix.RTM_DELROUTE)
	}
	return nil
}

// Watch delivers a Snapshot of the namespace's links to fn, then every
// change, until ctx is done (it returns nil) or rtnetlink fails (it returns
// the error). See the package documentation for ordering and concurrency.
func Watch(ctx context.Context, cfg Config, fn func(Event)) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "links", "netns", cfg.NetNS.Name())
	events, err := cfg.dial(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
	if err != nil {
		return err
	}
	stopClose := context.AfterFunc(ctx, func() { events.Close() })
	defer func() {
		if stopClose() {
			events.Close()
		}
	}()
	rb := cfg.ReadBuffer
	if rb == 0 {
		rb = defaultReadBuffer
	}
	if err := events.SetReadBuffer(rb); err != nil {
		return &OpError{Op: "set read buffer", Err: err}
	}
	// Subscribed before the dump: nothing between the two is missed, and
	// notifications older than the dump only repeat what it showed.
	req, err := cfg.dial(0)
	if err != nil {
		return err
	}
	defer req.Close()

	s, err := dump(req)
	if err != nil {
		return err
	}
	cur := s.classify()
	fn(Event{Type: Snapshot, Links: sorted(cur)})

	for {
		msgs, err := events.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if !errors.Is(err, unix.ENOBUFS) {
				return &OpError{Op: "receive", Err: err}
			}
			log.Info("link notifications lost; dumping again")
			if s, err = dump(req); err != nil {
				return err
			}
		}
		for _, m := range msgs {
			if err := s.apply(m); err != nil {
				log.Debug("skipping message", "err", err)
			}
		}
		next := s.classify()
		for _, ev := range diff(cur, next) {
			fn(ev)
		}
		cur = next
	}
}
