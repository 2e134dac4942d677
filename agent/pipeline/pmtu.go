package pipeline

import (
	"net/netip"
	"slices"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/decoders"
)

// NumMTUSlots is the number of distinct reported MTUs counted on their own
// in an MTUCounts; reports of further values are counted together.
const NumMTUSlots = 8

// PMTUEventRing is the number of recent PMTU events a worker keeps.
const PMTUEventRing = 64

// MTUCounts counts PMTU reports (ICMP fragmentation-needed or packet-too-big)
// by the MTU they report. A slot is in use when its Count is not zero; the
// slots are claimed in the order the values are first seen.
type MTUCounts struct {
	MTU   [NumMTUSlots]uint32
	Count [NumMTUSlots]uint64
	Other uint64 // reports of an MTU that found no free slot
}

// add counts n reports of mtu.
func (m *MTUCounts) add(mtu uint32, n uint64) {
	free := -1
	for i := range m.Count {
		if m.Count[i] == 0 {
			if free < 0 {
				free = i
			}
			continue
		}
		if m.MTU[i] == mtu {
			m.Count[i] += n
			return
		}
	}
	if free < 0 {
		m.Other += n
		return
	}
	m.MTU[free], m.Count[free] = mtu, n
}

// Add adds the counts of o to m, slot by MTU value.
func (m *MTUCounts) Add(o *MTUCounts) {
	for i, n := range o.Count {
		if n > 0 {
			m.add(o.MTU[i], n)
		}
	}
	m.Other += o.Other
}

// PMTUEvent is one ICMP fragmentation-needed (ICMPv4 type 3 code 4) or
// packet-too-big (ICMPv6 type 2) message seen by a worker.
type PMTUEvent struct {
	Seq     uint64 // 1 for the worker's first event, then 2, 3, …
	Time    int64  // packet time, Unix nanoseconds
	IfIndex int32
	Role    flow.Role
	Dir     flow.Direction
	Family  uint8 // 4 or 6
	// Reporter is the source of the ICMP message: the hop whose next link
	// was too small. Target is its destination: the sender of the packet
	// that was too big, as the network delivers to it (after any reverse
	// NAT of the ICMP message itself).
	Reporter, Target netip.Addr
	// MTU is the MTU the message reports (0 when the reporter did not say).
	MTU uint32
	// Inner is the quoted header of the packet that was too big, as the
	// reporter received it: with DNAT on the way, its destination is the
	// translated (backend) address; conntrack maps it back to the client's
	// original tuple. InnerPorts is false when the quote held no ports
	// (another protocol, a non-first fragment or a short quote); Quoted is
	// false when the message quoted no usable header at all.
	Inner      flow.Key
	InnerPorts bool
	Quoted     bool
}

// pmtuRing holds a worker's recent PMTU events; w.mu guards it.
type pmtuRing struct {
	ev  [PMTUEventRing]PMTUEvent
	seq uint64 // sequence number of the newest event
}

// pmtu records a PMTU report: counted by MTU, and kept in the event ring.
// ICMP errors are rate-limited by their senders, so taking the lock here is
// rare.
func (w *Worker) pmtu(s *decoders.Summary, fam int, m *Meta, role flow.Role, dir flow.Direction) {
	ic := &s.ICMP
	w.c.PMTUByMTU[fam].add(ic.MTU, 1)
	w.mu.Lock()
	if w.events == nil {
		w.events = new(pmtuRing)
	}
	r := w.events
	r.seq++
	e := &r.ev[r.seq%PMTUEventRing]
	*e = PMTUEvent{
		Seq: r.seq, Time: m.Time, IfIndex: m.IfIndex, Role: role, Dir: dir,
		Family: s.IP.Family, Reporter: s.IP.Src, Target: s.IP.Dst, MTU: ic.MTU,
		Quoted: ic.Quoted, InnerPorts: ic.InnerPorts,
	}
	if ic.Quoted {
		e.Inner = flow.Key{Src: ic.InnerSrc, Dst: ic.InnerDst, Proto: ic.InnerProto}
		if ic.InnerPorts {
			e.Inner.SrcPort, e.Inner.DstPort = ic.InnerSrcPort, ic.InnerDstPort
		}
	}
	w.mu.Unlock()
}

// PMTUEvents appends to dst the worker's kept PMTU events whose Seq is
// greater than after, oldest first, and returns the extended slice. It is
// safe to call from any goroutine. A caller passes the Seq of the last
// event it read; when the first event returned has a Seq above after+1,
// the ring overwrote the events in between before they were read.
func (w *Worker) PMTUEvents(dst []PMTUEvent, after uint64) []PMTUEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.events
	if r == nil || r.seq <= after {
		return dst
	}
	from := max(after+1, r.seq-min(r.seq, PMTUEventRing-1))
	for q := from; q <= r.seq; q++ {
		dst = append(dst, r.ev[q%PMTUEventRing])
	}
	return dst
}

