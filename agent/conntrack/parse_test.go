package conntrack

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/stretchr/testify/require"
)

func encTuple(t testing.TB, src, dst netip.Addr, proto uint8, sport, dport uint16) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ctaTupleIP|unixNested, func(ae *netlink.AttributeEncoder) error {
		if src.Is4() {
			ae.Bytes(ctaIPv4Src, src.AsSlice())
			ae.Bytes(ctaIPv4Dst, dst.AsSlice())
		} else {
			ae.Bytes(ctaIPv6Src, src.AsSlice())
			ae.Bytes(ctaIPv6Dst, dst.AsSlice())
		}
		return nil
	})
	ae.Nested(ctaTupleProto|unixNested, func(ae *netlink.AttributeEncoder) error {
		ae.Uint8(ctaProtoNum, proto)
		ae.ByteOrder = binary.BigEndian
		ae.Uint16(ctaProtoSrcPort, sport)
		ae.Uint16(ctaProtoDstPort, dport)
		return nil
	})
	b, err := ae.Encode()
	require.NoError(t, err)
	return b
}

const unixNested = 0x8000

func encFlow(t testing.TB, orig, reply []byte, status uint32, tcpState int) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(ctaTupleOrig|unixNested, orig)
	ae.Bytes(ctaTupleReply|unixNested, reply)
	ae.ByteOrder = binary.BigEndian
	ae.Uint32(ctaStatus, status)
	ae.Uint32(ctaID, 0xdeadbeef)
	if tcpState >= 0 {
		ae.Nested(ctaProtoinfo|unixNested, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(ctaProtoinfoTCP|unixNested, func(ae *netlink.AttributeEncoder) error {
				ae.Uint8(ctaProtoinfoTCPState, uint8(tcpState))
				return nil
			})
			return nil
		})
	}
	b, err := ae.Encode()
	require.NoError(t, err)
	return append([]byte{2, 0, 0, 0}, b...)
}

func TestParseFlow(t *testing.T) {
	c := netip.MustParseAddr("10.244.0.5")
	vip := netip.MustParseAddr("10.96.0.42")
	pod := netip.MustParseAddr("10.244.1.8")
	v6a, v6b := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	tests := []struct {
		name       string
		msg        []byte
		orig, rep  Tuple
		tcpState   TCPState
		hasState   bool
		wantStatus uint32
	}{
		{
			name:     "DNAT tcp",
			msg:      encFlow(t, encTuple(t, c, vip, 6, 40000, 8080), encTuple(t, pod, c, 6, 8080, 40000), StatusConfirmed|StatusDstNAT, 3),
			orig:     Tuple{c, vip, 40000, 8080, 6},
			rep:      Tuple{pod, c, 8080, 40000, 6},
			tcpState: TCPEstablished, hasState: true, wantStatus: StatusConfirmed | StatusDstNAT,
		},
		{
			name: "udp v6 without protoinfo",
			msg:  encFlow(t, encTuple(t, v6a, v6b, 17, 1, 2), encTuple(t, v6b, v6a, 17, 2, 1), StatusConfirmed, -1),
			orig: Tuple{v6a, v6b, 1, 2, 17}, rep: Tuple{v6b, v6a, 2, 1, 17}, wantStatus: StatusConfirmed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m ctMsg
			require.NoError(t, parseFlow(tt.msg, kindNew, &m))
			require.Equal(t, tt.orig, m.orig.Tuple())
			require.Equal(t, tt.rep, m.reply.Tuple())
			require.Equal(t, tt.wantStatus, m.status)
			require.Equal(t, uint32(0xdeadbeef), m.id)
			require.Equal(t, tt.hasState, m.hasTCPState)
			require.Equal(t, tt.tcpState, TCPState(m.tcpState))
			require.Zero(t, testing.AllocsPerRun(100, func() { _ = parseFlow(tt.msg, kindNew, &m) }))
			for i := range tt.msg { // every truncation fails cleanly or parses a prefix
				_ = parseFlow(tt.msg[:i], kindNew, &m)
			}
		})
	}
	var m ctMsg
	require.ErrorIs(t, parseFlow([]byte{2, 0}, kindNew, &m), errShortMsg)
	require.ErrorIs(t, parseFlow([]byte{2, 0, 0, 0, 3, 0, 1, 0}, kindNew, &m), errBadAttrLen)
	require.ErrorIs(t, parseFlow([]byte{2, 0, 0, 0}, kindNew, &m), errNoTuple)
}

func FuzzParseFlow(f *testing.F) {
	c, s := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	f.Add(encFlow(f, encTuple(f, c, s, 6, 1, 2), encTuple(f, s, c, 6, 2, 1), StatusAssured, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m ctMsg
		if err := parseFlow(b, kindDump, &m); err != nil {
			return
		}
		if !m.hasOrig {
			t.Fatal("parsed without an original tuple")
		}
		if m.orig.Tuple().Key() != tupleOfKey(m.orig.Tuple().Key()).Tuple().Key() && !m.orig.v6 {
			t.Fatal("tuple does not round-trip through a flow key")
		}
	})
}

