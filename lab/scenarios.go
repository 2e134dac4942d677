package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/layerscope/layerscope/internal/nsenter"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Traffic runs a scenario (one of Scenarios) and reports what it did. All
// traffic stays between the lab's namespaces. Scenarios that change the lab
// (dead-backend, mtu) put it back before returning, also on error.
func (l *Lab) Traffic(ctx context.Context, scenario string, opts TrafficOptions) (*Report, error) {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if scenario != ScenarioConntrackFlood || opts.ConntrackMax <= 0 {
		release, err := HoldConntrackMax(&l.cfg)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	r := newReport(scenario, l.cfg.Prefix)
	var err error
	switch scenario {
	case ScenarioService:
		err = l.service(ctx, opts, r)
	case ScenarioDeadBackend:
		err = l.deadBackend(ctx, opts, r)
	case ScenarioMTU:
		err = l.mtu(ctx, opts, r)
	case ScenarioConntrackFlood:
		err = l.flood(ctx, opts, r)
	case ScenarioDNS:
		err = l.dns(ctx, opts, r)
	case ScenarioHTTP:
		err = l.http(ctx, opts, r, false)
	case ScenarioTLS:
		err = l.http(ctx, opts, r, true)
	default:
		return nil, fmt.Errorf("%w %q (one of %v)", ErrUnknownScenario, scenario, Scenarios)
	}
	r.Duration = time.Since(r.Started)
	if err != nil {
		return r, fmt.Errorf("scenario %s: %w", scenario, err)
	}
	l.log.Debug("scenario done", "scenario", scenario, "attempted", r.Attempted, "failed", r.Failed,
		"duration_seconds", r.Duration.Seconds())
	return r, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// serviceClient is a client of the service scenario and where it goes.
type serviceClient struct {
	member  string
	target  netip.AddrPort
	natNode string
}

func (l *Lab) serviceClients() []serviceClient {
	var out []serviceClient
	for _, p := range l.Backends() {
		out = append(out, serviceClient{p.Name, ServiceAddr, p.Node})
	}
	// Each node calls the other node's NodePort: the DNAT happens on the
	// target node.
	for i, n := range l.nodes {
		other := l.nodes[1-i]
		out = append(out, serviceClient{n.Name, netip.AddrPortFrom(other.IP, NodePort), other.Name})
	}
	return out
}

// service: every backend pod calls the ClusterIP and each node the other
// node's NodePort, Count times each, one fresh connection per request.
func (l *Lab) service(ctx context.Context, opts TrafficOptions, r *Report) error {
	count := orDefault(opts.Count, 9)
	timeout := orDefault(opts.Timeout, 2*time.Second)
	clients := l.serviceClients()
	w, err := l.watchNAT()
	if err != nil {
		return err
	}
	defer w.stop()
	results := make([][]Request, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			for range count {
				if ctx.Err() != nil {
					return
				}
				q := l.request(ctx, c.member, c.target, "/", nil, timeout)
				q.NATNode = c.natNode
				results[i] = append(results[i], q)
			}
		})
	}
	wg.Wait()
	for _, rs := range results {
		for _, q := range rs {
			r.add(q)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return w.resolve(r)
}

// deadBackend stops pod-c's servers while it stays in the DNAT chain, runs
// the service scenario and starts pod-c again.
func (l *Lab) deadBackend(ctx context.Context, opts TrafficOptions, r *Report) (err error) {
	l.scenarioMu.Lock()
	defer l.scenarioMu.Unlock()
	if err := l.StopBackend(PodC); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.StartBackend(PodC)) }()
	return l.service(ctx, opts, r)
}

// StopBackend stops a backend's HTTP and TLS servers (it stays in the
// Service's DNAT chain); StartBackend starts them again. On a lab from Open
// the request goes to the process serving the lab.
func (l *Lab) StopBackend(pod string) error {
	if l.servers == nil {
		return l.controlRequest("stop", pod)
	}
	if p, ok := l.Pod(pod); !ok || !p.Backend {
		return fmt.Errorf("%w: %q is not a backend", ErrNotFound, pod)
	}
	return l.servers.stopPod(pod)
}

// StartBackend starts a backend's servers stopped by StopBackend.
func (l *Lab) StartBackend(pod string) error {
	if l.servers == nil {
		return l.controlRequest("start", pod)
	}
	if p, ok := l.Pod(pod); !ok || !p.Backend {
		return fmt.Errorf("%w: %q is not a backend", ErrNotFound, pod)
	}
	return l.servers.startPod(pod)
}

// BackendRunning reports whether a backend's servers run in this process
// (always false on a lab from Open).
func (l *Lab) BackendRunning(pod string) bool {
	return l.servers != nil && l.servers.running(pod)
}

