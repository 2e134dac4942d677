package conntrack

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/stretchr/testify/require"
)

// The initial dump sees flows made before the Watcher started, and its
// counts agree with conntrack-tools in the namespace.
func TestInitialDump(t *testing.T) {
	p := newPair(t)
	p.listenTCP(t, 8080)
	fd := p.udpSocket(t)
	const udpFlows = 300
	sendFlows(t, fd, 0, udpFlows, 0)
	sport := localPort(t, fd)
	var tcp []flow.Key
	for range 3 {
		c := p.dialTCP(t, netip.AddrPortFrom(serverIP, 8080))
		la := c.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
		tcp = append(tcp, flow.Key{Src: la.Addr().Unmap(), Dst: serverIP, SrcPort: la.Port(), DstPort: 8080, Proto: flow.ProtoTCP})
	}
	eventually(t, 5*time.Second, "conntrack entries", func() bool { return ctCount(t, p.client) >= udpFlows+3 })

	w := openWatcher(t, p.clientNS, Config{StatsInterval: time.Hour})
	s := w.Snapshot()
	lines := ctList(t, p.client)
	require.Equal(t, len(lines), s.Tracked, "tracked entries vs conntrack -L")
	require.Equal(t, ctCount(t, p.client), s.Entries, "kernel entries vs conntrack -C")
	require.Equal(t, ctStates(lines), snapStates(&s), "entries by protocol and state vs conntrack -L")
	require.Equal(t, 3, s.ByTCPState["ESTABLISHED"])
	require.GreaterOrEqual(t, s.ByProtocol["udp"], udpFlows)
	require.Equal(t, uint64(1), s.Health.Resyncs)
	require.Equal(t, len(lines), s.Health.LastDumpEntries)
	require.Positive(t, s.Health.LastDump)

	for i := range udpFlows {
		src, dst := sinkKey(i, sport)
		k := flow.Key{Src: src.Addr(), Dst: dst.Addr(), SrcPort: src.Port(), DstPort: dst.Port(), Proto: flow.ProtoUDP}
		n, ok := w.Lookup(k)
		require.True(t, ok, "udp flow %v not tracked", k)
		require.Equal(t, MatchOriginal, n.Match)
		require.Equal(t, k, n.Original.Key())
		require.Equal(t, k.Reverse(), n.Reply.Key())
		require.NotZero(t, n.Status&StatusConfirmed)
		require.Zero(t, n.Status&StatusSeenReply)
	}
	for _, k := range tcp {
		n, ok := w.Lookup(k.Reverse())
		require.True(t, ok)
		require.Equal(t, MatchOriginalReversed, n.Match)
		require.Equal(t, TCPEstablished, n.TCPState)
		require.False(t, n.DNAT() || n.SNAT())
	}
	// The source holding the most entries is the client, and the top
	// service list is bounded by TopN.
	require.Equal(t, netip.AddrPortFrom(clientIP, 0), s.TopSources[0].Addr)
	require.Equal(t, len(lines), s.TopSources[0].Entries)
	require.Len(t, s.TopServices, DefaultTopN)
}

// Events add entries live and remove them when the kernel destroys them.
func TestEventsLive(t *testing.T) {
	p := newPair(t)
	p.sysctl(t, "net.netfilter.nf_conntrack_udp_timeout=2")
	p.sysctl(t, "net.netfilter.nf_conntrack_tcp_timeout_time_wait=2")
	p.listenTCP(t, 8080)
	w := openWatcher(t, p.clientNS, Config{StatsInterval: 50 * time.Millisecond})
	require.Zero(t, w.Snapshot().Tracked)

	fd := p.udpSocket(t)
	const n = 500
	sendFlows(t, fd, 0, n, 0)
	c := p.dialTCP(t, netip.AddrPortFrom(serverIP, 8080))
	eventually(t, 5*time.Second, "new events", func() bool { return w.Snapshot().Tracked == n+1 })
	s := w.Snapshot()
	require.Equal(t, uint64(n+1), s.Health.EventsNew)
	require.Equal(t, 1, s.ByTCPState["ESTABLISHED"])
	require.Positive(t, s.Health.EventsUpdate, "the TCP handshake updates its entry")
	lines := ctList(t, p.client)
	require.Equal(t, ctStates(lines), snapStates(&s))

	c.Close() // FIN from the client: the entry moves on to TIME_WAIT and then goes
	eventually(t, 5*time.Second, "TCP close updates", func() bool {
		s := w.Snapshot()
		return s.ByTCPState["TIME_WAIT"] == 1 || s.ByTCPState["ESTABLISHED"] == 0
	})
	// Expired entries go when the kernel's garbage collector or a dump finds
	// them; a dump by conntrack-tools makes that happen now.
	time.Sleep(2500 * time.Millisecond)
	eventually(t, 15*time.Second, "destroy events", func() bool {
		ctList(t, p.client)
		return w.Snapshot().Tracked == 0
	})
	s = w.Snapshot()
	require.Equal(t, uint64(n+1), s.Health.EventsDestroy)
	require.Zero(t, s.Health.EventsLost)
	require.Empty(t, s.ByProtocol)
	eventually(t, 2*time.Second, "kernel count sampled", func() bool { return w.Snapshot().Entries == 0 })
	require.Zero(t, ctCount(t, p.client))
}

