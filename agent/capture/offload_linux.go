package capture

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/agent/flow"
)

// offKey is the kernel map's key: one direction of one flow at the ring's
// interface. Addresses and ports are as on the wire (network order); an
// IPv4 address fills the first 4 bytes of its 16.
type offKey struct {
	Src, Dst [16]byte
	Ports    [4]byte // source port, destination port
	Family   uint8   // 4 or 6
	Out      uint8   // 1: PACKET_OUTGOING
	Encap    uint8   // flow.EncapVXLAN: the inner frame of a VXLAN packet
	Pad      uint8
}

// offVal is the kernel map's value. Packets, Bytes, Push and Retrans only
// grow (atomic adds from any CPU); user space keeps what it has merged in a
// shadow and takes differences.
type offVal struct {
	Packets, Bytes, Push uint64 // frames counted in the kernel; with PSH
	Last                 uint64 // CLOCK_MONOTONIC ns of the last counted frame
	Retrans              uint32 // data retransmissions seen (all frames)
	SeqEnd               uint32 // highest sequence number + payload seen
	NPass                uint32 // frames handed over as the flow's first
	SeqOK                uint32 // SeqEnd is valid
}

// Offsets in offVal, for the program.
const (
	offPackets = 0
	offBytes   = 8
	offPush    = 16
	offLast    = 24
	offRetrans = 32
	offSeqEnd  = 36
	offNPass   = 40
	offSeqOK   = 44
	offValLen  = 48
	offKeyLen  = 40
)

// Offload is the eBPF fast path of one ring: the program attached to its
// socket and the maps it counts in. It outlives the ring's socket so that
// the last counts can be drained after the ring closed: whoever drains it
// closes it after the last Drain.
type Offload struct {
	flows, stats, config *ebpf.Map
	prog                 *ebpf.Program

	mu     sync.Mutex // guards below and the maps' use
	closed bool
	shadow map[offKey]offVal
	seen   map[offKey]uint32 // drain generation an entry was last listed in
	gen    uint32
	keys   []offKey
	vals   []offVal
	maxLen uint32
	st     OffloadStats
}

// newOffload makes the maps and the program for a ring with snap length
// snapLen.
func newOffload(cfg *OffloadConfig, snapLen int) (o *Offload, err error) {
	maxFlows := cfg.MaxFlows
	if maxFlows <= 0 {
		maxFlows = DefaultOffloadFlows
	}
	first := cfg.FirstPackets
	if first <= 0 {
		first = DefaultOffloadFirst
	}
	dns := cfg.DNSPorts
	if len(dns) == 0 {
		dns = []uint16{53, 5353}
	}
	o = &Offload{shadow: map[offKey]offVal{}, seen: map[offKey]uint32{}, maxLen: ^uint32(0),
		keys: make([]offKey, 512), vals: make([]offVal, 512)}
	defer func() {
		if err != nil {
			o.Close()
		}
	}()
	// Entries are allocated as flows arrive (no preallocation): an idle
	// node's map costs next to nothing.
	o.flows, err = ebpf.NewMap(&ebpf.MapSpec{Name: "ls_flows", Type: ebpf.Hash, KeySize: offKeyLen, ValueSize: offValLen,
		MaxEntries: uint32(maxFlows), Flags: unix.BPF_F_NO_PREALLOC})
	if err != nil {
		return nil, fmt.Errorf("flow map: %w", err)
	}
	o.stats, err = ebpf.NewMap(&ebpf.MapSpec{Name: "ls_stats", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("stats map: %w", err)
	}
	o.config, err = ebpf.NewMap(&ebpf.MapSpec{Name: "ls_config", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("config map: %w", err)
	}
	if err := o.config.Put(uint32(0), o.maxLen); err != nil {
		return nil, fmt.Errorf("config map: %w", err)
	}
	vxlan := cfg.VXLANPorts
	if len(vxlan) == 0 {
		vxlan = []uint16{4789}
	}
	insns := offloadProgram(o.flows.FD(), o.stats.FD(), o.config.FD(), snapLen, first, dns, vxlan)
	o.prog, err = ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{Name: "ls_offload", Type: ebpf.SocketFilter, License: "Apache-2.0", Instructions: insns},
		ebpf.ProgramOptions{LogDisabled: false})
	if err != nil {
		return nil, fmt.Errorf("program: %w", err)
	}
	return o, nil
}

// offloadReason classifies why newOffload failed.
func offloadReason(err error) string {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return OffloadReasonNotPermitted
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EINVAL):
		return OffloadReasonUnsupported
	}
	return OffloadReasonFailed
}