// http: pod-a requests /, /missing and /status/503 from every backend's
// pod IP, Count rounds; with TLS on :8443, alternating TLS 1.2 and 1.3.
func (l *Lab) http(ctx context.Context, opts TrafficOptions, r *Report, withTLS bool) error {
	count := orDefault(opts.Count, 3)
	timeout := orDefault(opts.Timeout, 2*time.Second)
	paths := []string{"/", "/missing", "/status/503"}
	n := 0
	for range count {
		for _, p := range l.Backends() {
			for _, path := range paths {
				if err := ctx.Err(); err != nil {
					return err
				}
				port := uint16(ServicePort)
				var cfg *tls.Config
				if withTLS {
					port = TLSPort
					cfg = &tls.Config{ServerName: p.Name, RootCAs: l.CertPool(), MinVersion: tls.VersionTLS12}
					if cfg.RootCAs == nil {
						cfg.InsecureSkipVerify = true // attached lab without its certificates
					}
					if n%2 == 0 {
						cfg.MaxVersion = tls.VersionTLS12
					}
					n++
				}
				r.add(l.request(ctx, PodA, netip.AddrPortFrom(p.IP, port), path, cfg, timeout))
			}
		}
	}
	return nil
}

// dns: pod-a asks the DNS pod for the Service name (NOERROR), an unknown
// name (NXDOMAIN) and a name in the broken zone (SERVFAIL), over UDP.
func (l *Lab) dns(ctx context.Context, opts TrafficOptions, r *Report) error {
	mix := opts.DNSMix
	if mix == [3]int{} {
		c := orDefault(opts.Count, 5)
		mix = [3]int{c, c, c}
	}
	timeout := orDefault(opts.Timeout, 2*time.Second)
	type query struct{ name, want string }
	var qs []query
	for i := 0; i < max(mix[0], mix[1], mix[2]); i++ {
		if i < mix[0] {
			qs = append(qs, query{ServiceName, "NOERROR"})
		}
		if i < mix[1] {
			qs = append(qs, query{fmt.Sprintf("no-such-svc-%d.default.svc.cluster.local.", i), "NXDOMAIN"})
		}
		if i < mix[2] {
			qs = append(qs, query{fmt.Sprintf("api-%d.%s", i, BrokenZone), "SERVFAIL"})
		}
	}
	ns, err := l.Namespace(PodA)
	if err != nil {
		return err
	}
	client := &dns.Client{Net: "udp", Timeout: timeout}
	for _, q := range qs {
		if err := ctx.Err(); err != nil {
			return err
		}
		req := Request{Client: PodA, Target: DNSAddr, Query: q.name, Want: q.want}
		start := time.Now()
		var conn net.Conn
		if err := ns.Do(func() error {
			var err error
			conn, err = net.DialTimeout("udp4", DNSAddr.String(), timeout)
			return err
		}); err != nil {
			req.setErr(err)
			r.add(req)
			continue
		}
		if a, ok := conn.LocalAddr().(*net.UDPAddr); ok {
			req.Source = a.AddrPort()
		}
		m := new(dns.Msg)
		m.SetQuestion(q.name, dns.TypeA)
		resp, _, err := client.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: conn})
		conn.Close()
		req.Duration = time.Since(start)
		if err != nil {
			req.setErr(err)
		} else {
			req.RCode = dns.RcodeToString[resp.Rcode]
		}
		r.add(req)
	}
	return nil
}