// PathConfig describes where the packets a worker sees entering from its
// interface (Meta.Dir == flow.DirIn: for the host end of a pod's veth, the
// frames the pod sent) go next. The zero value turns the path checks off.
type PathConfig struct {
	// MTU is the MTU of the path those packets take off the node: for a
	// pod on an overlay node, the overlay device's MTU. 0 turns the checks
	// off.
	MTU int
	// LinkMTU is the MTU of the captured interface itself. A frame longer
	// than it is a segmentation-offload aggregate (GSO), cut into packets
	// of unknown size before it is sent: it is counted in
	// Counters.OversizeOffload instead of Counters.Oversize. 0 means
	// unknown: every long frame counts as oversize.
	LinkMTU int
	// Local are the destinations that do not leave the node (the node's
	// pod CIDRs and addresses): packets to them are not checked.
	Local []netip.Prefix
}

// SetPath sets the path of the packets entering from the worker's
// interface. It is safe to call from any goroutine, at any time; the
// worker uses the new value from its next frame. pc.Local is copied.
func (w *Worker) SetPath(pc PathConfig) {
	pc.Local = slices.Clone(pc.Local)
	if pc.MTU <= 0 {
		pc.MTU = 0
	}
	w.pathMu.Lock()
	w.pathCfg = pc
	w.storePath()
	w.pathMu.Unlock()
}

// SetPathMTU sets the path and link MTUs of PathConfig, keeping the local
// prefixes.
func (w *Worker) SetPathMTU(pathMTU, linkMTU int) {
	w.pathMu.Lock()
	w.pathCfg.MTU, w.pathCfg.LinkMTU = max(pathMTU, 0), linkMTU
	w.storePath()
	w.pathMu.Unlock()
}

// SetLocalPrefixes sets the local destinations of PathConfig, keeping the
// MTUs. prefixes is copied.
func (w *Worker) SetLocalPrefixes(prefixes []netip.Prefix) {
	w.pathMu.Lock()
	w.pathCfg.Local = slices.Clone(prefixes)
	w.storePath()
	w.pathMu.Unlock()
}

// Path returns the worker's current path configuration.
func (w *Worker) Path() PathConfig {
	w.pathMu.Lock()
	defer w.pathMu.Unlock()
	pc := w.pathCfg
	pc.Local = slices.Clone(pc.Local)
	return pc
}

// storePath publishes w.pathCfg to the worker; w.pathMu is held. The
// stored value is never modified afterwards.
func (w *Worker) storePath() {
	if w.pathCfg.MTU == 0 {
		w.path.Store(nil)
		return
	}
	pc := w.pathCfg
	w.path.Store(&pc)
}

// PathEvent describes the last packet a worker found too big for its path.
type PathEvent struct {
	Time     int64 // packet time, Unix nanoseconds
	IfIndex  int32
	Role     flow.Role
	Src, Dst netip.Addr
	Proto    uint8
	// Size is the IP total length (Oversize) or the MSS option (SYN);
	// Limit is the path MTU, or the largest MSS it allows.
	Size, Limit uint32
}

// pathEvents are the last offending packets, written by the worker and
// copied by Publish.
type pathEvents struct {
	Oversize, MSS PathEvent
}

// LastOversize returns the last packet counted in Counters.Oversize, as of
// the worker's last Publish, and whether there was one. It is safe to call
// from any goroutine. On a pod's veth, Src is the pod's address.
func (w *Worker) LastOversize() (PathEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pubPath.Oversize, w.pubPath.Oversize.Time != 0
}

// LastMSS returns the last SYN counted in Counters.MSSOverPath, as of the
// worker's last Publish, and whether there was one. It is safe to call from
// any goroutine.
func (w *Worker) LastMSS() (PathEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pubPath.MSS, w.pubPath.MSS.Time != 0
}

// checkPath counts the packets entering from the interface that will not
// fit their path: IPv4 with DF and all IPv6 longer than the path MTU (no
// router fragments them: they are dropped, and the sender gets an ICMP
// error), and TCP SYNs whose MSS allows such packets.
func (w *Worker) checkPath(pc *PathConfig, s *decoders.Summary, fam int, role flow.Role, m *Meta) {
	ip := &s.IP
	size := int(ip.TotalLen)
	if size > pc.MTU && (fam == 1 || ip.DF) && !pc.local(ip.Dst) {
		if pc.LinkMTU > 0 && size > pc.LinkMTU {
			w.c.OversizeOffload[role][fam]++
		} else {
			w.c.Oversize[role][fam]++
			w.lastPath.Oversize = PathEvent{Time: m.Time, IfIndex: m.IfIndex, Role: role, Src: ip.Src, Dst: ip.Dst, Proto: ip.Proto, Size: uint32(size), Limit: uint32(pc.MTU)}
		}
	}
	if s.Layers&decoders.LayerTCP == 0 || s.L4.Flags&decoders.TCPSyn == 0 || s.L4.MSS == 0 {
		return
	}
	limit := pc.MTU - 40 // IPv4 and TCP headers
	if fam == 1 {
		limit = pc.MTU - 60
	}
	if int(s.L4.MSS) > limit && !pc.local(ip.Dst) {
		w.c.MSSOverPath[role][fam]++
		w.lastPath.MSS = PathEvent{Time: m.Time, IfIndex: m.IfIndex, Role: role, Src: ip.Src, Dst: ip.Dst, Proto: ip.Proto, Size: uint32(s.L4.MSS), Limit: uint32(max(limit, 0))}
	}
}

func (pc *PathConfig) local(a netip.Addr) bool {
	for _, p := range pc.Local {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