// attach replaces the socket's filter with the program.
func (o *Offload) attach(fd int) error {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, o.prog.FD())
}

// SetMaxLen makes the filter hand over every IP packet longer than n bytes
// (IP total length), for the path checks of the packets that enter from a
// pod; n <= 0 means no limit.
func (o *Offload) SetMaxLen(n int) error {
	v := ^uint32(0)
	if n > 0 {
		v = uint32(n)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || v == o.maxLen {
		return nil
	}
	if err := o.config.Put(uint32(0), v); err != nil {
		return err
	}
	o.maxLen = v
	return nil
}

// Stats returns the offload's counters as of the last drain.
func (o *Offload) Stats() OffloadStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.st
}

// Drain hands fn, for each flow direction whose counts moved since the last
// drain, the difference, and removes from the map the entries whose counts
// did not move and whose flow gone reports as no longer tracked (it left
// the flow table), handing over what they counted at the last moment if
// anything. fn and gone run on the caller's goroutine; the Drained is
// reused after fn returns. mono2wall converts the kernel's monotonic
// timestamps. Drain is safe for concurrent use but meant for one owner.
func (o *Offload) Drain(fn func(*Drained), gone func(*flow.Key) bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	o.st.Drains++
	err := o.drain(fn, gone)
	if err != nil {
		o.st.DrainErrors++
	}
	var full uint64
	if e := o.stats.Lookup(uint32(0), &full); e == nil {
		o.st.MapFull = full
	} else if err == nil {
		err = e
	}
	return err
}

func (o *Offload) drain(fn func(*Drained), gone func(*flow.Key) bool) error {
	o.gen++
	wall, mono := clockOffset()
	var d Drained
	listed := 0
	cursor := new(ebpf.MapBatchCursor)
	for {
		n, err := o.flows.BatchLookup(cursor, o.keys, o.vals, nil)
		for i := range n {
			k, v := &o.keys[i], &o.vals[i]
			prev, before := o.seen[*k]
			o.seen[*k] = o.gen
			listed++
			sh := o.shadow[*k]
			if v.Packets != sh.Packets || v.Retrans != sh.Retrans {
				o.emit(&d, k, v, &sh, wall, mono, fn)
				o.shadow[*k] = *v
				continue
			}
			// An entry is removed only when it was listed unchanged by the
			// previous drain too: a new entry's first frames may still
			// wait in the ring, their flow not in the table yet.
			if gone == nil || !before || prev != o.gen-1 {
				continue
			}
			if kf := flowKey(k); gone(&kf) {
				var last offVal
				if err := o.flows.LookupAndDelete(k, &last); err != nil {
					continue // removed meanwhile, or retried at the next drain
				}
				o.st.Removed++
				if last.Packets != sh.Packets || last.Retrans != sh.Retrans {
					o.emit(&d, k, &last, &sh, wall, mono, fn)
				}
				delete(o.shadow, *k)
				delete(o.seen, *k)
				listed--
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return err
		}
	}
	// Shadows of entries no longer listed (removed by an earlier drain's
	// retry, or the map replaced) are dropped.
	for k, g := range o.seen {
		if g != o.gen {
			delete(o.seen, k)
			delete(o.shadow, k)
		}
	}
	o.st.Flows = listed
	return nil
}

// emit hands fn the difference between v and the shadow sh.
func (o *Offload) emit(d *Drained, k *offKey, v, sh *offVal, wall, mono int64, fn func(*Drained)) {
	*d = Drained{Out: k.Out != 0}
	d.Key = flowKey(k)
	d.Encap = flow.Encap(k.Encap)
	d.Packets = v.Packets - sh.Packets
	d.Bytes = v.Bytes - sh.Bytes
	d.Push = v.Push - sh.Push
	d.Retransmits = v.Retrans - sh.Retrans
	if v.Last != 0 {
		d.Last = int64(v.Last) - mono + wall
	}
	d.Dir = direction(0)
	if d.Out {
		d.Dir = direction(PacketOutgoing)
	}
	o.st.Counted += d.Packets
	o.st.CountedBytes += d.Bytes
	fn(d)
}

// clockOffset returns the wall clock and CLOCK_MONOTONIC read together.
func clockOffset() (wall, mono int64) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Now().UnixNano(), ts.Nano()
}