// mtu: pod-b gets MTU 1500 (eth0 and its host veth) on the 1450 overlay and
// sends Count UDP datagrams to pod-c without DF, then Count with DF. node-1
// fragments the first kind and answers the second with ICMP frag-needed.
func (l *Lab) mtu(ctx context.Context, opts TrafficOptions, r *Report) (err error) {
	l.scenarioMu.Lock()
	defer l.scenarioMu.Unlock()
	count := orDefault(opts.Count, 5)
	payload := orDefault(opts.PayloadSize, NodeMTU-28)
	m := &MTUReport{PayloadSize: payload, PodMTU: NodeMTU}
	r.MTU = m
	b, _ := l.Pod(PodB)
	c, _ := l.Pod(PodC)
	if m.OverlayMTU, err = l.linkMTU(Node1, VXLANName); err != nil {
		return err
	}
	if err := l.setPodMTU(b, NodeMTU); err != nil {
		return err
	}
	if !opts.KeepMTU {
		defer func() {
			rerr := l.setPodMTU(b, PodMTU)
			m.MTURestored = rerr == nil
			err = errors.Join(err, rerr)
		}()
	}
	bns, err := l.Namespace(PodB)
	if err != nil {
		return err
	}
	// Forget any path MTU learnt by an earlier run, so each run starts from
	// the interface MTU.
	if err := writeSysctl(bns, "net.ipv4.route.flush", "1"); err != nil {
		return err
	}
	// pod-c counts what arrives, by the marker in the first byte.
	cns, err := l.Namespace(PodC)
	if err != nil {
		return err
	}
	var pc net.PacketConn
	if err := cns.Do(func() error {
		pc, err = net.ListenPacket("udp4", netip.AddrPortFrom(c.IP, MTUTestPort).String())
		return err
	}); err != nil {
		return fmt.Errorf("listen in %s: %w", c.NetNS, err)
	}
	var gotNoDF, gotDF atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n == payload && buf[0] == 'N' {
				gotNoDF.Add(1)
			} else if n == payload && buf[0] == 'D' {
				gotDF.Add(1)
			}
		}
	}()
	defer func() { pc.Close(); <-done }()

	to := netip.AddrPortFrom(c.IP, MTUTestPort)
	data := make([]byte, payload)
	send := func(pmtudisc int, marker byte, gap time.Duration, onErr func(error)) (sent int, pathMTU int, err error) {
		var conn *net.UDPConn
		if err := bns.Do(func() error {
			conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(to))
			return err
		}); err != nil {
			return 0, 0, err
		}
		defer conn.Close()
		raw, err := conn.SyscallConn()
		if err != nil {
			return 0, 0, err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, pmtudisc)
		}); err != nil || serr != nil {
			return 0, 0, errors.Join(err, serr)
		}
		data[0] = marker
		for range count {
			if err := ctx.Err(); err != nil {
				return sent, 0, err
			}
			if _, err := conn.Write(data); err != nil {
				onErr(err)
			} else {
				sent++
			}
			time.Sleep(gap)
		}
		_ = raw.Control(func(fd uintptr) { pathMTU, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU) })
		return sent, pathMTU, nil
	}
	if m.NoDFSent, _, err = send(unix.IP_PMTUDISC_DONT, 'N', time.Millisecond, func(error) { m.NoDFErrors++ }); err != nil {
		return err
	}
	// The gap lets node-1's ICMP frag-needed reach pod-b before the next
	// datagram, so the kernel refuses it with EMSGSIZE.
	if m.DFSent, m.PathMTU, err = send(unix.IP_PMTUDISC_DO, 'D', 20*time.Millisecond, func(err error) {
		if errors.Is(err, unix.EMSGSIZE) {
			m.DFEMSGSIZE++
		} else {
			m.DFErrors++
		}
	}); err != nil {
		return err
	}
	if m.ServiceFragNeeded, m.ServiceDFSent, err = l.mtuThroughService(ctx, bns, data, 3*count, m.PodMTU); err != nil {
		return err
	}
	if opts.RemoteMTU > 0 {
		if err := l.mtuRemote(ctx, bns, opts.RemoteMTU, 3*count, m); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && gotNoDF.Load() < int64(m.NoDFSent) {
		time.Sleep(5 * time.Millisecond)
	}
	m.ReceivedNoDF, m.ReceivedDF = int(gotNoDF.Load()), int(gotDF.Load())
	r.Attempted = 2 * count
	r.Succeeded = m.ReceivedNoDF + m.ReceivedDF
	r.Failed = r.Attempted - r.Succeeded
	return nil
}

// mtuRemote lowers node-2's bridge and pod-c's link to mtu and sends DF
// datagrams of that size plus 20 through the Service from pod-b: those
// DNATed to pod-c fit the overlay but not pod-c's link, and node-2 refuses
// them with a frag-needed quoting the packet as DNATed on node-1.
func (l *Lab) mtuRemote(ctx context.Context, bns *nsenter.NS, mtu, n int, m *MTUReport) (err error) {
	c, _ := l.Pod(PodC)
	lower := []struct{ member, ifname string }{{PodC, PodIface}, {Node2, c.HostVeth}}
	if l.cfg.Wiring == WiringBridge {
		lower = append(lower, struct{ member, ifname string }{Node2, BridgeName})
	}
	for _, x := range lower {
		if err := l.setMTU(x.member, x.ifname, mtu); err != nil {
			return err
		}
	}
	defer func() {
		for _, x := range lower {
			err = errors.Join(err, l.setMTU(x.member, x.ifname, PodMTU))
		}
	}()
	m.RemoteMTU = mtu
	data := make([]byte, mtu+20-28)
	m.RemoteFragNeeded, _, err = l.mtuThroughService(ctx, bns, data, n, PodMTU)
	return err
}

