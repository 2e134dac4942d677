package conntrack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/layerscope/layerscope/internal/nsenter"
	"github.com/layerscope/layerscope/internal/testns"
	"golang.org/x/sys/unix"
)

// Addresses of the test pair: the client namespace (where conntrack runs
// and the Watcher watches) and the server namespace behind one veth. The
// sink prefix is routed to the server, which drops it (no forwarding), so
// datagrams to it make one unreplied conntrack entry each and no ICMP.
var (
	clientIP  = netip.MustParseAddr("10.200.0.1")
	serverIP  = netip.MustParseAddr("10.200.0.2")
	serviceIP = netip.MustParseAddr("10.96.0.1") // DNATed to serverIP:8080 on port 80
	sinkNet   = "10.201.0.0/16"
)

// pair is a client namespace with conntrack enabled (nftables ct rules, and a
// kube-proxy-like DNAT of serviceIP:80) and a server namespace.
type pair struct {
	client, server     string
	clientNS, serverNS *nsenter.NS
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func runIn(t testing.TB, ns string, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("in %s: %s %s: %v\n%s", ns, name, strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

const nftRules = `
table inet lstest {
	chain out {
		type filter hook output priority 0;
		ct state new counter
	}
	chain in {
		type filter hook input priority 0;
		ct state established counter
	}
}
table ip lsnat {
	chain out {
		type nat hook output priority -100;
		ip daddr 10.96.0.1 tcp dport 80 dnat to 10.200.0.2:8080
	}
}
`

func newPair(t testing.TB) *pair {
	t.Helper()
	testns.RequireRoot(t)
	// Every test of a pair makes entries outside lab.Traffic: keep other
	// tests from lowering the global nf_conntrack_max meanwhile.
	holdMax(t)
	p := &pair{client: testns.New(t, "ctc"), server: testns.New(t, "cts")}
	veth := "v" + p.client[len(p.client)-8:]
	run(t, "ip", "link", "add", veth, "netns", p.client, "type", "veth", "peer", "name", "eth0", "netns", p.server)
	run(t, "ip", "-n", p.client, "link", "set", veth, "name", "eth0")
	for _, ns := range []struct{ name, addr string }{{p.client, clientIP.String()}, {p.server, serverIP.String()}} {
		run(t, "ip", "-n", ns.name, "addr", "add", ns.addr+"/24", "dev", "eth0")
		run(t, "ip", "-n", ns.name, "link", "set", "eth0", "up")
	}
	run(t, "ip", "-n", p.client, "route", "add", sinkNet, "via", serverIP.String())
	run(t, "ip", "-n", p.client, "route", "add", "10.96.0.0/16", "via", serverIP.String())
	runIn(t, p.client, nftRules, "nft", "-f", "-")
	var err error
	if p.clientNS, err = nsenter.Open(p.client); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.clientNS.Close() })
	if p.serverNS, err = nsenter.Open(p.server); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.serverNS.Close() })
	return p
}

// sysctl sets a per-namespace sysctl of the client namespace.
func (p *pair) sysctl(t testing.TB, kv string) {
	t.Helper()
	runIn(t, p.client, "", "sysctl", "-q", "-w", kv)
}