func flowKey(k *offKey) flow.Key {
	fk := flow.Key{SrcPort: uint16(k.Ports[0])<<8 | uint16(k.Ports[1]), DstPort: uint16(k.Ports[2])<<8 | uint16(k.Ports[3]), Proto: flow.ProtoTCP}
	if k.Family == 4 {
		fk.Src = netip.AddrFrom4([4]byte(k.Src[:4]))
		fk.Dst = netip.AddrFrom4([4]byte(k.Dst[:4]))
	} else {
		fk.Src = netip.AddrFrom16(k.Src)
		fk.Dst = netip.AddrFrom16(k.Dst)
	}
	return fk
}

// Close releases the maps and the program. Drain fails after it. A nil
// Offload closes as nothing.
func (o *Offload) Close() error {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	if o.prog != nil {
		o.prog.Close()
	}
	for _, m := range []*ebpf.Map{o.flows, o.stats, o.config} {
		if m != nil {
			m.Close()
		}
	}
	return nil
}

// The program's stack: the frame's first 74 bytes (Ethernet, IPv4 or IPv6,
// TCP without options), the map key, a new entry's value, the payload's
// first 33 bytes and scratch. buf is placed so that the IP addresses and
// the TCP header's words are 4-byte aligned.
const (
	stBuf  = -82        // 74 bytes: -82..-9
	stKey  = -128       // 40 bytes
	stVal  = -184       // 48 bytes
	stPay  = -224       // 33 bytes
	stScr  = -264       // scratch, below
	scFlag = stScr + 0  // u8 TCP flags (byte 13)
	scOff  = stScr + 1  // u8 data offset byte (byte 12: NS in bit 0)
	scWin  = stScr + 2  // u16 window, raw
	scNew  = stScr + 4  // u32 1: the entry is new (on the stack)
	scSeq  = stScr + 8  // u32 sequence number, host order
	scPLen = stScr + 12 // u32 TCP payload length
	scPOff = stScr + 16 // u32 payload offset in the frame
	scTot  = stScr + 20 // u32 IP total length
	scIdx  = stScr + 24 // u32 array map index (0)
)

// TCP flag bits (byte 13).
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	// Any of these hands the frame over: FIN, SYN, RST, URG, ECE, CWR.
	tcpPassMask = 0xe7
)

func swap16(v uint16) int32 { return int32(v>>8 | v<<8&0xff00) }

