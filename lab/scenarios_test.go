package lab

import (
	"context"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ctLine matches one TCP line of `conntrack -L`: the original and the reply
// tuple.
var ctLine = regexp.MustCompile(`src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) .*?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)`)

type ctTuple struct {
	origSrc, origDst, replySrc, replyDst netip.AddrPort
}

func conntrackL(t *testing.T, netns string) []ctTuple {
	t.Helper()
	out, err := RunInNetNS(context.Background(), netns, nil, "conntrack", "-L", "-p", "tcp")
	require.NoError(t, err)
	var res []ctTuple
	for _, line := range strings.Split(string(out), "\n") {
		m := ctLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ap := func(ip, port string) netip.AddrPort {
			p, _ := strconv.Atoi(port)
			return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(p))
		}
		res = append(res, ctTuple{ap(m[1], m[3]), ap(m[2], m[4]), ap(m[5], m[7]), ap(m[6], m[8])})
	}
	return res
}

func TestServiceDNATSeenInConntrack(t *testing.T) {
	l := newTestLab(t)
	ctx := testCtx(t)
	b, _ := l.Pod(PodB)
	seen := map[string]netip.AddrPort{} // backend → the client socket that reached it
	for i := 0; i < 90 && len(seen) < 3; i++ {
		q := l.request(ctx, PodB, ServiceAddr, "/", nil, 2*time.Second)
		require.True(t, q.OK(), "request %d: %s", i, q.Err)
		require.Equal(t, b.IP, q.Source.Addr())
		if _, ok := seen[q.Backend]; !ok {
			seen[q.Backend] = q.Source
		}
	}
	require.Len(t, seen, 3, "pod-b → ClusterIP must reach every backend: %v", seen)

	node1, _ := l.Node(Node1)
	table := conntrackL(t, node1.NetNS)
	for backend, src := range seen {
		p, _ := l.Pod(backend)
		var found *ctTuple
		for i := range table {
			if table[i].origSrc == src {
				found = &table[i]
			}
		}
		require.NotNil(t, found, "no conntrack entry in %s for %s → %s", node1.NetNS, src, backend)
		require.Equal(t, ServiceAddr, found.origDst, "original tuple goes to the ClusterIP")
		require.Equal(t, netip.AddrPortFrom(p.IP, ServicePort), found.replySrc, "reply tuple comes from the backend %s", backend)
		if backend == PodB || l.masqueradeAll {
			// Hairpin: KUBE-SEP masquerades the pod's own traffic to the
			// bridge IP (all of it without br_netfilter).
			require.Equal(t, node1.BridgeIP, found.replyDst.Addr())
		} else {
			require.Equal(t, src, found.replyDst)
		}
	}
}

func TestServiceScenario(t *testing.T) {
	l := newTestLab(t)
	r, err := l.Traffic(testCtx(t), ScenarioService, TrafficOptions{Count: 6})
	require.NoError(t, err)
	require.Equal(t, 5*6, r.Attempted)
	require.Zero(t, r.Failed, "%v", r)
	clients := map[string]int{}
	for _, q := range r.Requests {
		clients[q.Client]++
		require.NotEmpty(t, q.Backend)
		require.Equal(t, q.Backend, q.DNATBackend, "the backend that answered is the one conntrack DNATed to (%+v)", q)
	}
	require.Equal(t, map[string]int{PodA: 6, PodB: 6, PodC: 6, Node1: 6, Node2: 6}, clients)
	sum := 0
	for _, v := range r.Backends {
		sum += v
	}
	require.Equal(t, r.Succeeded, sum)
}

func TestNodePortFromNode2(t *testing.T) {
	l := newTestLab(t)
	ctx := testCtx(t)
	for _, n := range l.Nodes() {
		target := netip.AddrPortFrom(n.IP, NodePort)
		q := l.request(ctx, Node2, target, "/", nil, 2*time.Second)
		require.True(t, q.OK(), "node-2 → %s: %s", target, q.Err)
		require.Contains(t, []string{PodA, PodB, PodC}, q.Backend)
	}
}