// The table reconciles a dump with events that raced it.
func TestTableResync(t *testing.T) {
	tp := func(i byte) tuple {
		return tupleOf(netip.AddrFrom4([4]byte{10, 0, 0, i}), netip.AddrFrom4([4]byte{10, 0, 1, 1}), 1000, 80, 6)
	}
	msg := func(i byte, kind msgKind, state uint8) ctMsg {
		return ctMsg{kind: kind, orig: tp(i), reply: tp(i).reverse(), tcpState: state, hasTCPState: true, hasOrig: true}
	}
	tab := newTable()
	for i := byte(1); i <= 4; i++ {
		m := msg(i, kindNew, 1)
		tab.apply(&m)
	}
	g := tab.beginResync()
	d3 := msg(3, kindDestroy, 0) // destroyed after the kernel dumped it
	tab.apply(&d3)
	u2 := msg(2, kindUpdate, 3) // updated after the kernel dumped it
	tab.apply(&u2)
	n5 := msg(5, kindNew, 1) // created after the dump passed its bucket
	tab.apply(&n5)
	// The dump: 1 unchanged, 2 and 3 stale, 4 absent (its destroy was lost).
	tab.dumped(g, []ctMsg{msg(1, kindDump, 1), msg(2, kindDump, 1), msg(3, kindDump, 1)})
	require.Equal(t, 1, tab.endResync(g, true))
	require.Equal(t, 3, tab.len())
	for i, want := range map[byte]TCPState{1: TCPSynSent, 2: TCPEstablished, 5: TCPSynSent} {
		n, ok := tab.lookup(tp(i), 0)
		require.True(t, ok, "entry %d", i)
		require.Equal(t, want, n.TCPState, "entry %d", i)
	}
	for _, i := range []byte{3, 4} {
		_, ok := tab.lookup(tp(i), 0)
		require.False(t, ok, "entry %d", i)
	}
	var s Snapshot
	tab.fill(&s, 2)
	require.Equal(t, map[string]int{"tcp": 3}, s.ByProtocol)
	require.Equal(t, map[string]int{"SYN_SENT": 2, "ESTABLISHED": 1}, s.ByTCPState)
	require.Len(t, s.TopSources, 2)
	require.Equal(t, 3, s.TopServices[0].Entries)
}

// Destroyed NAT entries stay translatable for a while: a refused
// connection's entry dies with its RST, before its flow ends.
func TestGraveyard(t *testing.T) {
	client := netip.AddrFrom4([4]byte{10, 244, 0, 8})
	vip := netip.AddrFrom4([4]byte{10, 96, 0, 42})
	pod := netip.AddrFrom4([4]byte{10, 244, 1, 8})
	orig := func(port uint16) tuple { return tupleOf(client, vip, port, 8080, 6) }
	reply := func(port uint16) tuple { return tupleOf(pod, client, 8080, port, 6) }
	tab := newTable()
	apply := func(kind msgKind, port uint16) {
		m := ctMsg{kind: kind, orig: orig(port), reply: reply(port), id: uint32(port), hasOrig: true, hasReply: true}
		tab.apply(&m)
	}
	apply(kindNew, 1000)
	apply(kindDestroy, 1000)
	require.Equal(t, 0, tab.len())
	for _, tc := range []struct {
		tp   tuple
		want Match
	}{
		{orig(1000), MatchOriginal},                 // client → VIP, before DNAT
		{reply(1000).reverse(), MatchReplyReversed}, // client → pod, after DNAT
		{reply(1000), MatchReply},                   // pod → client
	} {
		n, ok := tab.lookup(tc.tp, 0)
		require.True(t, ok)
		require.Equal(t, tc.want, n.Match)
		require.True(t, n.DNAT())
		require.Equal(t, uint32(1000), n.ID)
	}
	// Plain (un-NATed) entries are not kept, and the oldest go first.
	plain := ctMsg{kind: kindNew, orig: tupleOf(client, pod, 7, 8080, 6), reply: tupleOf(pod, client, 8080, 7, 6), hasOrig: true}
	tab.apply(&plain)
	plain.kind = kindDestroy
	tab.apply(&plain)
	_, ok := tab.lookup(plain.orig, 0)
	require.False(t, ok)
	for p := uint16(2000); p < 2000+graveyardSize; p++ {
		apply(kindNew, p)
		apply(kindDestroy, p)
	}
	_, ok = tab.lookup(orig(1000), 0)
	require.False(t, ok, "the oldest destroyed entry is forgotten once the graveyard is full")
	_, ok = tab.lookup(orig(2000+graveyardSize-1), 0)
	require.True(t, ok)
}