// A DNATed connection is found from any of its four views, all with the
// same original and reply tuples.
func TestLookupNAT(t *testing.T) {
	p := newPair(t)
	p.listenTCP(t, 8080)
	w := openWatcher(t, p.clientNS, Config{StatsInterval: time.Hour})
	c := p.dialTCP(t, netip.AddrPortFrom(serviceIP, 80))
	la := c.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
	client := netip.AddrPortFrom(la.Addr().Unmap(), la.Port())
	pre := flow.Key{Src: client.Addr(), Dst: serviceIP, SrcPort: client.Port(), DstPort: 80, Proto: flow.ProtoTCP}
	post := flow.Key{Src: client.Addr(), Dst: serverIP, SrcPort: client.Port(), DstPort: 8080, Proto: flow.ProtoTCP}
	eventually(t, 5*time.Second, "the DNAT entry", func() bool { _, ok := w.Lookup(pre); return ok })

	for _, tc := range []struct {
		name string
		key  flow.Key
		want Match
	}{
		{"client to ClusterIP, before DNAT", pre, MatchOriginal},
		{"ClusterIP to client, after un-DNAT", pre.Reverse(), MatchOriginalReversed},
		{"backend to client", post.Reverse(), MatchReply},
		{"client to backend, after DNAT", post, MatchReplyReversed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := w.Lookup(tc.key)
			require.True(t, ok)
			require.Equal(t, tc.want, n.Match)
			require.Equal(t, pre, n.Original.Key())
			require.Equal(t, post.Reverse(), n.Reply.Key())
			require.True(t, n.DNAT())
			require.False(t, n.SNAT())
			require.NotZero(t, n.Status&StatusDstNAT)
		})
	}
	_, ok := w.Lookup(flow.Key{Src: clientIP, Dst: serverIP, SrcPort: 1, DstPort: 2, Proto: flow.ProtoTCP})
	require.False(t, ok)
	require.Equal(t, 1, w.Snapshot().NATed)
}

// The stats the Watcher reads over netlink equal conntrack-tools' and the
// global stats query answers within its deadline (a netlink library that
// hangs on it fails here rather than blocking the agent).
func TestStats(t *testing.T) {
	p := newPair(t)
	fd := p.udpSocket(t)
	sendFlows(t, fd, 0, 100, 0)
	w := openWatcher(t, p.clientNS, Config{StatsInterval: time.Hour, QueryTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, w.Sample(ctx))
	t.Logf("stats sample took %v", time.Since(start))
	s := w.Snapshot()
	require.Equal(t, ctCount(t, p.client), s.Entries)
	max := run(t, "sysctl", "-n", "net.netfilter.nf_conntrack_max")
	require.Equal(t, strings.TrimSpace(max), strconv.Itoa(s.Limit))
	require.InDelta(t, float64(s.Entries)/float64(s.Limit), s.FillRatio, 1e-12)
	require.NotEmpty(t, s.PerCPU)
	require.Equal(t, ctStats(t, p.client), statsMap(s.Stats), "per-CPU sums vs conntrack -S")
	require.Zero(t, s.Health.StatsErrors)
}
