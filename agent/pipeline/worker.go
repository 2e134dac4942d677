package pipeline

import (
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/parser"
)

// Table is what a worker needs of the flow table. *flowtable.Table
// implements it; Update must be safe for concurrent use by many workers.
type Table interface {
	Update(p *flow.Packet) bool
}

// mergeTable is a Table that takes a kernel filter's counts
// (*flowtable.Table).
type mergeTable interface {
	Merge(c *flow.Counted) bool
}

// hintedTable is a Table whose updates go faster with a writer's own hints
// (*flowtable.Table).
type hintedTable interface {
	UpdateHinted(p *flow.Packet, h *flowtable.Hints) bool
	UpdateBatch(ps []flow.Packet, h *flowtable.Hints) int
}

// Meta describes one captured frame: where, when and how long it was.
type Meta struct {
	Time     int64 // capture time, Unix nanoseconds
	Len      uint32
	IfIndex  int32
	Role     flow.Role
	Dir      flow.Direction
	LinkType decoders.LinkType
}

// Worker decodes the frames of one source (a capture ring or a file) and
// feeds the flow table. It owns its parser, its Summary, its Packet, its
// counters and, when the table is a *flowtable.Table, its flow-table hints
// (flowtable.Hints: updates through UpdateHinted); Handle is called by one
// goroutine only and takes no lock but the flow table's shard lock, and
// allocates nothing. Publish copies the counters for readers.
type Worker struct {
	parser *parser.Parser
	table  Table
	hinted hintedTable      // table, when it takes hints
	hints  *flowtable.Hints // the worker's own, for hinted
	s      decoders.Summary
	p      flow.Packet
	c      Counters
	dirty  bool
	batch  []flow.Packet // SetBatch's packets, built in place: batch[:nb] wait
	nb     int
	// filterSeq: the source's kernel filter follows the sequence numbers
	// of the TCP frames it can parse (see SetFilterSeq).
	filterSeq bool

	frags    fragTracker
	path     atomic.Pointer[PathConfig] // nil: path checks off
	lastPath pathEvents
	lastTime int64 // packet time of the last frame
	// Clock of the idle fragment expiry (see expireIdle).
	idleFrames        uint64
	idlePkt, idleWall int64

	mu      sync.Mutex
	pub     Counters
	pubPath pathEvents
	events  *pmtuRing

	pathMu  sync.Mutex // serialises the path setters
	pathCfg PathConfig
}

// NewWorker returns a worker decoding with a parser built from cfg and
// updating table (nil: decode and count only).
func NewWorker(cfg parser.Config, table Table) (*Worker, error) {
	p, err := parser.New(cfg)
	if err != nil {
		return nil, err
	}
	w := &Worker{parser: p, table: table}
	if ht, ok := table.(hintedTable); ok {
		w.hinted, w.hints = ht, new(flowtable.Hints)
	}
	return w, nil
}

// SetBatch makes the worker hand its packets to the flow table n at a time
// (flowtable.Table.UpdateBatch) instead of one by one: the packets wait in
// the worker until n have been handled or Flush is called. The caller
// calls Flush where its source pauses (at the end of each ring block);
// Publish flushes too. n <= 1, or a table that is not a
// *flowtable.Table, means no batches (the default); n is capped at
// flowtable.MaxBatch. It flushes the packets waiting first.
func (w *Worker) SetBatch(n int) {
	w.Flush()
	n = min(n, flowtable.MaxBatch)
	if n <= 1 || w.hinted == nil {
		w.batch = nil
		return
	}
	w.batch = make([]flow.Packet, n)
}

// SetFilterSeq tells the worker that its source's kernel filter (the
// capture's offload) follows the sequence numbers of the TCP flows it
// parses and counts their data retransmissions, delivered with Merge: the
// flow table then does not count them from those flows' frames. The
// filter parses Ethernet frames without VLAN tag carrying IPv4 without
// options, not fragmented, or IPv6 without extension headers, and TCP; the
// table counts the retransmissions of every other frame itself.
func (w *Worker) SetFilterSeq(on bool) { w.filterSeq = on }

// filterParses reports whether the capture's kernel filter parses the TCP
// frame (decoded into s) down to its TCP header and so follows its flow's
// sequence numbers: Ethernet without VLAN tags, IPv4 without options and
// not fragmented or IPv6 without extension headers, directly or in VXLAN
// over such IPv4 (the outer header checked in the frame itself).
func filterParses(frame []byte, s *decoders.Summary, tun, fam int) bool {
	if s.VLANTagged() || s.Layers&decoders.LayerFragment != 0 ||
		!(fam == 0 && s.IP.HeaderLen == 20 || fam == 1 && s.IP.HeaderLen == 40) {
		return false
	}
	switch flow.Encap(tun) {
	case flow.EncapNone:
		return true
	case flow.EncapVXLAN:
		return !s.Tunnel.OuterFragment && len(frame) > 14 && frame[12] == 0x08 && frame[13] == 0x00 && frame[14] == 0x45
	}
	return false
}