// mtuThroughService sends DF datagrams of len(data) from pod-b to the
// Service's UDP port, each from a new socket after forgetting the learnt
// path MTU, and returns the source ports of those whose socket learnt a
// path MTU below pathMTU from a frag-needed, and the number sent. The DNAT
// picks a backend at random: it sends at least n, and more (up to 10n)
// until one drew a frag-needed.
func (l *Lab) mtuThroughService(ctx context.Context, bns *nsenter.NS, data []byte, n, pathMTU int) (fragNeeded []uint16, sent int, err error) {
	data[0] = 'S'
	for i := 0; i < 10*n && (i < n || len(fragNeeded) == 0); i++ {
		if err := ctx.Err(); err != nil {
			return fragNeeded, sent, err
		}
		if err := writeSysctl(bns, "net.ipv4.route.flush", "1"); err != nil {
			return fragNeeded, sent, err
		}
		var conn *net.UDPConn
		if err := bns.Do(func() (err error) {
			conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ServiceVIP, ServicePort)))
			return err
		}); err != nil {
			return fragNeeded, sent, err
		}
		raw, err := conn.SyscallConn()
		if err != nil {
			conn.Close()
			return fragNeeded, sent, err
		}
		var serr error
		_ = raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		})
		if serr != nil {
			conn.Close()
			return fragNeeded, sent, serr
		}
		if _, err := conn.Write(data); err == nil {
			sent++
			time.Sleep(20 * time.Millisecond) // for the ICMP to come back
			var pmtu int
			_ = raw.Control(func(fd uintptr) { pmtu, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU) })
			if pmtu > 0 && pmtu < pathMTU {
				fragNeeded = append(fragNeeded, uint16(conn.LocalAddr().(*net.UDPAddr).Port))
			}
		}
		conn.Close()
	}
	return fragNeeded, sent, nil
}

// setPodMTU sets the MTU of a pod's eth0 and of its host veth.
func (l *Lab) setPodMTU(p Pod, mtu int) error {
	// Lower the side that receives last first is not needed: veth drops
	// oversize frames only on the receiving side, and both change at once.
	return errors.Join(l.setMTU(p.Name, PodIface, mtu), l.setMTU(p.Node, p.HostVeth, mtu))
}

// flood opens Count short TCP connections from the backend pods to the
// ClusterIP, Concurrency at a time, each closed right after the handshake
// (its conntrack entry stays in TIME_WAIT). With ConntrackMax set, the
// global nf_conntrack_max is lowered for the run and restored on return.
func (l *Lab) flood(ctx context.Context, opts TrafficOptions, r *Report) (err error) {
	count := orDefault(opts.Count, 300)
	workers := orDefault(opts.Concurrency, 16)
	timeout := orDefault(opts.Timeout, 200*time.Millisecond)
	f := &FloodReport{Entries: map[string]int{}}
	r.Flood = f
	if opts.ConntrackMax > 0 {
		restore, orig, err := lowerConntrackMax(l.cfg.StateDir, l.cfg.Prefix, opts.ConntrackMax)
		if err != nil {
			return err
		}
		f.ConntrackMax, f.OriginalMax = opts.ConntrackMax, orig
		l.log.Info("lowered nf_conntrack_max", "from", orig, "to", opts.ConntrackMax)
		defer func() {
			rerr := restore()
			f.Restored = rerr == nil
			err = errors.Join(err, rerr)
			l.log.Info("restored nf_conntrack_max", "value", orig, "err", rerr)
		}()
	}
	backends := l.Backends()
	var next atomic.Int64
	results := make([]Request, count)
	var wg sync.WaitGroup
	for range min(workers, count) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= count || ctx.Err() != nil {
					return
				}
				p := backends[i%len(backends)]
				q := Request{Client: p.Name, Target: ServiceAddr, NATNode: p.Node}
				start := time.Now()
				conn, src, err := l.dialTCP(ctx, p.Name, ServiceAddr, timeout)
				q.Source, q.Duration = src, time.Since(start)
				if err != nil {
					q.setErr(err)
				} else {
					conn.Close()
				}
				results[i] = q
			}
		})
	}
	wg.Wait()
	for _, n := range l.nodes {
		ns, err := l.Namespace(n.Name)
		if err != nil {
			return err
		}
		if v, err := readNetnsInt(ns, "net.netfilter.nf_conntrack_count"); err == nil {
			f.Entries[n.Name] = v
		}
	}
	for _, q := range results {
		if q.Client == "" {
			continue // not attempted: cancelled
		}
		r.add(q)
	}
	f.Attempted, f.Succeeded, f.Failed = r.Attempted, r.Succeeded, r.Failed
	return ctx.Err()
}
