package flowtable

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"github.com/layerscope/layerscope/agent/flow"
)

// addrWords returns the 128 bits of a as two big-endian words, as
// a.As16 would give them. netip.Addr holds exactly these two words first
// (Go 1.18 and later); reading them directly saves a store and reload of
// 32 bytes per packet. directWords is checked at start-up against As16 so a
// different layout falls back to it.
func addrWords(a *netip.Addr) (hi, lo uint64) {
	if directWords {
		w := (*[2]uint64)(unsafe.Pointer(a))
		return w[0], w[1]
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

var directWords = func() bool {
	if unsafe.Sizeof(netip.Addr{}) != 24 {
		return false
	}
	for _, s := range []string{"10.244.1.8", "fd00:1:2:3:4:5:6:7", "::ffff:1.2.3.4", "255.0.0.1"} {
		a := netip.MustParseAddr(s)
		b := a.As16()
		w := (*[2]uint64)(unsafe.Pointer(&a))
		if w[0] != binary.BigEndian.Uint64(b[:8]) || w[1] != binary.BigEndian.Uint64(b[8:]) {
			return false
		}
	}
	return true
}()

// ikey is the table's canonical form of a flow.Key: the two addresses as
// 16-byte words and ports, protocol and address families in one word, with
// the endpoints ordered so both directions give one ikey. Zones of IPv6
// addresses are not part of it.
type ikey struct {
	s0, s1, d0, d1 uint64
	meta           uint64 // sport<<48 | dport<<32 | proto<<8 | src is4<<1 | dst is4
}

// makeKey returns the canonical ikey of k and whether k runs from the
// ikey's destination to its source.
func makeKey(k *flow.Key) (ikey, bool) {
	var x ikey
	rev := x.set(k)
	return x, rev
}

// set makes x the canonical ikey of k and reports whether k runs from x's
// destination to its source. It works in registers and stores each word of
// x once, with the width the hash and the key comparison read it back
// (building the key on the stack and copying it out made the processor
// wait for store forwarding that fails on the copy's wider loads).
func (x *ikey) set(k *flow.Key) bool {
	s0, s1 := addrWords(&k.Src)
	d0, d1 := addrWords(&k.Dst)
	sp, dp := k.SrcPort, k.DstPort
	var s4, d4 uint64
	if k.Src.Is4() {
		s4 = 1
	}
	if k.Dst.Is4() {
		d4 = 1
	}
	rev := s0 > d0 || s0 == d0 && (s1 > d1 || s1 == d1 && (sp > dp || sp == dp && s4 > d4))
	if rev {
		s0, s1, d0, d1 = d0, d1, s0, s1
		sp, dp, s4, d4 = dp, sp, d4, s4
	}
	x.s0, x.s1, x.d0, x.d1 = s0, s1, d0, d1
	x.meta = uint64(sp)<<48 | uint64(dp)<<32 | uint64(k.Proto)<<8 | s4<<1 | d4
	return rev
}

// equal reports whether x and y are the same key, without a call to
// runtime.memequal.
func (x *ikey) equal(y *ikey) bool {
	return (x.s0^y.s0)|(x.s1^y.s1)|(x.d0^y.d0)|(x.d1^y.d1)|(x.meta^y.meta) == 0
}

func (x *ikey) proto() uint8 { return uint8(x.meta >> 8) }

// flowKey returns the flow.Key of x, from its source to its destination.
func (x *ikey) flowKey() flow.Key {
	return flow.Key{
		Src:     addr(x.s0, x.s1, x.meta&2 != 0),
		Dst:     addr(x.d0, x.d1, x.meta&1 != 0),
		SrcPort: uint16(x.meta >> 48),
		DstPort: uint16(x.meta >> 32),
		Proto:   x.proto(),
	}
}

func addr(w0, w1 uint64, is4 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], w0)
	binary.BigEndian.PutUint64(b[8:], w1)
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}