func TestDNSRcodes(t *testing.T) {
	l := newTestLab(t)
	r, err := l.Traffic(testCtx(t), ScenarioDNS, TrafficOptions{DNSMix: [3]int{3, 2, 4}})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"NOERROR": 3, "NXDOMAIN": 2, "SERVFAIL": 4}, r.RCodes)
	for _, q := range r.Requests {
		require.Equal(t, q.Want, q.RCode, q.Query)
		require.Equal(t, netip.MustParseAddr("10.244.0.5"), q.Source.Addr())
	}
	// The answer itself, asked from pod-c across the overlay.
	ns, err := l.Namespace(PodC)
	require.NoError(t, err)
	var resp *dns.Msg
	require.NoError(t, ns.Do(func() error {
		m := new(dns.Msg)
		m.SetQuestion(ServiceName, dns.TypeA)
		var err error
		resp, _, err = (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, DNSAddr.String())
		return err
	}))
	require.Equal(t, dns.RcodeSuccess, resp.Rcode)
	require.Len(t, resp.Answer, 1)
	require.Equal(t, ServiceVIP.String(), resp.Answer[0].(*dns.A).A.String())
}

func readSNMP(t *testing.T, netns string) map[string]int64 {
	t.Helper()
	out, err := RunInNetNS(context.Background(), netns, nil, "cat", "/proc/net/snmp")
	require.NoError(t, err)
	return ParseSNMP(out)
}

func TestMTUScenario(t *testing.T) {
	l := newTestLab(t)
	node1, _ := l.Node(Node1)
	before := readSNMP(t, node1.NetNS)
	const count = 4
	r, err := l.Traffic(testCtx(t), ScenarioMTU, TrafficOptions{Count: count})
	require.NoError(t, err)
	after := readSNMP(t, node1.NetNS)
	delta := func(k string) int64 { return after[k] - before[k] }
	m := r.MTU
	t.Logf("%s", r)

	// Without DF: every datagram left pod-b whole and node-1 cut it in two.
	require.Equal(t, count, m.NoDFSent)
	require.EqualValues(t, m.NoDFSent, delta("Ip.FragOKs"))
	require.EqualValues(t, 2*m.NoDFSent, delta("Ip.FragCreates"))
	require.Equal(t, m.NoDFSent, m.ReceivedNoDF, "pod-c reassembles the fragments")

	// With DF: what left pod-b was dropped by node-1 with frag-needed, the
	// rest refused locally once the path MTU was learnt.
	require.GreaterOrEqual(t, m.DFSent, 1)
	require.Equal(t, count, m.DFSent+m.DFEMSGSIZE)
	require.Zero(t, m.ReceivedDF)
	require.EqualValues(t, m.DFSent+len(m.ServiceFragNeeded), delta("Icmp.OutDestUnreachs"))
	require.EqualValues(t, m.DFSent+len(m.ServiceFragNeeded), delta("IcmpMsg.OutType3"))
	require.Equal(t, PodMTU, m.PathMTU)

	// Through the Service's UDP port: the datagrams DNATed to pod-c crossed
	// the overlay and drew a frag-needed; those DNATed to pod-a or pod-b
	// stayed on node-1's bridge.
	require.GreaterOrEqual(t, m.ServiceDFSent, 3*count)
	require.NotEmpty(t, m.ServiceFragNeeded)
	require.Less(t, len(m.ServiceFragNeeded), m.ServiceDFSent)

	// pod-b is back at the pod MTU.
	require.True(t, m.MTURestored)
	b, _ := l.Pod(PodB)
	out, err := RunInNetNS(context.Background(), b.NetNS, nil, "cat", "/sys/class/net/eth0/mtu")
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(PodMTU), strings.TrimSpace(string(out)))
}

func TestDeadBackendFailsExactlyPodC(t *testing.T) {
	l := newTestLab(t)
	ctx := testCtx(t)
	r, err := l.Traffic(ctx, ScenarioDeadBackend, TrafficOptions{Count: 9})
	require.NoError(t, err)
	require.Positive(t, r.Failed, "with 45 requests over 3 backends, some must hit pod-c")
	for _, q := range r.Requests {
		require.NotEmpty(t, q.DNATBackend, "conntrack of %s knows where %s went", q.NATNode, q.Source)
		if q.DNATBackend == PodC {
			require.False(t, q.OK(), "%+v", q)
			require.True(t, q.Refused, "%+v", q)
		} else {
			require.True(t, q.OK(), "%+v", q)
			require.Equal(t, q.DNATBackend, q.Backend)
		}
	}
	require.Zero(t, r.Backends[PodC])
	// pod-c serves again afterwards.
	c, _ := l.Pod(PodC)
	q := l.request(ctx, PodA, netip.AddrPortFrom(c.IP, ServicePort), "/", nil, 2*time.Second)
	require.True(t, q.OK(), q.Err)
	require.Equal(t, PodC, q.Backend)
}