// udpSink opens an unconnected UDP socket in the client namespace.
func (p *pair) udpSocket(t testing.TB) int {
	t.Helper()
	var fd int
	err := p.clientNS.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// sinkAddr is the i-th distinct sink destination (10.201.x.y:port).
func sinkAddr(i int) *unix.SockaddrInet4 {
	port := 1024 + i%60000
	host := i / 60000
	return &unix.SockaddrInet4{Port: port, Addr: [4]byte{10, 201, byte(host >> 8), byte(host)}}
}

// sinkKey is the flow key of the i-th sink flow from a socket bound to sport.
func sinkKey(i int, sport uint16) (src, dst netip.AddrPort) {
	sa := sinkAddr(i)
	return netip.AddrPortFrom(clientIP, sport), netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
}

// sendFlows sends one datagram to each of n sink destinations starting at
// from, at most rate per second (0: as fast as possible), and returns the
// achieved rate.
func sendFlows(t testing.TB, fd, from, n int, rate float64) float64 {
	t.Helper()
	payload := []byte{0}
	start := time.Now()
	for i := 0; i < n; i++ {
		if rate > 0 && i%256 == 0 {
			if ahead := time.Duration(float64(i)/rate*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		for {
			err := unix.Sendto(fd, payload, unix.MSG_DONTWAIT, sinkAddr(from+i))
			if err == nil {
				break
			}
			if err == unix.EAGAIN || err == unix.ENOBUFS {
				time.Sleep(50 * time.Microsecond)
				continue
			}
			t.Fatalf("sendto flow %d: %v", from+i, err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

func localPort(t testing.TB, fd int) uint16 {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(sa.(*unix.SockaddrInet4).Port)
}

// listenTCP listens on the server namespace and accepts in the background;
// it closes each accepted connection when the client closes it, or when the
// test ends.
func (p *pair) listenTCP(t testing.TB, port int) {
	t.Helper()
	var ln net.Listener
	err := p.serverNS.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", serverIP, port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
}

// dialTCP connects from the client namespace.
func (p *pair) dialTCP(t testing.TB, to netip.AddrPort) net.Conn {
	t.Helper()
	var c net.Conn
	err := p.clientNS.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", to.String(), 2*time.Second)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ctCount is `conntrack -C` in a namespace.
func ctCount(t testing.TB, ns string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(runIn(t, ns, "", "conntrack", "-C")))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var timeoutCol = regexp.MustCompile(`^(\S+\s+\d+\s+)\d+ `)

// ctList is `conntrack -L` in a namespace, one line per entry with the
// timeout column removed, sorted.
func ctList(t testing.TB, ns string) []string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(runIn(t, ns, "", "conntrack", "-L"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, timeoutCol.ReplaceAllString(l, "$1"))
		}
	}
	sort.Strings(lines)
	return lines
}

// ctStates counts `conntrack -L` entries by protocol and TCP state, and
// assured/unreplied, keyed like Snapshot ("proto/tcp", "state/ESTABLISHED",
// "assured", "unreplied").
func ctStates(lines []string) map[string]int {
	m := map[string]int{}
	for _, l := range lines {
		f := strings.Fields(l)
		m["proto/"+f[0]]++
		if f[0] == "tcp" {
			m["state/"+f[2]]++
		}
		if strings.Contains(l, "[ASSURED]") {
			m["assured"]++
		}
		if strings.Contains(l, "[UNREPLIED]") {
			m["unreplied"]++
		}
	}
	return m
}

func snapStates(s *Snapshot) map[string]int {
	m := map[string]int{}
	for k, v := range s.ByProtocol {
		m["proto/"+k] = v
	}
	for k, v := range s.ByTCPState {
		m["state/"+k] = v
	}
	if s.Assured > 0 {
		m["assured"] = s.Assured
	}
	if s.Unreplied > 0 {
		m["unreplied"] = s.Unreplied
	}
	return m
}

var statField = regexp.MustCompile(`(\w+)=(\d+)`)

// ctStats sums the columns of `conntrack -S` over the CPUs.
func ctStats(t testing.TB, ns string) map[string]uint64 {
	t.Helper()
	sum := map[string]uint64{}
	for _, l := range strings.Split(runIn(t, ns, "", "conntrack", "-S"), "\n") {
		for _, m := range statField.FindAllStringSubmatch(l, -1) {
			if m[1] == "cpu" {
				continue
			}
			v, _ := strconv.ParseUint(m[2], 10, 64)
			sum[m[1]] += v
		}
	}
	return sum
}

func statsMap(s CPUStats) map[string]uint64 {
	return map[string]uint64{
		"found": s.Found, "invalid": s.Invalid, "insert": s.Insert, "insert_failed": s.InsertFailed,
		"drop": s.Drop, "early_drop": s.EarlyDrop, "error": s.Error, "search_restart": s.SearchRestart,
		"clash_resolve": s.ClashResolve, "chaintoolong": s.ChainTooLong,
	}
}

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func openWatcher(t testing.TB, ns *nsenter.NS, cfg Config) *Watcher {
	t.Helper()
	cfg.NetNS = ns
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := Open(ctx, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func serviceAddrPort() netip.AddrPort { return netip.AddrPortFrom(serviceIP, 80) }

// burst sends n new flows from len(fds) sockets in parallel, as fast as
// they go, and returns the achieved rate of new flows per second.
func burst(t testing.TB, fds []int, n int) float64 {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	per := n / len(fds)
	for i, fd := range fds {
		from, cnt := i*per, per
		if i == len(fds)-1 {
			cnt = n - from
		}
		wg.Go(func() { sendFlows(t, fd, from, cnt, 0) })
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}
