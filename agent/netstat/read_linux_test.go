package netstat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/internal/nsenter"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

func read(t *testing.T, ns *nsenter.NS) Counters {
	t.Helper()
	c, err := Read(ns)
	require.NoError(t, err)
	require.True(t, c.IPv6Present, "this kernel has IPv6")
	return c
}

// The lab's mtu scenario makes node-1 fragment pod-b's non-DF datagrams and
// refuse its DF ones: Read sees in node-1 exactly the deltas the lab's own
// /proc/net/snmp reader sees, and each namespace has its own counters.
func TestReadLabMTU(t *testing.T) {
	testns.RequireRoot(t)
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.New(ctx, &lab.Config{Prefix: "nst" + hex.EncodeToString(rnd[:]) + "-", StateDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	node1, err := l.Namespace(lab.Node1)
	require.NoError(t, err)
	node2, err := l.Namespace(lab.Node2)
	require.NoError(t, err)

	before := read(t, node1)
	labBefore, err := l.SNMP(lab.Node1)
	require.NoError(t, err)
	r, err := l.Traffic(ctx, lab.ScenarioMTU, lab.TrafficOptions{Count: 4})
	require.NoError(t, err)
	after := read(t, node1)
	labAfter, err := l.SNMP(lab.Node1)
	require.NoError(t, err)
	t.Logf("%s", r)

	labDelta := func(k string) uint64 { return uint64(labAfter[k] - labBefore[k]) }
	d := IPv4{
		FragOKs:         after.IPv4.FragOKs - before.IPv4.FragOKs,
		FragCreates:     after.IPv4.FragCreates - before.IPv4.FragCreates,
		FragFails:       after.IPv4.FragFails - before.IPv4.FragFails,
		OutDestUnreachs: after.IPv4.OutDestUnreachs - before.IPv4.OutDestUnreachs,
	}
	require.Positive(t, r.MTU.NoDFSent)
	require.EqualValues(t, r.MTU.NoDFSent, d.FragOKs, "node-1 fragmented each non-DF datagram")
	require.Equal(t, labDelta("Ip.FragOKs"), d.FragOKs)
	require.Equal(t, labDelta("Ip.FragCreates"), d.FragCreates)
	require.Equal(t, 2*d.FragOKs, d.FragCreates, "1500-byte datagrams on a 1450 overlay: two fragments each")
	require.Equal(t, labDelta("Ip.FragFails"), d.FragFails)
	require.Equal(t, labDelta("Icmp.OutDestUnreachs"), d.OutDestUnreachs)
	t.Logf("node-1 deltas: %+v", d)
	// The whole IPv4 section matches the lab's reading of the same moment.
	require.Equal(t, ipv4FromMap(labAfter), after.IPv4)

	// Per namespace: node-2 and the root namespace have counters of their
	// own (the node-1 read is not the main thread's /proc/net).
	other := read(t, node2)
	root := read(t, nil)
	t.Logf("node-1 %+v\nnode-2 %+v\nroot   %+v", after, other, root)
	require.NotEqual(t, after, other)
	require.NotEqual(t, after.IPv4, root.IPv4)
	require.NotEqual(t, other, root)
}

// addrNoDAD adds an address usable at once (no duplicate address detection).
func addrNoDAD(t *testing.T, n *testns.NS, link, cidr string) {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	require.NoError(t, err)
	a.Flags = unix.IFA_F_NODAD
	require.NoError(t, n.H.AddrAdd(n.Link(t, link), a))
}

// listenUDP opens a UDP socket on addr inside n.
func listenUDP(t *testing.T, n *testns.NS, network, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	require.NoError(t, n.Enter.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	}))
	t.Cleanup(func() { pc.Close() })
	return pc
}

// sendUDP sends count datagrams of size bytes from inside n to dst without
// DF, so the kernel fragments them at the source.
func sendUDP(t *testing.T, n *testns.NS, network string, dst net.Addr, count, size int) {
	t.Helper()
	require.NoError(t, n.Enter.Do(func() error {
		pc, err := net.ListenPacket(network, "")
		if err != nil {
			return err
		}
		defer pc.Close()
		raw, err := pc.(*net.UDPConn).SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			if network == "udp4" {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT)
			}
		}); err != nil {
			return err
		}
		if serr != nil {
			return serr
		}
		buf := make([]byte, size)
		for range count {
			if _, err := pc.WriteTo(buf, dst); err != nil {
				return err
			}
		}
		return nil
	}))
}

// receive reads count datagrams of size bytes from pc.
func receive(t *testing.T, pc net.PacketConn, count, size int) {
	t.Helper()
	require.NoError(t, pc.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 2*size)
	for i := range count {
		n, _, err := pc.ReadFrom(buf)
		require.NoError(t, err, "datagram %d", i)
		require.Equal(t, size, n)
	}
}

// A 3000-byte UDP payload over a 1500 veth is cut into 3 fragments in both
// families (1480 and 1448 bytes of payload per fragment): the sender counts
// count datagrams fragmented into 3×count fragments, the receiver 3×count
// fragments reassembled into count datagrams.
func TestReadFragmentsBothFamilies(t *testing.T) {
	testns.RequireRoot(t)
	a, b := testns.Make(t, "lsnst"), testns.Make(t, "lsnst")
	testns.VethPair(t, a, "va", "10.77.0.1/24", b, "vb", "10.77.0.2/24")
	addrNoDAD(t, a, "va", "fd77::1/64")
	addrNoDAD(t, b, "vb", "fd77::2/64")

	const count, size = 5, 3000
	rx4 := listenUDP(t, b, "udp4", "10.77.0.2:9000")
	rx6 := listenUDP(t, b, "udp6", "[fd77::2]:9000")
	a0, b0 := read(t, a.Enter), read(t, b.Enter)
	sendUDP(t, a, "udp4", rx4.LocalAddr(), count, size)
	sendUDP(t, a, "udp6", rx6.LocalAddr(), count, size)
	receive(t, rx4, count, size)
	receive(t, rx6, count, size)
	a1, b1 := read(t, a.Enter), read(t, b.Enter)

	require.EqualValues(t, count, a1.IPv4.FragOKs-a0.IPv4.FragOKs)
	require.EqualValues(t, 3*count, a1.IPv4.FragCreates-a0.IPv4.FragCreates)
	require.EqualValues(t, 3*count, b1.IPv4.ReasmReqds-b0.IPv4.ReasmReqds)
	require.EqualValues(t, count, b1.IPv4.ReasmOKs-b0.IPv4.ReasmOKs)
	require.Zero(t, b1.IPv4.ReasmFails-b0.IPv4.ReasmFails)

	require.EqualValues(t, count, a1.IPv6.FragOKs-a0.IPv6.FragOKs)
	require.EqualValues(t, 3*count, a1.IPv6.FragCreates-a0.IPv6.FragCreates)
	require.EqualValues(t, 3*count, b1.IPv6.ReasmReqds-b0.IPv6.ReasmReqds)
	require.EqualValues(t, count, b1.IPv6.ReasmOKs-b0.IPv6.ReasmOKs)
	require.Zero(t, b1.IPv6.ReasmFails-b0.IPv6.ReasmFails)

	// Nothing of it reached the other side's counters.
	require.Zero(t, a1.IPv4.ReasmReqds+a1.IPv6.ReasmReqds)
	require.Zero(t, b1.IPv4.FragCreates+b1.IPv6.FragCreates)
}

func BenchmarkRead(b *testing.B) {
	testns.RequireRoot(b)
	n := testns.Make(b, "lsnst")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(n.Enter); err != nil {
			b.Fatal(err)
		}
	}
}
