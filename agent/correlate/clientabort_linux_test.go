package correlate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/agent"
	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// The kubernetes Service as kube-proxy's nftables mode writes it on a node
// (v1.37: a verdict map of ClusterIPs, a service chain that marks traffic
// from outside the cluster CIDR for masquerade and picks an endpoint with
// numgen, an endpoint chain that DNATs, and masquerade fully-random in
// postrouting), reduced to two Services: "kubernetes" with a live API
// server and "dead" whose only endpoint has nothing listening.
const kubeProxyNFT = `
table ip kube-proxy {
	chain mark-for-masquerade {
		meta mark set meta mark or 0x4000
	}
	chain masquerading {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x4000 == 0 return
		meta mark set meta mark xor 0x4000
		masquerade fully-random
	}
	chain nat-output {
		type nat hook output priority -100; policy accept;
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.96.0.1 . tcp . 443 : goto service-kubernetes, 10.96.0.2 . tcp . 443 : goto service-dead }
	}
	chain service-kubernetes {
		ip daddr 10.96.0.1 tcp dport 443 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 1 vmap { 0 : goto endpoint-apiserver }
	}
	chain endpoint-apiserver {
		ip saddr 10.0.1.10 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.0.1.10:6443
	}
	chain service-dead {
		ip daddr 10.96.0.2 tcp dport 443 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 1 vmap { 0 : goto endpoint-dead }
	}
	chain endpoint-dead {
		ip saddr 10.0.1.10 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.0.1.10:6444
	}
}
`

var (
	apiService  = netip.MustParseAddrPort("10.96.0.1:443")
	apiServer   = netip.MustParseAddrPort("10.0.1.10:6443")
	deadService = netip.MustParseAddrPort("10.96.0.2:443")
	deadBackend = netip.MustParseAddrPort("10.0.1.10:6444")
)

