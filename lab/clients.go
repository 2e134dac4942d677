package lab

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/internal/nsenter"
)

// dialTCP opens a TCP connection from inside a member's namespace and
// returns the local address the kernel picked, also when the connection
// fails (refused or timed out), so that the attempt can be found in the
// conntrack table.
func (l *Lab) dialTCP(ctx context.Context, member string, to netip.AddrPort, timeout time.Duration) (net.Conn, netip.AddrPort, error) {
	ns, err := l.Namespace(member)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	var fd int
	var src netip.AddrPort
	err = ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		return nil
	})
	if err != nil {
		return nil, src, err
	}
	fail := func(err error) (net.Conn, netip.AddrPort, error) {
		unix.Close(fd)
		return nil, src, &net.OpError{Op: "dial", Net: "tcp4", Addr: net.TCPAddrFromAddrPort(to), Err: err}
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Addr: to.Addr().As4(), Port: int(to.Port())})
	if sa, gerr := unix.Getsockname(fd); gerr == nil {
		if in, ok := sa.(*unix.SockaddrInet4); ok {
			src = netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port))
		}
	}
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return fail(os.NewSyscallError("connect", err))
	}
	if err != nil {
		deadline := time.Now().Add(timeout)
		for {
			left := time.Until(deadline)
			if left <= 0 {
				return fail(os.ErrDeadlineExceeded)
			}
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
			wait := min(left, 50*time.Millisecond)
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			n, perr := unix.Poll(pfd, int(wait.Milliseconds())+1)
			if perr != nil && !errors.Is(perr, unix.EINTR) {
				return fail(os.NewSyscallError("poll", perr))
			}
			if n > 0 {
				break
			}
		}
		soerr, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if gerr != nil {
			return fail(os.NewSyscallError("getsockopt", gerr))
		}
		if soerr != 0 {
			return fail(os.NewSyscallError("connect", unix.Errno(soerr)))
		}
	}
	f := os.NewFile(uintptr(fd), "tcp")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, src, err
	}
	return c, src, nil
}

// DialTCP opens a TCP connection from a node's or pod's namespace. The
// connection keeps that namespace; use it from any goroutine.
func (l *Lab) DialTCP(ctx context.Context, member string, to netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	c, _, err := l.dialTCP(ctx, member, to, timeout)
	return c, err
}

// request performs one HTTP/1.1 GET over a fresh connection (and TLS when
// tlsCfg is set) from member to target, as a Request record.
func (l *Lab) request(ctx context.Context, member string, target netip.AddrPort, path string, tlsCfg *tls.Config, timeout time.Duration) Request {
	q := Request{Client: member, Target: target, Path: path}
	start := time.Now()
	defer func() { q.Duration = time.Since(start) }()
	conn, src, err := l.dialTCP(ctx, member, target, timeout)
	q.Source = src
	if err != nil {
		q.setErr(err)
		return q
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	rw := conn
	if tlsCfg != nil {
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			q.setErr(err)
			return q
		}
		q.TLSVersion = tls.VersionName(tc.ConnectionState().Version)
		rw = tc
	}
	if _, err := fmt.Fprintf(rw, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: layerscope-lab\r\nConnection: close\r\n\r\n", path, target); err != nil {
		q.setErr(err)
		return q
	}
	resp, err := http.ReadResponse(bufio.NewReader(rw), nil)
	if err != nil {
		q.setErr(err)
		return q
	}
	resp.Body.Close()
	q.Status = resp.StatusCode
	q.Backend = resp.Header.Get(HeaderBackend)
	return q
}

func (q *Request) setErr(err error) {
	q.Err = err.Error()
	q.Refused = errors.Is(err, syscall.ECONNREFUSED)
}

// readNetnsInt reads an integer sysctl inside a member's namespace.
func readNetnsInt(ns *nsenter.NS, key string) (int, error) {
	var v int
	err := ns.Do(func() error {
		b, err := os.ReadFile("/proc/sys/" + filepathFromKey(key))
		if err != nil {
			return err
		}
		v, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	return v, err
}

// SNMP reads /proc/net/snmp inside a member's namespace and returns its
// counters as "Group.Name" → value (for example "Ip.FragCreates",
// "Icmp.OutDestUnreachs", "IcmpMsg.OutType3").
func (l *Lab) SNMP(member string) (map[string]int64, error) {
	ns, err := l.Namespace(member)
	if err != nil {
		return nil, err
	}
	var b []byte
	// /proc/net follows the process's main thread; thread-self follows the
	// thread that entered the namespace.
	if err := ns.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	}); err != nil {
		return nil, err
	}
	return ParseSNMP(b), nil
}

// ParseSNMP parses the header/value line pairs of /proc/net/snmp.
func ParseSNMP(b []byte) map[string]int64 {
	out := map[string]int64{}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) != len(vals) || len(keys) == 0 || keys[0] != vals[0] {
			continue
		}
		group := strings.TrimSuffix(keys[0], ":")
		for j := 1; j < len(keys); j++ {
			if v, err := strconv.ParseInt(vals[j], 10, 64); err == nil {
				out[group+"."+keys[j]] = v
			}
		}
	}
	return out
}

var netDialer = net.Dialer{Timeout: 300 * time.Millisecond}
