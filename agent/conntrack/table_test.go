package conntrack

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// The table keeps entries of every kind (IPv4 with and without NAT, IPv6
// with and without NAT) in its compact maps, and its counts, top lists and
// lookups equal those of a plain map of the same events, through new,
// update and destroy events, an entry changing kind, and a resync.
func TestTableModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a4 := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
	a6 := func(i int) netip.Addr {
		return netip.AddrFrom16([16]byte{0xfd, 0, 15: byte(i), 14: byte(i >> 8)})
	}
	protos := []uint8{6, 17, 1, 58, 132}
	type ref struct {
		reply      tuple
		status, id uint32
		tcpState   uint8
		zone       uint16
		orig       tuple
	}
	gen := func(i int, nat bool) (orig, reply tuple, zone uint16) {
		v6 := i%5 == 0
		addr := a4
		if v6 {
			addr = a6
		}
		proto := protos[i%len(protos)]
		orig = tupleOf(addr(i%37), addr(1000+i%11), uint16(i), 80, proto)
		reply = orig.reverse()
		if nat || i%3 == 0 { // DNAT
			reply = tupleOf(addr(2000+i%7), addr(i%37), 8080, uint16(i), proto)
		}
		if i%7 == 0 { // and SNAT
			reply.dst = addr(3000).As16()
			if !v6 {
				reply.dst = [16]byte{10, 9, 9, 9}
			}
		}
		return orig, reply, uint16(i % 2)
	}
	tab := newTable()
	want := map[key]ref{}
	msg := func(i int, kind msgKind) ctMsg {
		orig, reply, zone := gen(i, rng.IntN(8) == 0) // now and then an entry changes kind
		m := ctMsg{kind: kind, orig: orig, reply: reply, zone: zone, id: uint32(i), status: uint32(rng.IntN(64)),
			tcpState: uint8(rng.IntN(10)), hasTCPState: true, hasOrig: true, hasReply: true}
		return m
	}
	record := func(m *ctMsg) {
		k := key{m.orig, m.zone}
		if m.kind == kindDestroy {
			delete(want, k)
			return
		}
		want[k] = ref{reply: m.reply, status: m.status, id: m.id, tcpState: m.tcpState, zone: m.zone, orig: m.orig}
	}
	check := func() {
		t.Helper()
		var s Snapshot
		tab.fill(&s, 1000)
		require.Equal(t, len(want), s.Tracked)
		byProto, byState := map[string]int{}, map[string]int{}
		assured, unreplied, nated := 0, 0, 0
		src, svc := map[netip.AddrPort]int{}, map[Holder]int{}
		for k, r := range want {
			byProto[protoName(k.t.proto)]++
			if k.t.proto == 6 {
				byState[TCPState(r.tcpState).String()]++
			}
			if r.status&StatusAssured != 0 {
				assured++
			}
			if r.status&StatusSeenReply == 0 {
				unreplied++
			}
			if r.reply != k.t.reverse() {
				nated++
			}
			src[netip.AddrPortFrom(k.t.addr(&k.t.src), 0)]++
			svc[Holder{Addr: netip.AddrPortFrom(k.t.addr(&k.t.dst), svcPort(&k.t)), Proto: k.t.proto}]++

			for _, dir := range []struct {
				tp    tuple
				match Match
			}{{k.t, MatchOriginal}, {k.t.reverse(), MatchOriginalReversed}, {r.reply, MatchReply}, {r.reply.reverse(), MatchReplyReversed}} {
				n, ok := tab.lookup(dir.tp, k.zone)
				require.True(t, ok)
				if dir.match == MatchReply || dir.match == MatchReplyReversed {
					if r.reply == k.t.reverse() {
						continue // the same tuples as the original's
					}
				}
				require.Equal(t, dir.match, n.Match)
				require.Equal(t, k.t.Tuple(), n.Original)
				require.Equal(t, r.reply.Tuple(), n.Reply)
				require.Equal(t, r.id, n.ID)
				require.Equal(t, r.status, n.Status)
				require.Equal(t, TCPState(r.tcpState), n.TCPState)
			}
		}
		require.Equal(t, byProto, s.ByProtocol)
		require.Equal(t, byState, s.ByTCPState)
		require.Equal(t, assured, s.Assured)
		require.Equal(t, unreplied, s.Unreplied)
		require.Equal(t, nated, s.NATed)
		require.Len(t, s.TopSources, len(src))
		for _, h := range s.TopSources {
			require.Equal(t, src[h.Addr], h.Entries, h.Addr)
		}
		require.Len(t, s.TopServices, len(svc))
		for _, h := range s.TopServices {
			require.Equal(t, svc[Holder{Addr: h.Addr, Proto: h.Proto}], h.Entries, h.Addr)
		}
		dnat := 0
		for k, r := range want {
			n := natOf(k, &entry{reply: r.reply}, MatchOriginal)
			if n.DNAT() {
				dnat++
			}
		}
		w := &Watcher{tab: tab}
		got := 0
		w.RangeDNAT(func(n *NAT) bool { got++; return true })
		require.Equal(t, dnat, got)
	}

	const n = 3000
	for round := range 3 {
		for range 4 * n {
			i := rng.IntN(n)
			kind := kindNew
			switch rng.IntN(3) {
			case 1:
				kind = kindUpdate
			case 2:
				kind = kindDestroy
			}
			m := msg(i, kind)
			tab.apply(&m)
			record(&m)
		}
		check()
		// A resync that finds some entries gone (their destroys lost) and
		// some others changed.
		g := tab.beginResync()
		var dump []ctMsg
		for k := range want {
			i := int(k.t.sport)
			if i%4 == round {
				delete(want, k)
				continue
			}
			m := msg(i, kindDump)
			dump = append(dump, m)
		}
		for i := range dump {
			record(&dump[i])
		}
		tab.dumped(g, dump)
		tab.endResync(g, true)
		check()
	}
	require.Positive(t, len(tab.m4))
	require.Positive(t, len(tab.n4))
	require.Positive(t, len(tab.m6))
	require.Positive(t, len(tab.nat6))
}