func TestConntrackFloodRestoresMax(t *testing.T) {
	l := newTestLab(t)
	orig, err := ReadConntrackMax()
	require.NoError(t, err)
	t.Cleanup(func() {
		// Whatever happened, the machine keeps its limit.
		if v, _ := ReadConntrackMax(); v != orig {
			_ = writeConntrackMax(orig)
			t.Errorf("nf_conntrack_max was %d, restored to %d", v, orig)
		}
	})
	const lowered = 128
	r, err := l.Traffic(testCtx(t), ScenarioConntrackFlood, TrafficOptions{
		Count: 320, Concurrency: 32, ConntrackMax: lowered, Timeout: 150 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Logf("%s", r)
	now, err := ReadConntrackMax()
	require.NoError(t, err)
	require.Equal(t, orig, now)
	f := r.Flood
	require.True(t, f.Restored)
	require.Equal(t, orig, f.OriginalMax)
	require.Equal(t, 320, f.Attempted)
	require.Positive(t, f.Succeeded)
	require.Positive(t, f.Failed, "a table of %d entries cannot hold 320 connections", lowered)
	require.Equal(t, f.Attempted, f.Succeeded+f.Failed)
	require.NoFileExists(t, filepath.Join(l.stateDir(), conntrackMaxState))
}

func TestHTTPAndTLS(t *testing.T) {
	l := newTestLab(t)
	ctx := testCtx(t)
	r, err := l.Traffic(ctx, ScenarioHTTP, TrafficOptions{Count: 2})
	require.NoError(t, err)
	require.Equal(t, map[int]int{200: 6, 404: 6, 503: 6}, r.Status)
	require.Equal(t, map[string]int{PodA: 6, PodB: 6, PodC: 6}, r.Backends)

	r, err = l.Traffic(ctx, ScenarioTLS, TrafficOptions{Count: 2})
	require.NoError(t, err)
	require.Zero(t, r.Failed, "%v", r)
	require.Equal(t, map[string]int{"TLS 1.2": 9, "TLS 1.3": 9}, r.TLSVersions)
	require.Equal(t, map[int]int{200: 6, 404: 6, 503: 6}, r.Status)
}

func TestUnknownScenario(t *testing.T) {
	l := newTestLab(t)
	_, err := l.Traffic(context.Background(), "nope", TrafficOptions{})
	require.ErrorIs(t, err, ErrUnknownScenario)
}

// With RemoteMTU, node-2 refuses the datagrams DNATed to pod-c that fit the
// overlay but not pod-c's lowered link, and the MTUs come back.
func TestMTUScenarioRemote(t *testing.T) {
	l := newTestLab(t)
	node2, _ := l.Node(Node2)
	before := readSNMP(t, node2.NetNS)
	r, err := l.Traffic(testCtx(t), ScenarioMTU, TrafficOptions{Count: 2, RemoteMTU: 1400})
	require.NoError(t, err)
	after := readSNMP(t, node2.NetNS)
	m := r.MTU
	require.Equal(t, 1400, m.RemoteMTU)
	require.NotEmpty(t, m.RemoteFragNeeded)
	require.EqualValues(t, len(m.RemoteFragNeeded), after["Icmp.OutDestUnreachs"]-before["Icmp.OutDestUnreachs"])
	c, _ := l.Pod(PodC)
	for _, x := range []struct{ member, ifname string }{{PodC, PodIface}, {Node2, c.HostVeth}, {Node2, BridgeName}} {
		mtu, err := l.linkMTU(x.member, x.ifname)
		require.NoError(t, err)
		require.Equal(t, PodMTU, mtu, "%s in %s", x.ifname, x.member)
	}
}