// Merge accounts what the source's kernel filter counted instead of
// handing the frames over (see flow.Counted): to the per-layer counters
// (frames, packets and bytes by role and direction, tunnel, IP family, TCP
// and its ACK and PSH flags) and to the flow table.
func (w *Worker) Merge(c *flow.Counted) {
	if c.Packets > 0 {
		cs := &w.c
		w.dirty = true
		role, dir := c.Role, c.Dir
		if role >= flow.NumRoles {
			role = flow.RoleOther
		}
		if dir >= NumDirs {
			dir = flow.DirUnknown
		}
		cs.Frames += c.Packets
		cs.Packets[role][dir] += c.Packets
		cs.Bytes[role][dir] += c.Bytes
		fam := 1
		if c.Key.Src.Is4() {
			fam = 0
		}
		cs.IP[fam] += c.Packets
		cs.TCP += c.Packets
		cs.TCPFlags[4] += c.Packets // ACK
		cs.TCPFlags[3] += c.Push    // PSH
		if t := int(c.Encap); t > 0 && t < NumTunnels {
			cs.Tunnel[t] += c.Packets
			cs.TunnelBytes[t] += c.Bytes
		}
	}
	if mt, ok := w.table.(mergeTable); ok {
		mt.Merge(c)
	}
}

// Tracks reports whether the worker's flow table holds the flow of k; false
// without a table.
func (w *Worker) Tracks(k *flow.Key) bool {
	if ht, ok := w.table.(interface{ Has(*flow.Key) bool }); ok {
		return ht.Has(k)
	}
	return false
}

// Flush hands the packets waiting in the worker's batch to the flow table.
func (w *Worker) Flush() {
	if w.nb > 0 {
		w.hinted.UpdateBatch(w.batch[:w.nb], w.hints)
		w.nb = 0
	}
}

// Summary returns the worker's last decoded frame. It is overwritten by the
// next Handle; only the worker's goroutine may read it.
func (w *Worker) Summary() *decoders.Summary { return &w.s }

// Handle decodes one frame and accounts for it. frame is not retained.
func (w *Worker) Handle(frame []byte, m *Meta) {
	s := &w.s
	w.parser.Decode(frame, m.LinkType, s)
	c := &w.c
	w.dirty = true
	c.Frames++
	w.lastTime = m.Time
	role, dir := m.Role, m.Dir
	if role >= flow.NumRoles {
		role = flow.RoleOther
	}
	if dir >= NumDirs {
		dir = flow.DirUnknown
	}
	c.Packets[role][dir]++
	c.Bytes[role][dir] += uint64(m.Len)
	if layer, reason := s.ErrInfo(); reason != decoders.ReasonNone {
		c.DecodeErrors[min(int(layer), NumErrLayers-1)][min(int(reason), NumErrReasons-1)]++
	}
	L := s.Layers
	if L == 0 {
		return
	}
	if s.VLANTagged() { // the outer frame's tags of a tunnelled frame too
		c.VLANTagged++
	}
	if L&decoders.LayerARP != 0 {
		op := s.ARP.Op
		if op > 2 {
			op = 0
		}
		c.ARP[op]++
	}
	tun := 0
	if L&(decoders.LayerVXLAN|decoders.LayerGeneve) != 0 {
		tun = int(s.Tunnel.Kind)
		if tun >= NumTunnels {
			tun = 0
		}
		c.Tunnel[tun]++
		c.TunnelBytes[tun] += uint64(m.Len)
		if s.Tunnel.OuterFragment {
			w.outerFragment(frame, m.LinkType, role, m.Time)
		}
	}
	fam := -1
	switch {
	case L&decoders.LayerIPv4 != 0:
		fam = 0
	case L&decoders.LayerIPv6 != 0:
		fam = 1
	}
	if fam < 0 {
		return
	}
	c.IP[fam]++
	if L&decoders.LayerFragment != 0 {
		pos := 0
		if s.IP.FragOffset != 0 {
			pos = 1
		}
		c.FragRole[role][fam][pos]++
		w.frags.add(&s.IP, fam, m.Time, c)
	}
	if dir == flow.DirIn {
		if pc := w.path.Load(); pc != nil {
			w.checkPath(pc, s, fam, role, m)
		}
	}
	if L&(decoders.LayerICMPv4|decoders.LayerICMPv6) != 0 {
		ifam := 0
		if L&decoders.LayerICMPv6 != 0 {
			ifam = 1
		}
		c.ICMP[ifam][s.ICMP.Type][min(int(s.ICMP.Code), NumICMPCodes-1)]++
		if (ifam == 0 && s.ICMP.Type == decoders.ICMPv4DestUnreachable && s.ICMP.Code == decoders.ICMPv4CodeFragNeeded) ||
			(ifam == 1 && s.ICMP.Type == decoders.ICMPv6PacketTooBig) {
			c.FragNeeded[ifam]++
			w.pmtu(s, ifam, m, role, dir)
		}
	}

	p := &w.p
	if w.batch != nil {
		p = &w.batch[w.nb]
	}
	p.Key.Src, p.Key.Dst = s.IP.Src, s.IP.Dst
	p.Key.Proto = s.IP.Proto
	p.Key.SrcPort, p.Key.DstPort = 0, 0
	p.Time, p.Len, p.IfIndex, p.Role, p.Dir = m.Time, m.Len, m.IfIndex, role, dir
	p.Tunnel = flow.Tunnel{}
	if tun != 0 {
		p.Tunnel = flow.Tunnel{Encap: flow.Encap(tun), VNI: s.Tunnel.VNI, OuterSrc: s.Tunnel.OuterSrc, OuterDst: s.Tunnel.OuterDst}
	}
	p.TCPFlags, p.Window, p.PayloadLen, p.Seq, p.Ack, p.FilterSeq = 0, 0, 0, 0, 0, false
	p.App, p.Response, p.DNSID, p.DNSRcode, p.HTTPStatus = flow.AppNone, false, 0, 0, 0
	p.DNSNameLen, p.DNSNameTruncated = 0, false

	switch {
	case L&decoders.LayerTCP != 0:
		c.TCP++
		f := s.L4.Flags
		// Only the set bits (two or so), not all nine flags.
		for b := uint16(f) & (1<<NumTCPFlags - 1); b != 0; b &= b - 1 {
			c.TCPFlags[bits.TrailingZeros16(b)]++
		}
		p.Key.SrcPort, p.Key.DstPort = s.L4.SrcPort, s.L4.DstPort
		p.TCPFlags = uint8(f)
		p.Window, p.PayloadLen, p.Seq, p.Ack = s.L4.Window, s.L4.PayloadLen, s.L4.Seq, s.L4.Ack
		p.FilterSeq = w.filterSeq && filterParses(frame, s, tun, fam)
	case L&decoders.LayerUDP != 0:
		c.UDP++
		p.Key.SrcPort, p.Key.DstPort = s.L4.SrcPort, s.L4.DstPort
		p.PayloadLen = s.L4.PayloadLen
	}
	if L&(decoders.LayerTLS|decoders.LayerDNS|decoders.LayerHTTP) != 0 {
		w.app(s, p)
	}
	// A non-first fragment carries no transport header: it would make a
	// port-less flow of its own.
	if w.table != nil && (L&decoders.LayerFragment == 0 || s.IP.FragOffset == 0) {
		switch {
		case w.batch != nil:
			if w.nb++; w.nb == len(w.batch) {
				w.Flush()
			}
		case w.hinted != nil:
			w.hinted.UpdateHinted(p, w.hints)
		default:
			w.table.Update(p)
		}
	}
}

