package flowtable

import (
	"net/netip"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// entry is one flow. Sides are canonical: side 0 sent k's source →
// destination, side 1 the reverse; client says which side initiated.
//
// The layout keeps what an established flow's packet touches in two cache
// lines: the key with the times and state bytes (line 0) and the hop of the
// packet's interface (one line each, right after line 0, so the first hop
// is the line next to the key). The TCP handshake state (line 5) is read
// only by packets with SYN, and by the client's ACKs while stWantAck says
// the handshake's last ACK is still to be timed; the rest is cold. An entry
// holds no pointers, so the garbage collector never scans the table.
type entry struct {
	// line 0
	k                          ikey
	first, last                int64
	nhops, client, seen, st    uint8 // seen: bit per side that sent; st: st* bits
	tcpFlags, rstFrom, finFrom uint8 // rstFrom, finFrom: bit per side
	app                        flow.App

	hops [flow.MaxHops]hop // lines 1-4

	// line 5: TCP handshake
	hash                uint64
	hsIf                int32
	isn                 uint32
	synT, synAckT, ackT int64
	reported            int64 // last active-timeout report (or first)
	l7If                int32
	hopOverflow         uint32
	synRetrans          uint16
	npend, nexch        uint8

	// cold: touched on hop creation, rare events, L7 messages and reports
	hopFirst   [flow.MaxHops]int64
	retrans    [flow.MaxHops][2]uint32
	zeroWin    [flow.MaxHops][2]uint16
	retransMax [2]uint32
	tunnel     tunnel
	req, resp  uint32
	errs       uint32
	unans      uint32
	pend       [4]pending
	exch       [flow.MaxExchanges]flow.Exchange
	qnameLen   uint8 // 0: no DNS question name seen yet
	qnameTrunc bool
	qname      [flow.MaxDNSName]byte // the first DNS question name (flow.AppInfo.Name)
	_          [14]byte              // whole cache lines: entries stay line-aligned
}

// tunnel is a flow.Tunnel without pointers: its outer addresses as the
// words of ikey (see addrWords) and their kinds (0: no address, 4, 6).
type tunnel struct {
	src0, src1, dst0, dst1 uint64
	vni                    uint32
	encap                  flow.Encap
	srcKind, dstKind       uint8
}

func makeTunnel(t *flow.Tunnel) tunnel {
	x := tunnel{vni: t.VNI, encap: t.Encap, srcKind: addrKind(t.OuterSrc), dstKind: addrKind(t.OuterDst)}
	x.src0, x.src1 = addrWords(&t.OuterSrc)
	x.dst0, x.dst1 = addrWords(&t.OuterDst)
	return x
}

func addrKind(a netip.Addr) uint8 {
	switch {
	case a.Is4():
		return 4
	case a.IsValid():
		return 6
	}
	return 0
}

func (x *tunnel) flowTunnel() flow.Tunnel {
	t := flow.Tunnel{Encap: x.encap, VNI: x.vni}
	if x.srcKind != 0 {
		t.OuterSrc = addr(x.src0, x.src1, x.srcKind == 4)
	}
	if x.dstKind != 0 {
		t.OuterDst = addr(x.dst0, x.dst1, x.dstKind == 4)
	}
	return t
}

// hop is the per-packet part of one observation point of an entry, with
// canonical sides; its rarely written counters live in the entry.
type hop struct {
	last        int64
	pkts, bytes [2]uint64
	ifIndex     int32
	role        flow.Role
	encap       flow.Encap
	seqOK       uint8 // bit per side: seqEnd valid
	dir         [2]flow.Direction
	seqEnd      [2]uint32 // highest sequence number + payload seen
}

// pending is an L7 request waiting for its response.
type pending struct {
	t     int64
	id    uint16
	other bool // a DNS query for another name than the entry's qname
}

// Entry state bits.
const (
	stFixed   uint8 = 1 << iota // client known from a SYN or SYN-ACK
	stSyn                       // client's SYN seen
	stSynAck                    // server's SYN-ACK seen
	stRstOpen                   // RST seen before FINs from both sides
	stWantAck                   // SYN-ACK timed, handshake ACK not yet: synAckT != 0 && ackT == 0
)

// init sets up a new entry from its first packet, guessing the client: the
// sender of a SYN, the receiver of a SYN-ACK or of an L7 response, else the
// sender unless it sends from a port below the ephemeral range to one in it.
func (e *entry) init(p *flow.Packet, rev bool) {
	e.first, e.last, e.reported = p.Time, p.Time, p.Time
	s := side(rev)
	e.client = s
	if e.k.proto() == flow.ProtoTCP && p.TCPFlags&flow.TCPSyn != 0 {
		return // the SYN or SYN-ACK fixes it in tcp
	}
	switch {
	case p.App != flow.AppNone:
		if p.Response {
			e.client = 1 - s
		}
	case p.Key.SrcPort != 0 && p.Key.SrcPort < ephemeralLow && p.Key.DstPort >= ephemeralLow:
		e.client = 1 - s
	}
}

// ephemeralLow is the start of Linux's default ephemeral port range.
const ephemeralLow = 32768

func side(rev bool) uint8 {
	if rev {
		return 1
	}
	return 0
}

// update accounts packet p, sent by canonical side rev, to entry e.
func (sh *shard) update(e *entry, p *flow.Packet, rev bool) {
	s := side(rev)
	t := p.Time
	if t > e.last {
		e.last = t
	}
	if t < e.first {
		e.first = t
	}
	e.seen |= 1 << s
	hi := sh.hop(e, p)
	var h *hop
	if hi >= 0 {
		h = &e.hops[hi]
		h.pkts[s]++
		h.bytes[s] += uint64(p.Len)
		if t > h.last {
			h.last = t
		}
		if h.dir[s] == flow.DirUnknown {
			h.dir[s] = p.Dir
		}
	}
	if p.Tunnel.Encap != flow.EncapNone {
		if h != nil {
			h.encap = p.Tunnel.Encap
		}
		if e.tunnel.encap == flow.EncapNone {
			e.tunnel = makeTunnel(&p.Tunnel)
		}
	}
	repeat := false
	if e.k.proto() == flow.ProtoTCP {
		repeat = sh.tcp(e, hi, p, s)
	}
	// A retransmitted segment's L7 message was counted with the original.
	if p.App != flow.AppNone && !repeat {
		sh.app(e, p)
	}
}

// hop returns the index of the hop of p's interface, adding it when there
// is room, or -1 (counted) when the entry already has flow.MaxHops others.
func (sh *shard) hop(e *entry, p *flow.Packet) int {
	for i := range int(e.nhops) {
		if e.hops[i].ifIndex == p.IfIndex {
			return i
		}
	}
	i := int(e.nhops)
	if i == len(e.hops) {
		e.hopOverflow++
		sh.hopOverflows.Add(1)
		return -1
	}
	e.nhops++
	e.hops[i] = hop{ifIndex: p.IfIndex, role: p.Role, last: p.Time}
	e.hopFirst[i] = p.Time
	e.retrans[i], e.zeroWin[i] = [2]uint32{}, [2]uint16{}
	return i
}

// tcp tracks the handshake, teardown, retransmissions and zero windows. It
// reports whether p's payload starts before the highest sequence number
// side s sent at the hop (it repeats data: a retransmission).
func (sh *shard) tcp(e *entry, hi int, p *flow.Packet, s uint8) (repeat bool) {
	const syn, ack, rst, fin = flow.TCPSyn, flow.TCPAck, flow.TCPRst, flow.TCPFin
	f := p.TCPFlags
	e.tcpFlags |= f
	switch {
	case f&syn != 0 && f&ack == 0:
		if e.st&stFixed == 0 {
			e.client, e.st = s, e.st|stFixed
		}
		if s == e.client {
			if e.st&stSyn == 0 {
				e.st |= stSyn
				e.synT, e.hsIf, e.isn = p.Time, p.IfIndex, p.Seq
			} else if p.IfIndex == e.hsIf && p.Seq == e.isn {
				e.synRetrans++
				sh.retransmits.Add(1)
			}
		}
	case f&syn != 0:
		if e.st&stFixed == 0 {
			e.client, e.st = 1-s, e.st|stFixed
		}
		if s != e.client {
			e.st |= stSynAck
			if e.st&stSyn != 0 && p.IfIndex == e.hsIf {
				if e.synAckT == 0 {
					e.synAckT = p.Time
					if p.Time != 0 {
						e.st |= stWantAck
					}
				} else if hi >= 0 {
					sh.retrans(e, hi, s)
				}
			}
		}
	case f&ack != 0 && f&rst == 0:
		if e.st&stWantAck != 0 && s == e.client && p.IfIndex == e.hsIf {
			e.ackT = p.Time
			if p.Time != 0 {
				e.st &^= stWantAck
			}
			sh.handshake.observe(e.ackT - e.synT)
		}
	}
	if f&rst != 0 {
		e.rstFrom |= 1 << s
		if e.finFrom != 3 {
			e.st |= stRstOpen
		}
	}
	if f&fin != 0 {
		e.finFrom |= 1 << s
	}
	if hi < 0 {
		return false
	}
	h := &e.hops[hi]
	if p.Window == 0 && f&(syn|rst) == 0 && e.zeroWin[hi][s] < 0xffff {
		e.zeroWin[hi][s]++
	}
	bit := uint8(1) << s
	if f&syn != 0 {
		if h.seqOK&bit == 0 {
			h.seqEnd[s], h.seqOK = p.Seq+1, h.seqOK|bit
		}
		return false
	}
	if p.PayloadLen == 0 || f&rst != 0 {
		return false
	}
	end := p.Seq + uint32(p.PayloadLen)
	if h.seqOK&bit == 0 {
		h.seqEnd[s], h.seqOK = end, h.seqOK|bit
		return false
	}
	// A segment starting before the highest sequence seen repeats data,
	// except a one-byte keep-alive just below it. The difference is taken
	// modulo 2^32, so sequence numbers that wrap still advance.
	d := int32(p.Seq - h.seqEnd[s])
	if d < 0 && (p.PayloadLen != 1 || d != -1) && !p.FilterSeq {
		sh.retrans(e, hi, s)
	}
	if int32(end-h.seqEnd[s]) > 0 {
		h.seqEnd[s] = end
	}
	return d < 0
}

// retrans counts a retransmission of side s at hop hi; the table's counter
// grows only when the flow's largest per-hop count for s does.
func (sh *shard) retrans(e *entry, hi int, s uint8) { sh.addRetrans(e, hi, s, 1) }

// addRetrans counts n retransmissions of side s at hop hi.
func (sh *shard) addRetrans(e *entry, hi int, s uint8, n uint32) {
	e.retrans[hi][s] += n
	if m := e.retrans[hi][s]; m > e.retransMax[s] {
		sh.retransmits.Add(uint64(m - e.retransMax[s]))
		e.retransMax[s] = m
	}
}

// merge adds what a kernel filter counted (c, sent by canonical side rev)
// to e: packets, bytes and the last time at c's hop, the flags of the
// counted segments (ACK, and PSH when some had it) and the data
// retransmissions.
func (sh *shard) merge(e *entry, c *flow.Counted, rev bool) {
	s := side(rev)
	if c.Packets > 0 {
		e.seen |= 1 << s
		if c.Last > e.last {
			e.last = c.Last
		}
	}
	p := flow.Packet{Time: c.Last, IfIndex: c.IfIndex, Role: c.Role, Dir: c.Dir}
	hi := sh.hop(e, &p)
	if hi < 0 {
		return
	}
	h := &e.hops[hi]
	h.pkts[s] += c.Packets
	h.bytes[s] += c.Bytes
	if c.Last > h.last {
		h.last = c.Last
	}
	if h.dir[s] == flow.DirUnknown && c.Packets > 0 {
		h.dir[s] = c.Dir
	}
	if c.Encap != flow.EncapNone && c.Packets > 0 {
		h.encap = c.Encap
	}
	if e.k.proto() != flow.ProtoTCP {
		return
	}
	if c.Packets > 0 {
		e.tcpFlags |= flow.TCPAck
	}
	if c.Push > 0 {
		e.tcpFlags |= flow.TCPPsh
	}
	if c.Retransmits > 0 {
		sh.addRetrans(e, hi, s, c.Retransmits)
	}
}

// app matches DNS queries to responses by ID and HTTP requests to
// responses in order, at the first interface an L7 message was seen on.
func (sh *shard) app(e *entry, p *flow.Packet) {
	if e.app == flow.AppNone {
		e.app, e.l7If = p.App, p.IfIndex
	}
	if p.App != e.app || p.IfIndex != e.l7If {
		return
	}
	dns := e.app == flow.AppDNS
	other := false
	if dns && p.DNSNameLen > 0 {
		if e.qnameLen == 0 {
			n := copy(e.qname[:], p.DNSName[:min(int(p.DNSNameLen), len(p.DNSName))])
			e.qnameLen, e.qnameTrunc = uint8(n), p.DNSNameTruncated
		} else {
			other = !e.sameName(p)
		}
	}
	if !p.Response {
		e.req++
		sh.requests[e.app].Add(1)
		if dns {
			for i := range e.npend {
				if e.pend[i].id == p.DNSID {
					return // a repeated query: time it from the first
				}
			}
		}
		if int(e.npend) == len(e.pend) {
			copy(e.pend[:], e.pend[1:])
			e.npend--
			e.unans++
		}
		e.pend[e.npend] = pending{t: p.Time, id: p.DNSID, other: other}
		e.npend++
		return
	}
	e.resp++
	code := p.HTTPStatus
	if dns {
		code = uint16(p.DNSRcode)
	}
	sh.responses[e.app][CodeClass(e.app, code)].Add(1)
	i := uint8(0)
	if dns {
		for i < e.npend && e.pend[i].id != p.DNSID {
			i++
		}
	}
	if i >= e.npend {
		return // no request waiting (or not seen)
	}
	req := e.pend[i]
	copy(e.pend[i:e.npend], e.pend[i+1:e.npend])
	e.npend--
	x := flow.Exchange{Start: req.t, Latency: time.Duration(p.Time - req.t), ID: req.id, OtherName: req.other}
	if dns {
		x.Code = uint16(p.DNSRcode)
		sh.dns.observe(int64(x.Latency))
	} else {
		x.Code = p.HTTPStatus
		sh.http.observe(int64(x.Latency))
	}
	failed := x.Failed(e.app)
	if failed {
		e.errs++
	}
	switch {
	case int(e.nexch) < len(e.exch):
		e.exch[e.nexch] = x
		e.nexch++
	case failed:
		for _, k := range e.exch {
			if k.Failed(e.app) {
				return
			}
		}
		e.exch[len(e.exch)-1] = x
	}
}

// sameName reports whether p's DNS question name is the entry's (ASCII
// case folded, as DNS compares names). Two truncated names with the same
// kept prefix count as the same.
func (e *entry) sameName(p *flow.Packet) bool {
	n := int(e.qnameLen)
	if int(p.DNSNameLen) != n || p.DNSNameTruncated != e.qnameTrunc || n > len(p.DNSName) {
		return false
	}
	a, b := e.qname[:n], p.DNSName[:n]
	if string(a) == string(b) { // the common case, compared a word at a time
		return true
	}
	for i := range a {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if l := x | 0x20; l != y|0x20 || l < 'a' || l > 'z' {
			return false
		}
	}
	return true
}

// closed reports whether a TCP flow saw a RST or FINs from both sides.
func (e *entry) closed() bool { return e.rstFrom != 0 || e.finFrom == 3 }

// outcome classifies the flow; final says it is leaving the table.
func (e *entry) outcome(final bool) flow.Outcome {
	if e.k.proto() != flow.ProtoTCP {
		if e.seen == 1<<e.client {
			return flow.OutcomeUnreplied
		}
		return flow.OutcomeReplied
	}
	if e.st&stSyn != 0 && e.st&stSynAck == 0 {
		switch {
		case e.rstFrom&(1<<(1-e.client)) != 0:
			return flow.OutcomeRefused
		case e.rstFrom != 0:
			return flow.OutcomeReset
		case final:
			return flow.OutcomeTimeout
		}
		return flow.OutcomeSynSent
	}
	switch {
	case e.st&stRstOpen != 0:
		return flow.OutcomeReset
	case e.finFrom != 0:
		return flow.OutcomeClosed
	case e.st&stSynAck != 0:
		return flow.OutcomeEstablished
	}
	return flow.OutcomeUnknown
}

// record fills r from e, oriented client → server.
func (e *entry) record(r *flow.Record, end flow.EndReason, final bool) {
	c, sv := e.client, 1-e.client
	key := e.k.flowKey()
	if c == 1 {
		key = key.Reverse()
	}
	*r = flow.Record{
		Key:         key,
		First:       e.first,
		Last:        e.last,
		End:         end,
		Outcome:     e.outcome(final),
		Tunnel:      e.tunnel.flowTunnel(),
		NumHops:     e.nhops,
		HopOverflow: e.hopOverflow,
	}
	var zw [2]uint32
	for i := range int(e.nhops) {
		h := &e.hops[i]
		z := [2]uint32{uint32(e.zeroWin[i][c]), uint32(e.zeroWin[i][sv])}
		r.Hops[i] = flow.Hop{
			IfIndex:     h.ifIndex,
			Role:        h.role,
			Dir:         h.dir[c],
			Encap:       h.encap,
			First:       e.hopFirst[i],
			Last:        h.last,
			Packets:     [2]uint64{h.pkts[c], h.pkts[sv]},
			Bytes:       [2]uint64{h.bytes[c], h.bytes[sv]},
			Retransmits: [2]uint32{e.retrans[i][c], e.retrans[i][sv]},
			ZeroWindows: z,
		}
		zw[0], zw[1] = max(zw[0], z[0]), max(zw[1], z[1])
	}
	if e.k.proto() == flow.ProtoTCP {
		r.TCP = flow.TCP{
			Flags:            e.tcpFlags,
			RSTFrom:          sideBits(e.rstFrom, c),
			FINFrom:          sideBits(e.finFrom, c),
			SYNRetransmits:   e.synRetrans,
			HandshakeIfIndex: e.hsIf,
			Retransmits:      [2]uint32{e.retransMax[c], e.retransMax[sv]},
			ZeroWindows:      zw,
		}
		if e.st&stSyn != 0 {
			r.TCP.ISN = e.isn
			r.TCP.SYN, r.TCP.SYNACK, r.TCP.ACK = e.synT, e.synAckT, e.ackT
		}
	}
	if e.app != flow.AppNone {
		r.L7 = flow.AppInfo{
			App:          e.app,
			IfIndex:      e.l7If,
			Requests:     e.req,
			Responses:    e.resp,
			Errors:       e.errs,
			Unanswered:   e.unans,
			Exchanges:    e.exch,
			NumExchanges: e.nexch,
		}
		if e.qnameLen > 0 {
			r.L7.Name, r.L7.NameLen, r.L7.NameTruncated = e.qname, e.qnameLen, e.qnameTrunc
		}
		if final {
			r.L7.Unanswered += uint32(e.npend)
		}
	}
}

// sideBits maps canonical side bits to FromClient/FromServer bits.
func sideBits(b, client uint8) uint8 {
	return (b>>client)&1<<flow.FromClient | (b>>(1-client))&1<<flow.FromServer
}