// TestLiveClientAbortsAreNoDeadBackend reproduces what a node's agent sees
// of its own client-go connections to the API server: a host-network
// client on the node connects to the kubernetes Service's ClusterIP, which
// kube-proxy's nftables rules DNAT to the API server and masquerade with
// a remapped source port (fully-random), so the node's uplink is the only
// interface that sees the connection, after both translations. The API
// server answers each connection and closes it; the client closes its
// socket with the answer unread, so its kernel resets the connection.
// Some of these connections are open before the agent starts: it picks
// them up mid-stream with the server's packet first, or sees only the
// client's RST (only conntrack knows the server answered). An agent observing
// the node must join them all to the Service and not report the API
// server dead, and must still report the backend of the other Service,
// whose connections are refused, dead.
func TestLiveClientAbortsAreNoDeadBackend(t *testing.T) {
	testns.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skipf("nft not installed: %v", err)
	}
	release, err := lab.HoldConntrackMax(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	node := testns.Make(t, "cab-node")
	server := testns.Make(t, "cab-api")
	testns.VethPair(t, node, "eth0", "10.0.0.11/24", server, "eth0", apiServer.Addr().String()+"/24")
	for _, c := range [][]string{
		{"ip", "-n", node.Name, "route", "add", "10.0.1.0/24", "dev", "eth0"},
		{"ip", "-n", node.Name, "route", "add", "10.96.0.0/16", "dev", "eth0"},
		{"ip", "-n", server.Name, "route", "add", "10.0.0.0/24", "dev", "eth0"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	nft := exec.Command("ip", "netns", "exec", node.Name, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(kubeProxyNFT)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}

	// The API server: reads each request, answers when the connection's
	// gate opens, closes.
	var ln net.Listener
	if err := server.Enter.Do(func() (err error) {
		ln, err = net.Listen("tcp", apiServer.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	gates := make(chan chan struct{}, 16) // one per connection, in dial order
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			gate := <-gates
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 64)
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				<-gate
				_, _ = c.Write(make([]byte, 300))
			})
		}
	})

	var conns []*net.TCPConn
	dial := func(svc netip.AddrPort) (*net.TCPConn, error) {
		var c net.Conn
		err := node.Enter.Do(func() (err error) {
			c, err = net.DialTimeout("tcp", svc.String(), 5*time.Second)
			return err
		})
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}
	request := func(gate chan struct{}) {
		t.Helper()
		gates <- gate
		c, err := dial(apiService)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(make([]byte, 64)); err != nil {
			t.Fatal(err)
		}
	}
	open := make(chan struct{})
	close(open)
	// Before the agent starts, three connections get their answer and the
	// server's FIN (the agent will see nothing of them but the client's
	// RST), three only their request (it sees them from the answer on).
	const ended, midway, late = 3, 3, 3
	for range ended {
		request(open)
	}
	for _, c := range conns {
		waitUnread(t, c, 300)
	}
	answer := make(chan struct{})
	for range midway {
		request(answer)
	}
	// Let the packets pass before the agent's rings exist.
	time.Sleep(200 * time.Millisecond)

	a, err := agent.New(agent.Config{NetNS: node.Name, MetricsAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent Run: %v", err)
		}
	})
	base := "http://" + a.Addr().String()
	for deadline := time.Now().Add(15 * time.Second); !status(t, base).Ready; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent is not ready within 15s")
		}
	}

	for range late {
		request(open)
	}
	close(answer)
	// Each client closes its socket with the server's answer unread: its
	// kernel sends a RST instead of a FIN (RFC 2525 2.17, tcp_close).
	for _, c := range conns {
		waitUnread(t, c, 300)
		c.Close()
	}
	for range 3 {
		if c, err := dial(deadService); err == nil || !strings.Contains(err.Error(), "refused") {
			if c != nil {
				c.Close()
			}
			t.Fatalf("dial the dead service: %v, want connection refused", err)
		}
	}

	var live, dead *api.ServiceStatus
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		live, dead = nil, nil
		for _, s := range status(t, base).Services {
			switch {
			case s.Service == apiService.String() && s.Backend == apiServer.String():
				live = &s
			case s.Service == deadService.String() && s.Backend == deadBackend.String():
				dead = &s
			}
		}
		if live != nil && live.Attempts == ended+midway+late && dead != nil && dead.Attempts == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's service tallies after 60s: %+v and %+v, want %d connections to %s and 3 to %s",
				live, dead, ended+midway+late, apiServer, deadBackend)
		}
	}
	if live.Dead || live.Failed != 0 {
		t.Errorf("API server %s: %+v, want alive with no failed connection", apiServer, *live)
	}
	if !dead.Dead || dead.Failed != 3 {
		t.Errorf("dead backend %s: %+v, want dead, 3 failed", deadBackend, *dead)
	}

	// The connections were what the test means them to be: reset, and
	// masqueraded with the source port remapped.
	resets, remapped := 0, 0
	for _, c := range connections(t, base) {
		if c.State != api.StateFinal || c.Service == nil || c.Service.Addr != apiService.String() {
			continue
		}
		if c.Outcome == "reset" {
			resets++
		}
		if c.NAT != nil && c.NAT.SNAT && c.NAT.ClientNAT != c.Client.Addr {
			remapped++
		}
		if len(c.Hops) != 1 || c.Hops[0].Interface != "eth0" {
			t.Errorf("connection %s seen on %+v, want only the uplink eth0", c.ID, c.Hops)
		}
	}
	if resets != ended+midway+late || remapped == 0 {
		t.Errorf("%d connections to %s reset, %d masqueraded to another port; want %d reset and some remapped",
			resets, apiService, remapped, ended+midway+late)
	}
}

// waitUnread waits until n bytes sit unread in c's receive queue.
func waitUnread(t *testing.T, c *net.TCPConn, n int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var queued int
		var ierr error
		if err := rc.Control(func(fd uintptr) { queued, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
			t.Fatal(err)
		}
		if ierr != nil && ierr != syscall.EINTR {
			t.Fatal(ierr)
		}
		if queued >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes unread after 5s, want %d", queued, n)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(fmt.Errorf("GET %s: %w", url, err))
	}
}

func status(t *testing.T, base string) (s api.Status) {
	t.Helper()
	getJSON(t, base+api.PathStatus, &s)
	return s
}

func connections(t *testing.T, base string) (cs []api.Connection) {
	t.Helper()
	getJSON(t, base+api.PathConnections, &cs)
	return cs
}