// offloadProgram builds the socket filter (see the package documentation).
// It returns snapLen for a frame handed to user space and 0 for one it
// counted. Every frame it cannot parse as Ethernet + IPv4 (no options, not a
// fragment) or IPv6 (TCP right after the fixed header) + TCP, directly or
// in VXLAN over such IPv4 (UDP to one of vxlanPorts), is handed over, as
// are those the decoders or the flow table need to see.
func offloadProgram(flows, stats, config int, snapLen, first int, dnsPorts, vxlanPorts []uint16) asm.Instructions {
	const (
		r0, r1, r2, r3, r4, r5 = asm.R0, asm.R1, asm.R2, asm.R3, asm.R4, asm.R5
		ctx, flen, tot, val    = asm.R6, asm.R7, asm.R8, asm.R9
		fp                     = asm.RFP
	)
	var p asm.Instructions
	var label string
	emit := func(ins ...asm.Instruction) {
		for _, in := range ins {
			if label != "" {
				in = in.WithSymbol(label)
				label = ""
			}
			p = append(p, in)
		}
	}
	at := func(l string) { label = l }
	loadBytes := func(off int32, dst int16, n int32) {
		emit(asm.Mov.Reg(r1, ctx), asm.Mov.Imm(r2, off), asm.Mov.Reg(r3, fp), asm.Add.Imm(r3, int32(dst)),
			asm.Mov.Imm(r4, n), asm.FnSkbLoadBytes.Call(), asm.JNE.Imm(r0, 0, "pass"))
	}
	zero := func(at int16, n int) {
		emit(asm.Mov.Imm(r0, 0))
		for i := 0; i < n; i += 8 {
			emit(asm.StoreMem(fp, at+int16(i), r0, asm.DWord))
		}
	}
	// tcp reads the TCP header at buffer offset t of an IP header of
	// ipLen bytes (tot holds the IP total length) in a frame that starts
	// at base in the packet.
	tcp := func(base, t, ipLen int16) {
		b := int16(stBuf) + t
		emit(
			asm.LoadMem(r0, fp, b, asm.Word), asm.StoreMem(fp, stKey+32, r0, asm.Word),
			asm.LoadMem(r0, fp, b+13, asm.Byte), asm.StoreMem(fp, scFlag, r0, asm.Byte),
			asm.LoadMem(r0, fp, b+12, asm.Byte), asm.StoreMem(fp, scOff, r0, asm.Byte),
			asm.LoadMem(r0, fp, b+14, asm.Half), asm.StoreMem(fp, scWin, r0, asm.Half),
			asm.LoadMem(r0, fp, b+4, asm.Word), asm.HostTo(asm.BE, r0, asm.Word), asm.StoreMem(fp, scSeq, r0, asm.Word),
			asm.StoreMem(fp, scTot, tot, asm.Word),
			asm.JLT.Imm(tot, int32(ipLen)+20, "pass"),
			asm.LoadMem(r0, fp, scOff, asm.Byte), asm.RSh.Imm(r0, 4), asm.LSh.Imm(r0, 2),
			asm.JLT.Imm(r0, 20, "pass"),
			asm.Mov.Reg(r1, tot), asm.Sub.Imm(r1, int32(ipLen)),
			asm.JGT.Reg(r0, r1, "pass"),
			asm.Sub.Reg(r1, r0), asm.StoreMem(fp, scPLen, r1, asm.Word),
			asm.Add.Imm(r0, int32(base)+14+int32(ipLen)), asm.StoreMem(fp, scPOff, r0, asm.Word),
			asm.Ja.Label("common"),
		)
	}
	// frame parses the Ethernet frame starting at base in the packet (0,
	// or the inner frame of a VXLAN packet), its first 54 bytes loaded
	// into the buffer, down to TCP.
	var frame func(base int16)
	frame = func(base int16) {
		sfx := fmt.Sprint(base)
		emit(
			asm.LoadMem(r0, fp, stBuf+12, asm.Half),
			asm.JEq.Imm(r0, swap16(unix.ETH_P_IP), "v4"+sfx),
			asm.JEq.Imm(r0, swap16(unix.ETH_P_IPV6), "v6"+sfx),
			asm.Ja.Label("pass"),
		)
		// IPv4 without options, not a fragment, carrying TCP (or, in
		// the outer frame, UDP to a VXLAN port).
		at("v4" + sfx)
		emit(
			asm.LoadMem(r0, fp, stBuf+14, asm.Byte), asm.JNE.Imm(r0, 0x45, "pass"),
			asm.LoadMem(r0, fp, stBuf+20, asm.Half), asm.And.Imm(r0, swap16(0x3fff)), asm.JNE.Imm(r0, 0, "pass"),
			asm.LoadMem(tot, fp, stBuf+16, asm.Half), asm.HostTo(asm.BE, tot, asm.Half),
			asm.LoadMem(r0, fp, stBuf+23, asm.Byte),
		)
		if base == 0 && len(vxlanPorts) > 0 {
			emit(asm.JEq.Imm(r0, unix.IPPROTO_UDP, "udp"))
		}
		emit(asm.JNE.Imm(r0, unix.IPPROTO_TCP, "pass"))
		zero(stKey, offKeyLen)
		emit(
			asm.LoadMem(r0, fp, stBuf+26, asm.Word), asm.StoreMem(fp, stKey, r0, asm.Word),
			asm.LoadMem(r0, fp, stBuf+30, asm.Word), asm.StoreMem(fp, stKey+16, r0, asm.Word),
			asm.StoreImm(fp, stKey+36, 4, asm.Byte),
		)
		if base != 0 {
			emit(asm.StoreImm(fp, stKey+38, int64(flow.EncapVXLAN), asm.Byte))
		}
		tcp(base, 34, 20)

		// IPv6 with TCP right after the fixed header.
		at("v6" + sfx)
		emit(asm.JLT.Imm(flen, int32(base)+74, "pass"))
		loadBytes(int32(base)+54, stBuf+54, 20)
		emit(
			asm.LoadMem(r0, fp, stBuf+14, asm.Byte), asm.And.Imm(r0, 0xf0), asm.JNE.Imm(r0, 0x60, "pass"),
			asm.LoadMem(r0, fp, stBuf+20, asm.Byte), asm.JNE.Imm(r0, unix.IPPROTO_TCP, "pass"),
			asm.LoadMem(tot, fp, stBuf+18, asm.Half), asm.HostTo(asm.BE, tot, asm.Half), asm.Add.Imm(tot, 40),
		)
		zero(stKey, offKeyLen)
		for i := int16(0); i < 32; i += 4 {
			emit(asm.LoadMem(r0, fp, stBuf+22+i, asm.Word), asm.StoreMem(fp, stKey+i, r0, asm.Word))
		}
		emit(asm.StoreImm(fp, stKey+36, 6, asm.Byte))
		if base != 0 {
			emit(asm.StoreImm(fp, stKey+38, int64(flow.EncapVXLAN), asm.Byte))
		}
		tcp(base, 54, 40)

		if base != 0 || len(vxlanPorts) == 0 {
			return
		}
		// UDP to a VXLAN port whose length fills the IPv4 packet: the
		// inner frame, 50 bytes in, parsed as above.
		at("udp")
		emit(asm.LoadMem(r0, fp, stBuf+36, asm.Half))
		for _, port := range vxlanPorts {
			emit(asm.JEq.Imm(r0, swap16(port), "vxlan"))
		}
		emit(asm.Ja.Label("pass"))
		at("vxlan")
		emit(
			asm.LoadMem(r0, fp, stBuf+38, asm.Half), asm.HostTo(asm.BE, r0, asm.Half), asm.Add.Imm(r0, 20),
			asm.JNE.Reg(r0, tot, "pass"),
			asm.JLT.Imm(flen, 50+54, "pass"),
		)
		loadBytes(50, stBuf, 54)
		frame(50)
	}

	emit(
		asm.Mov.Reg(ctx, r1),
		asm.LoadMem(r0, ctx, 20, asm.Word), // __sk_buff.vlan_present
		asm.JNE.Imm(r0, 0, "pass"),
		asm.LoadMem(flen, ctx, 0, asm.Word), // __sk_buff.len
		asm.JLT.Imm(flen, 54, "pass"),
	)
	loadBytes(0, stBuf, 54)
	frame(0)

	// The entry of the frame's flow direction: found, or new on the stack.
	at("common")
	emit(
		asm.LoadMem(r0, ctx, 4, asm.Word), // __sk_buff.pkt_type
		asm.JNE.Imm(r0, PacketOutgoing, "lookup"),
		asm.StoreImm(fp, stKey+37, 1, asm.Byte),
	)
	at("lookup")
	emit(
		asm.StoreImm(fp, scNew, 0, asm.Word),
		asm.LoadMapPtr(r1, flows), asm.Mov.Reg(r2, fp), asm.Add.Imm(r2, stKey),
		asm.FnMapLookupElem.Call(),
		asm.Mov.Reg(val, r0),
		asm.JNE.Imm(val, 0, "track"),
	)
	zero(stVal, offValLen)
	emit(
		asm.StoreImm(fp, stVal+offNPass, 1, asm.Word),
		asm.StoreImm(fp, scNew, 1, asm.Word),
		asm.Mov.Reg(val, fp), asm.Add.Imm(val, stVal),
	)

	// Sequence numbers, as the flow table follows them per hop and side:
	// a SYN starts them, a RST or a segment without payload leaves them,
	// a segment starting below the highest end seen is a retransmission
	// (but a one-byte keep-alive just below it).
	at("track")
	emit(
		asm.LoadMem(r1, fp, scFlag, asm.Byte),
		asm.Mov.Reg(r2, r1), asm.And.Imm(r2, tcpRST), asm.JNE.Imm(r2, 0, "decide"),
		asm.LoadMem(r3, fp, scSeq, asm.Word),
		asm.And.Imm(r1, tcpSYN), asm.JEq.Imm(r1, 0, "data"),
		asm.LoadMem(r2, val, offSeqOK, asm.Word), asm.JNE.Imm(r2, 0, "decide"),
		asm.Add.Imm32(r3, 1), asm.StoreMem(val, offSeqEnd, r3, asm.Word), asm.StoreImm(val, offSeqOK, 1, asm.Word),
		asm.Ja.Label("decide"),
	)
	at("data")
	emit(
		asm.LoadMem(r4, fp, scPLen, asm.Word), asm.JEq.Imm(r4, 0, "decide"),
		asm.Mov.Reg(r2, r3), asm.Add.Reg32(r2, r4), // end
		asm.LoadMem(r5, val, offSeqOK, asm.Word), asm.JNE.Imm(r5, 0, "compare"),
		asm.StoreMem(val, offSeqEnd, r2, asm.Word), asm.StoreImm(val, offSeqOK, 1, asm.Word),
		asm.Ja.Label("decide"),
	)
	at("compare")
	emit(
		asm.LoadMem(r5, val, offSeqEnd, asm.Word),
		asm.Mov.Reg(r0, r3), asm.Sub.Reg32(r0, r5),
		asm.JSGE.Imm32(r0, 0, "advance"),
		asm.JNE.Imm(r4, 1, "retrans"),
		asm.JEq.Imm32(r0, -1, "advance"),
	)
	at("retrans")
	emit(asm.Mov.Imm(r1, 1), asm.AddAtomic.Mem(val, r1, asm.Word, offRetrans))
	at("advance")
	emit(
		asm.Mov.Reg(r0, r2), asm.Sub.Reg32(r0, r5),
		asm.JSLE.Imm32(r0, 0, "decide"),
		asm.StoreMem(val, offSeqEnd, r2, asm.Word),
	)

	// Handed over or counted.
	at("decide")
	emit(
		asm.LoadMem(r1, fp, scNew, asm.Word), asm.JNE.Imm(r1, 0, "insert"),
		asm.LoadMem(r1, fp, scFlag, asm.Byte),
		asm.Mov.Reg(r2, r1), asm.And.Imm(r2, tcpPassMask), asm.JNE.Imm(r2, 0, "pass"),
		asm.And.Imm(r1, tcpACK), asm.JEq.Imm(r1, 0, "pass"),
		asm.LoadMem(r1, fp, scOff, asm.Byte), asm.And.Imm(r1, 1), asm.JNE.Imm(r1, 0, "pass"), // NS
		asm.LoadMem(r1, fp, scWin, asm.Half), asm.JEq.Imm(r1, 0, "pass"), // zero window
		// Headers longer than the snap length: the decoders count the
		// frame as truncated.
		asm.LoadMem(r1, fp, scPOff, asm.Word), asm.JGT.Imm(r1, int32(snapLen), "pass"),
	)
	for _, port := range dnsPorts {
		emit(
			asm.LoadMem(r1, fp, stKey+32, asm.Half), asm.JEq.Imm(r1, swap16(port), "pass"),
			asm.LoadMem(r1, fp, stKey+34, asm.Half), asm.JEq.Imm(r1, swap16(port), "pass"),
		)
	}
	emit(
		asm.StoreImm(fp, scIdx, 0, asm.Word),
		asm.LoadMapPtr(r1, config), asm.Mov.Reg(r2, fp), asm.Add.Imm(r2, scIdx),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(r0, 0, "pass"),
		asm.LoadMem(r1, r0, 0, asm.Word), asm.LoadMem(r2, fp, scTot, asm.Word),
		asm.JGT.Reg(r2, r1, "pass"), // longer than the path: the path checks see it
		asm.LoadMem(r1, val, offNPass, asm.Word), asm.JGE.Imm(r1, int32(first)+1, "probe"),
		asm.Add.Imm(r1, 1), asm.StoreMem(val, offNPass, r1, asm.Word),
		asm.Ja.Label("pass"),
	)
	// A payload that may start an L7 message: a TLS record header, or a
	// space within its first 33 bytes (an HTTP request or status line:
	// the decoder requires one there). Payloads shorter than that pass.
	at("probe")
	emit(
		asm.LoadMem(r1, fp, scPLen, asm.Word), asm.JEq.Imm(r1, 0, "count"),
		asm.JLT.Imm(r1, 33, "pass"),
		asm.Mov.Reg(r1, ctx), asm.LoadMem(r2, fp, scPOff, asm.Word), asm.Mov.Reg(r3, fp), asm.Add.Imm(r3, stPay),
		asm.Mov.Imm(r4, 33), asm.FnSkbLoadBytes.Call(), asm.JNE.Imm(r0, 0, "pass"),
		asm.LoadMem(r1, fp, stPay, asm.Byte), asm.JLT.Imm(r1, 20, "http"), asm.JGT.Imm(r1, 23, "http"),
		asm.LoadMem(r1, fp, stPay+1, asm.Byte), asm.JEq.Imm(r1, 3, "pass"),
	)
	at("http")
	emit(
		asm.LoadImm(r4, 0x2020202020202020, asm.DWord),
		asm.LoadImm(r5, 0x0101010101010101, asm.DWord),
		asm.LoadImm(r0, -0x7f7f7f7f7f7f7f80, asm.DWord), // 0x8080808080808080
	)
	for i := int16(0); i < 32; i += 8 {
		emit(
			asm.LoadMem(r1, fp, stPay+i, asm.DWord), asm.Xor.Reg(r1, r4),
			asm.Mov.Reg(r2, r1), asm.Sub.Reg(r2, r5), asm.Xor.Imm(r1, -1),
			asm.And.Reg(r2, r1), asm.And.Reg(r2, r0), asm.JNE.Imm(r2, 0, "pass"),
		)
	}
	emit(asm.LoadMem(r1, fp, stPay+32, asm.Byte), asm.JEq.Imm(r1, ' ', "pass"))

	at("count")
	emit(
		asm.Mov.Imm(r1, 1), asm.AddAtomic.Mem(val, r1, asm.DWord, offPackets),
		asm.Mov.Reg(r1, flen), asm.AddAtomic.Mem(val, r1, asm.DWord, offBytes),
		asm.LoadMem(r1, fp, scFlag, asm.Byte), asm.RSh.Imm(r1, 3), asm.And.Imm(r1, 1),
		asm.JEq.Imm(r1, 0, "stamp"),
		asm.AddAtomic.Mem(val, r1, asm.DWord, offPush),
	)
	at("stamp")
	emit(
		asm.FnKtimeGetNs.Call(), asm.StoreMem(val, offLast, r0, asm.DWord),
		asm.Mov.Imm(r0, 0), asm.Return(),
	)

	// A new entry: made (the frame handed over, as a flow's first), or,
	// when the map is full, counted as such (the frame handed over too).
	at("insert")
	emit(
		asm.LoadMapPtr(r1, flows), asm.Mov.Reg(r2, fp), asm.Add.Imm(r2, stKey),
		asm.Mov.Reg(r3, fp), asm.Add.Imm(r3, stVal), asm.Mov.Imm(r4, int32(ebpf.UpdateNoExist)),
		asm.FnMapUpdateElem.Call(),
		asm.JEq.Imm(r0, 0, "pass"),
		asm.JEq.Imm(r0, -int32(unix.EEXIST), "pass"),
		asm.StoreImm(fp, scIdx, 0, asm.Word),
		asm.LoadMapPtr(r1, stats), asm.Mov.Reg(r2, fp), asm.Add.Imm(r2, scIdx),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(r0, 0, "pass"),
		asm.Mov.Imm(r1, 1), asm.AddAtomic.Mem(r0, r1, asm.DWord, 0),
	)
	at("pass")
	emit(asm.Mov.Imm(r0, int32(snapLen)), asm.Return())
	return p
}

// ProgramStats returns the time the kernel spent running the filter and the
// number of runs, as counted while run-time statistics are enabled
// (BPF_ENABLE_STATS; they cost two clock reads per run).
func (o *Offload) ProgramStats() (time.Duration, uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, 0, ErrClosed
	}
	st, err := o.prog.Stats()
	if err != nil {
		return 0, 0, err
	}
	return st.Runtime, st.RunCount, nil
}