// app counts the TLS hellos of the frame and marks its DNS or HTTP message
// in the Packet.
func (w *Worker) app(s *decoders.Summary, p *flow.Packet) {
	c := &w.c
	L := s.Layers
	if L&decoders.LayerTLS != 0 {
		switch s.TLS.HandshakeType {
		case decoders.TLSClientHello:
			c.TLSClientHello++
		case decoders.TLSServerHello:
			c.TLSServerHello[tlsVersionSlot(s.TLS.Version)]++
		}
	}
	// DNS and HTTP messages are counted by the flow table, once per
	// message whatever the number of hops that carried it.
	if L&decoders.LayerDNS != 0 {
		p.App, p.DNSID, p.Response = flow.AppDNS, s.DNS.ID, s.DNS.Response
		if s.DNS.Response {
			p.DNSRcode = s.DNS.RCode
		}
		// The question name is copied for DNS messages only (at most
		// flow.MaxDNSName bytes); other packets just zero DNSNameLen.
		name := s.DNS.Name()
		n := copy(p.DNSName[:], name)
		p.DNSNameLen = uint8(n)
		p.DNSNameTruncated = n < len(name) || s.Trunc&decoders.TruncQName != 0
	}
	if L&decoders.LayerHTTP != 0 {
		p.App, p.Response = flow.AppHTTP, s.HTTP.Response
		if s.HTTP.Response {
			p.HTTPStatus = s.HTTP.Status
		}
	}
}

// Publish makes the worker's counters visible to Snapshot. The worker calls
// it from its own goroutine: periodically, and when its source is idle. It
// copies only when something changed since the last call.
func (w *Worker) Publish() {
	w.Flush()
	w.expireIdle()
	if !w.dirty {
		return
	}
	w.dirty = false
	for f, n := range w.frags.pending {
		w.c.FragPending[f] = uint64(n)
	}
	w.mu.Lock()
	w.pub = w.c
	w.pubPath = w.lastPath
	w.mu.Unlock()
}

// AddTo adds the worker's last published counters to dst. It is safe to
// call from any goroutine.
func (w *Worker) AddTo(dst *Counters) {
	w.mu.Lock()
	dst.Add(&w.pub)
	w.mu.Unlock()
}
